"""The demo (``make demo``, ``vrpsam-demo``): stand-in weights, meta-training, the comparison with
training-free prompting, export and a report, on one CPU machine. See :mod:`vrpsam.demo.cli`."""

from vrpsam.demo.cli import main, run_demo

__all__ = ["main", "run_demo"]
