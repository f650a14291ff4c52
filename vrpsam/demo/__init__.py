"""The demo (``make demo``, ``vrpsam-demo``): stand-in weights, meta-training, the comparison with
training-free prompting, export and a report, on one CPU machine. See :mod:`vrpsam.demo.run`."""

from vrpsam.demo.run import run_demo

__all__ = ["run_demo"]
