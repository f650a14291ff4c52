"""vrpsam: train, evaluate and ship VRP-SAM (visual reference prompts for a frozen SAM).

The public face is small: builders and loaders. Everything else is importable from its module.
"""

from vrpsam.compat import Switches
from vrpsam.modeling.official import load_official_checkpoint
from vrpsam.modeling.vrp_sam import VRPSAM, EmptyReferenceError, build_vrp_sam

__version__ = "0.1.0"

__all__ = [
    "VRPSAM",
    "EmptyReferenceError",
    "Switches",
    "__version__",
    "build_vrp_sam",
    "load_official_checkpoint",
]
