"""Segment your own images from annotated references: :class:`VRPSAMPredictor` (in Python),
:class:`ReferenceBank` (many classes at once) and :func:`~vrpsam.predictor.folder.predict` (a
folder, what ``vrpsam-predict`` runs)."""

from vrpsam.predictor.bank import ReferenceBank
from vrpsam.predictor.core import VRPSAMPredictor
from vrpsam.predictor.inputs import annotation_to_mask, load_rgb

__all__ = ["ReferenceBank", "VRPSAMPredictor", "annotation_to_mask", "load_rgb"]
