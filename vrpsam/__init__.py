"""vrpsam: train, evaluate and ship VRP-SAM (visual reference prompts for a frozen SAM).

The public face is small: builders, loaders and the predictor. Everything else is importable from
its module. Names load lazily so that command-line tools which need no torch start fast.
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "VRPSAM": "vrpsam.modeling.vrp_sam",
    "EmptyReferenceError": "vrpsam.modeling.vrp_sam",
    "build_vrp_sam": "vrpsam.modeling.vrp_sam",
    "load_official_checkpoint": "vrpsam.modeling.official",
    "ModelSwitches": "vrpsam.modeling.switches",
    "Protocol": "vrpsam.engine.protocol",
    "VRPSAMPredictor": "vrpsam.predictor",
    "ReferenceBank": "vrpsam.predictor",
    "export_model": "vrpsam.artifacts.exports",
    "load_export": "vrpsam.artifacts.exports",
}

__all__ = [*sorted(_PUBLIC), "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'vrpsam' has no attribute {name!r}")
