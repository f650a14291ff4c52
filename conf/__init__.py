"""The Hydra configs: the repository's top-level ``conf/`` folder, the one copy, installed as the
package ``vrpsam.conf`` (``package-dir`` in pyproject.toml maps the folder into the package, for
wheels and editable installs alike). :data:`CONFIG_DIR` is where the entry points and the code
that reads a named config file (the protocol presets) find them, in a source checkout and in an
installed wheel alike."""

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent)


def experiment_values(name: str):
    """The values an experiment file sets (``conf/experiment/<name>.yaml``), unresolved: for code
    that must agree with an experiment's sizes (the demo's stand-ins, the benchmark)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(Path(CONFIG_DIR) / "experiment" / f"{name}.yaml")
