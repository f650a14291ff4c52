"""The models a :class:`~vrpsam.predictor.bank.ReferenceBank` runs: VRP-SAM through a
:class:`~vrpsam.predictor.core.VRPSAMPredictor` (the reference state of each class computed once,
the target's frozen features once for all classes) and any training-free baseline through
:class:`MethodBank` (its two-step ``prepare`` / ``predict_targets``). Both give per-class logits
and a fingerprint of the weights they run with.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import weakref
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import nn

from vrpsam.baselines.base import FewShotMethod
from vrpsam.data.transforms import ResizeNormalize
from vrpsam.modeling.vrp_encoder import ReferenceState
from vrpsam.predictor.core import VRPSAMPredictor
from vrpsam.predictor.inputs import ImageLike

_STATE_FIELDS = tuple(f.name for f in fields(ReferenceState))
# Weight digests per module, so that a bank of a large model hashes its weights once.
_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weights_sha256(module: nn.Module) -> str:
    """sha256 of a module's weights as loaded (names, dtypes, shapes and bytes, in order).

    The same weight file always loads to the same bytes, so this ties a bank to the files without
    knowing their paths. Memoised per module until a tensor changes in place (SAM ViT-H takes a
    few seconds).
    """
    state = module.state_dict()
    versions = tuple(t._version for t in state.values())
    cached = _HASHES.get(module)
    if cached is not None and cached[0] == versions:
        return cached[1]
    digest = hashlib.sha256()
    for name, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    _HASHES[module] = (versions, digest.hexdigest())
    return digest.hexdigest()


class PredictorModel:
    """The VRP-SAM side of a bank: k-shot reference states and one decode per class."""

    kind = "vrpsam"

    def __init__(self, predictor: VRPSAMPredictor) -> None:
        self.predictor = predictor
        self.image_size = predictor.image_size
        self.saves_state = True

    @property
    def batch_size(self) -> int:
        return self.predictor.batch_size

    def shot(self, image: ImageLike, **annotation: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictor._shot(image, **annotation)

    def check_kinds(self, kinds: list[str]) -> None:
        """VRP-SAM mixes annotation kinds in one reference set freely."""

    def fingerprint(self) -> dict:
        model = self.predictor.model
        spec = getattr(model, "build_spec", {}) or {}
        text = json.dumps(spec, sort_keys=True, default=str)
        return {
            "kind": self.kind,
            "backbone": spec.get("backbone"),
            "sam": spec.get("sam"),
            "architecture_sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
            "image_size": self.image_size,
            "sam_weights_sha256": weights_sha256(model.sam),
            "backbone_weights_sha256": weights_sha256(model.backbone),
            "vrp_encoder_sha256": weights_sha256(model.encoder),
        }

    @torch.no_grad()
    def prepare(self, images: torch.Tensor, masks: torch.Tensor, kinds: list[str]):
        device = self.predictor.device
        return self.predictor.model.reference_state(images[None].to(device), masks[None].to(device))

    def state_tensors(self, state: ReferenceState) -> dict[str, torch.Tensor]:
        return {name: getattr(state, name) for name in _STATE_FIELDS}

    def state_from_tensors(self, tensors: Mapping[str, torch.Tensor]) -> ReferenceState:
        device = self.predictor.device
        return ReferenceState(**{name: tensors[name].to(device) for name in _STATE_FIELDS})

    @torch.no_grad()
    def logits(self, states: list, shots: list[int], rgbs: list[np.ndarray]) -> torch.Tensor:
        """(C, N, S, S) logits of every class in every target; frozen features once."""
        predictor, model = self.predictor, self.predictor.model
        batch = torch.stack([predictor.transform.image(rgb) for rgb in rgbs]).to(predictor.device)
        sizes = torch.tensor([rgb.shape[:2] for rgb in rgbs])
        mid, high, embeddings = predictor._target_features(rgbs, batch, sizes)
        n, out = len(rgbs), [None] * len(states)
        # Classes with as many shots share one decode: class-major tiles of the targets.
        per_decode = max(1, 32 // n)
        for k in sorted(set(shots)):
            group = [c for c, s in enumerate(shots) if s == k]
            for start in range(0, len(group), per_decode):
                part = group[start : start + per_decode]
                state = _cat_states([states[c].tile(n) for c in part])
                reps = len(part)
                prompts = model.prompts_from_reference(
                    state, None, k, features=(mid.repeat(reps, 1, 1, 1), high.repeat(reps, 1, 1, 1))
                )
                logits = model.decode(
                    prompts,
                    batch.repeat(reps, 1, 1, 1),
                    target_sizes=sizes.repeat(reps, 1),
                    image_embeddings=embeddings.repeat(reps, 1, 1, 1),
                )
                for j, c in enumerate(logits.float().reshape(reps, n, *logits.shape[-2:])):
                    out[part[j]] = c
        return torch.stack(out)


def _cat_states(states: list[ReferenceState]) -> ReferenceState:
    if len(states) == 1:
        return states[0]
    return ReferenceState(**{
        name: states[0].positions if name == "positions"
        else torch.cat([getattr(s, name) for s in states])
        for name in _STATE_FIELDS
    })  # fmt: skip


class MethodBank:
    """A training-free method (:class:`~vrpsam.baselines.base.FewShotMethod`) as a bank's model.

    Each class is prepared with ``method.prepare`` (all its shots, one annotation kind) and
    scored with ``method.predict_targets``; a saved bank keeps the references and prepares them
    again when loaded.

    Args:
        method: the method, e.g. ``PerSAM(sam=...)``.
        image_size: the square size the method's images are resized to.
        device: where to run.
        settings: the method's settings for the fingerprint; None reads the constructor's
            arguments that the method keeps as same-named attributes.
    """

    kind = "method"
    saves_state = False
    batch_size = 1

    # The same model-size shot as the predictor's: it only reads ``image_size`` and ``transform``.
    shot = VRPSAMPredictor._shot

    def __init__(
        self,
        method: FewShotMethod,
        *,
        image_size: int,
        device: str | torch.device = "cpu",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.method = method.eval().to(self.device)
        self.image_size = image_size
        self.transform = ResizeNormalize(size=image_size)
        self.settings = dict(settings) if settings is not None else _settings(method)

    def check_kinds(self, kinds: list[str]) -> None:
        """A method prepares a class from one annotation kind it supports."""
        for kind in set(kinds):
            self.method.check_annotation(kind)
        if len(set(kinds)) > 1:
            raise ValueError(
                f"method {self.method.name!r} prepares a class from one annotation kind; this "
                f"class would mix {sorted(set(kinds))}: annotate its shots the same way"
            )

    def fingerprint(self) -> dict:
        return {
            "kind": self.kind,
            "method": self.method.name,
            "settings": self.settings,
            "image_size": self.image_size,
            "weights_sha256": weights_sha256(self.method),
        }

    def prepare(self, images: torch.Tensor, masks: torch.Tensor, kinds: list[str]):
        return self.method.prepare(images.to(self.device), masks.to(self.device), kinds[0])

    @torch.no_grad()
    def logits(self, states: list, shots: list[int], rgbs: list[np.ndarray]) -> torch.Tensor:
        batch = torch.stack([self.transform.image(rgb) for rgb in rgbs]).to(self.device)
        sizes = torch.tensor([rgb.shape[:2] for rgb in rgbs])
        return torch.stack([self.method.predict_targets(s, batch, sizes).float() for s in states])


def _settings(method: nn.Module) -> dict:
    params = inspect.signature(type(method).__init__).parameters
    plain = (bool, int, float, str, type(None))
    return {
        name: getattr(method, name)
        for name in params
        if name != "self" and isinstance(getattr(method, name, None), plain)
    }
