"""The repository's top-level layout, and the one copy of the Hydra configs.

The configs live in the top-level ``conf/`` folder only; pyproject.toml maps that folder into the
package as ``vrpsam.conf`` (setuptools ``package-dir``), so editable installs and wheels both find
them. A second copy (a YAML file under ``vrpsam/``) or a package the explicit ``packages`` list
forgets fails here.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = ["pyproject.toml", "vrpsam", "conf", "scripts", "data/README.md", "tests", "Makefile"]
GROUPS = {"data", "model", "model/backbone", "model/sam", "method", "protocol", "trainer",
          "logger", "callbacks", "paths", "cache", "debug", "experiment"}  # fmt: skip
ENTRY_CONFIGS = {"train", "eval", "export", "predict", "build_cache"}


def stray_configs(root: Path) -> list[str]:
    """Config files outside the top-level ``conf/``: any YAML file in the package's sources."""
    return sorted(p.relative_to(root).as_posix() for p in (root / "vrpsam").rglob("*.y*ml"))


def test_the_top_level_layout():
    missing = [name for name in LAYOUT if not (ROOT / name).exists()]
    assert not missing, f"missing at the top of the repository: {missing}"
    assert (ROOT / "conf").is_dir() and (ROOT / "vrpsam").is_dir() and (ROOT / "tests").is_dir()


def test_the_top_level_conf_holds_every_config_and_group():
    conf = ROOT / "conf"
    assert {p.stem for p in conf.glob("*.yaml")} >= ENTRY_CONFIGS
    groups = {p.parent.relative_to(conf).as_posix() for p in conf.rglob("*.yaml")} - {"."}
    assert groups == GROUPS
    assert (conf / "__init__.py").is_file()


def test_there_is_one_copy_of_the_configs():
    assert not stray_configs(ROOT), (
        f"config files outside conf/: {stray_configs(ROOT)} (the one copy lives in conf/)"
    )


def test_the_check_catches_a_second_copy(tmp_path):
    """The rule itself can fail: a YAML file anywhere under vrpsam/ is a stray."""
    (tmp_path / "vrpsam" / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "base.yaml").write_text("dataset: ???\n")
    assert stray_configs(tmp_path) == []
    (tmp_path / "vrpsam" / "conf" / "data" / "base.yaml").write_text("dataset: ???\n")
    assert stray_configs(tmp_path) == ["vrpsam/conf/data/base.yaml"]


def test_no_leftover_folder_shadows_the_mapped_conf():
    """A ``vrpsam/conf/`` folder, even one holding only ``__pycache__`` (left by a checkout from
    before the move), is found first and hides the top-level ``conf/`` from the import."""
    assert not (ROOT / "vrpsam" / "conf").exists(), "remove the leftover vrpsam/conf/ folder"


def test_the_installed_locator_points_at_the_top_level_conf():
    """In a source checkout (editable install) ``vrpsam.conf`` is the top-level ``conf/``."""
    from vrpsam.conf import CONFIG_DIR

    assert Path(CONFIG_DIR).resolve() == (ROOT / "conf").resolve()


def test_the_package_list_names_every_package_and_maps_conf():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"vrpsam.conf": "conf"}
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vrpsam").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == folders | {"vrpsam.conf"}
    assert set(setuptools["package-data"]["vrpsam.conf"]) >= {"*.yaml", "**/*.yaml"}


# Run from another folder against the installed wheel: where the configs are, which ones, and
# that every entry point's config composes from them.
PROBE = """
import json
from pathlib import Path
from hydra import compose, initialize_config_dir
from vrpsam.conf import CONFIG_DIR, experiment_values
with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
    for name in ("train", "eval", "build_cache"):
        assert compose(config_name=name, overrides=["experiment=demo"]).data.dataset
    for name in ("export", "predict"):
        assert compose(config_name=name).paths
assert experiment_values("demo").data
files = sorted(p.relative_to(CONFIG_DIR).as_posix() for p in Path(CONFIG_DIR).rglob("*.yaml"))
print(json.dumps({"config_dir": CONFIG_DIR, "files": files}))
"""


def test_a_wheel_ships_every_config_and_composes_them_from_another_folder(
    tmp_path, installed_wheel
):
    """Not editable: a wheel ships every file of ``conf/`` as ``vrpsam/conf``."""
    target, env = installed_wheel.site, installed_wheel.env
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(found["config_dir"]) == target / "vrpsam" / "conf"
    conf = ROOT / "conf"
    assert found["files"] == sorted(p.relative_to(conf).as_posix() for p in conf.rglob("*.yaml"))
