"""The Hydra configs: the repository's top-level ``conf/`` folder, the one copy, installed as the
package ``vrpsam.conf`` (``package-dir`` in pyproject.toml maps the folder into the package, for
wheels and editable installs alike). :data:`CONFIG_DIR` is where the entry points and the code
that reads a named config file (the protocol presets) find them, in a source checkout and in an
installed wheel alike."""

from pathlib import Path
from typing import Any

CONFIG_DIR = str(Path(__file__).resolve().parent)


def as_dict(node: Any) -> dict:
    """A config node (or any mapping) as a plain, resolved dict; None as ``{}``.

    Not ``node or {}``: an empty DictConfig is falsy, and ``or`` would swap it for a dict while a
    filled one stays a node."""
    from omegaconf import DictConfig, OmegaConf

    if node is None:
        return {}
    if isinstance(node, DictConfig):
        return dict(OmegaConf.to_container(node, resolve=True))
    return dict(node)


def experiment_values(name: str):
    """The values an experiment file sets (``conf/experiment/<name>.yaml``), unresolved: for code
    that must agree with an experiment's sizes (the demo's stand-ins, the benchmark)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(CONFIG_DIR) / "experiment" / f"{name}.yaml")
