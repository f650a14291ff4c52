"""The package's layers: every import inside ``vrpsam`` points down, and nothing imports the CLI.

Ranks, bottom to top (a module may import its own package and lower ranks only):

0. ``vrpsam.artifacts.atomic`` (atomic writes), ``vrpsam.conf`` (where the configs live: the
   top-level ``conf/`` folder, which pyproject.toml maps into the package)
1. ``vrpsam.modeling``, ``vrpsam.data``
2. ``vrpsam.artifacts`` (checkpoints, exports, frozen-file records), ``vrpsam.reports``,
   ``vrpsam.cache``, ``vrpsam.baselines`` (the training-free methods, pure torch)
3. ``vrpsam.engine`` (Lightning glue, protocol, training and evaluation runs), ``vrpsam.predictor``
4. ``vrpsam.demo``, ``vrpsam.bench``
5. ``vrpsam.cli`` (the console scripts): imported by nothing
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vrpsam"
# Folders outside vrpsam/ that pyproject.toml maps into the package (setuptools package-dir).
MAPPED = {PACKAGE.parent / "conf": "vrpsam.conf"}

RANKS = [
    ("vrpsam.artifacts.atomic", 0),
    ("vrpsam.conf", 0),
    ("vrpsam.modeling", 1),
    ("vrpsam.data", 1),
    ("vrpsam.artifacts", 2),
    ("vrpsam.reports", 2),
    ("vrpsam.cache", 2),
    ("vrpsam.baselines", 2),
    ("vrpsam.engine", 3),
    ("vrpsam.predictor", 3),
    ("vrpsam.demo", 4),
    ("vrpsam.bench", 4),
    ("vrpsam.cli", 5),
]


def layer(module: str) -> tuple[str, int]:
    """(the layer's package, its rank) of a dotted module name (the longest prefix wins)."""
    for prefix, rank in sorted(RANKS, key=lambda item: -len(item[0])):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    raise AssertionError(f"{module} belongs to no layer: add its folder to RANKS")


def module_name(path: Path) -> str:
    for folder, package in MAPPED.items():
        if path.is_relative_to(folder):
            parts = (package, *path.relative_to(folder).with_suffix("").parts)
            break
    else:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported vrpsam module, line) of every import in the file, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vrpsam":  # `from vrpsam import X`: X is a subpackage or a name
                found += [(f"vrpsam.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "vrpsam"]


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)
FILES += sorted(p for folder in MAPPED for p in folder.rglob("*.py"))


def file_id(path: Path) -> str:
    return str(path.relative_to(PACKAGE if path.is_relative_to(PACKAGE) else PACKAGE.parent))


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_imports_point_down(path):
    own, rank = layer(module_name(path))
    wrong = []
    for name, line in imports(path):
        if name == "vrpsam.__version__":
            continue
        other, other_rank = layer(name)
        if other != own and other_rank >= rank:
            wrong.append(f"line {line}: {name} (rank {other_rank}) from rank {rank}")
    assert not wrong, "imports that do not point down: " + "; ".join(wrong)


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a data module importing the engine is flagged."""
    bad = PACKAGE / "data" / "_layer_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: (
        "from vrpsam.engine.training import train\n" if self == bad else _read(self)))  # fmt: skip
    with pytest.raises(AssertionError, match=r"vrpsam\.engine\.training \(rank 3\) from rank 1"):
        test_imports_point_down(bad)


_read = Path.read_text


def test_every_folder_is_a_package_with_a_layer():
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")):
        if folder.name in ("resources",):
            continue
        assert (folder / "__init__.py").is_file(), f"{folder.name}/ has no __init__.py"
        layer(f"vrpsam.{folder.name}")
