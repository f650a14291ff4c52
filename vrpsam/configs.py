"""Where the Hydra configs live (``conf/``), for the entry points and for code that reads a named
config file (the protocol presets)."""

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
