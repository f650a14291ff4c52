"""``vrpsam-bench``: how fast training, evaluation and the predictor run against what they must do.

Every figure is measured in one run of this benchmark, on this machine, and reported with the
ratio it is meant for (see :mod:`vrpsam.bench.run`). Random weights and synthetic data: the figures
are about speed, never about accuracy.
"""
