"""Segment your own images from one (or a few) annotated references, like SAM's ``SamPredictor``.

>>> predictor = VRPSAMPredictor.from_export("export/", sam_checkpoint="sam_vit_h_4b8939.pth",
...                                         backbone_checkpoint="resnet50_v2.pth")
>>> predictor.set_reference(reference_image, box=(40, 60, 200, 220))   # replaces: one shot
>>> predictor.add_reference(other_image, mask="other_mask.png")          # adds: 2-shot
>>> mask, score, logits = predictor.predict(target_image)

Numpy in and out: images are (H, W, 3) uint8 RGB arrays, PIL images or file paths (see
:func:`load_rgb`), masks come back (H, W) bool at the target's own size. The reference side (its
backbone features and the queries after reference attention) is computed once and reused for
every target; targets given together are processed as one batch; and each target's frozen features
(backbone + SAM embedding) are kept in a small cache keyed by the image's content, so segmenting
the same targets again with another reference skips the frozen encoders.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vrpsam.data.transforms import ResizeNormalize
from vrpsam.modeling.vrp_encoder import ReferenceState
from vrpsam.modeling.vrp_sam import VRPSAM
from vrpsam.predictor.inputs import ImageLike, MaskLike, Polylines, annotation_to_mask, load_rgb


class VRPSAMPredictor:
    """Reference once, predict many.

    Args:
        model: a VRP-SAM model (e.g. from :func:`vrpsam.artifacts.exports.load_export`).
        image_size: the square size the model was trained at (512 in the paper).
        device: where to run.
        target_cache_size: how many targets' frozen features to keep (0 disables); about
            38 MiB each for ResNet-50 + SAM at 512 px (fp32 backbone features are large).
        batch_size: targets per forward pass in :meth:`predict_batch`; default 1 on CPU (the
            benchmark, ``vrpsam-bench``, compares the two) and 8 on GPU.
    """

    def __init__(
        self,
        *,
        model: VRPSAM,
        image_size: int = 512,
        device: str | torch.device = "cpu",
        target_cache_size: int = 16,
        batch_size: int | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.transform = ResizeNormalize(size=image_size)
        self.image_size = image_size
        self._images: list[torch.Tensor] = []
        self._masks: list[torch.Tensor] = []
        self._state: ReferenceState | None = None
        self.target_cache_size = target_cache_size
        self.protocol: dict | None = None  # the switches an export was trained under
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        self._targets: OrderedDict[str, tuple[torch.Tensor, ...]] = OrderedDict()

    @classmethod
    def from_export(
        cls,
        export_dir: str | Path,
        *,
        sam_checkpoint: str | Path | None = None,
        backbone_checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        random_frozen_weights: bool = False,
        **load_kwargs,
    ) -> VRPSAMPredictor:
        """A predictor around an export (``vrpsam-export``) and its frozen weight files.

        Args:
            export_dir: the export folder.
            sam_checkpoint, backbone_checkpoint: the frozen files the export was trained with;
                None takes the files recorded in the export when they still exist unchanged, and
                refuses (naming the files) when they do not.
            device: where to run.
            random_frozen_weights: random SAM/backbone where a recorded file is missing
                (meaningless masks; for tests of the plumbing).
            **load_kwargs: further :func:`vrpsam.artifacts.exports.load_export` arguments.

        The input size and the model's switches are the ones the export was trained with.
        """
        from vrpsam.artifacts.exports import load_export, read_export_config

        model = load_export(
            export_dir,
            sam_checkpoint=sam_checkpoint,
            backbone_checkpoint=backbone_checkpoint,
            random_frozen_weights=random_frozen_weights,
            **load_kwargs,
        )
        config = read_export_config(export_dir)
        predictor = cls(model=model, image_size=config.get("training", {}).get("image_size", 512),
                        device=device)  # fmt: skip
        predictor.protocol = config.get("protocol")
        return predictor

    @property
    def shots(self) -> int:
        """How many annotated reference images the next prediction uses."""
        return len(self._images)

    def reset_reference(self) -> None:
        """Forget every reference (predicting then asks for one)."""
        self._images, self._masks, self._state = [], [], None

    def set_reference(self, image: ImageLike, **annotation: Any) -> None:
        """Use this one annotated image as the reference, replacing any earlier ones (1-shot).

        Takes the same arguments as :meth:`add_reference`. The annotation is checked before
        anything is replaced: a refused call keeps the previous reference.
        """
        shot = self._shot(image, **annotation)
        self._images, self._masks, self._state = [shot[0]], [shot[1]], None

    def add_reference(
        self,
        image: ImageLike,
        *,
        mask: MaskLike | None = None,
        box: Sequence[float] | None = None,
        points: np.ndarray | Sequence[Sequence[float]] | None = None,
        scribble: MaskLike | Polylines | None = None,
        stroke_width: int = 3,
    ) -> None:
        """Add another annotated reference image (k-shot); a refused call changes nothing.

        Args:
            image: the reference image, as :func:`load_rgb` reads it (path, PIL image or array).
            mask: (H, W) array or mask file of the image's size; the object is every non-zero
                pixel (palette index, grey level, or any colour channel; alpha ignored).
            box: two opposite corners (x0, y0, x1, y1) in pixels, in either order.
            points: (N, 2) (x, y) clicks on the object, inside the image.
            scribble: (H, W) stroke array or file (non-zero = stroke), or polylines
                [[(x, y), ...], ...].
            stroke_width: width of drawn polyline scribbles.

        Exactly one of ``mask``, ``box``, ``points``, ``scribble``; see :func:`annotation_to_mask`.
        """
        image_tensor, mask_tensor = self._shot(
            image, mask=mask, box=box, points=points, scribble=scribble, stroke_width=stroke_width
        )
        self._images.append(image_tensor)
        self._masks.append(mask_tensor)
        self._state = None

    def _shot(self, image: ImageLike, **annotation: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The model-size (3, S, S) image and (S, S) mask of one annotated reference."""
        rgb = load_rgb(image, what="reference image")
        binary = annotation_to_mask(rgb.shape[:2], **annotation)
        # Area resizing then "> 0" keeps every annotated pixel, so single clicks survive 512 px.
        size = (self.image_size, self.image_size)
        small = cv2.resize(binary.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        return self.transform.image(rgb), torch.from_numpy(small.astype(np.float32))

    @torch.no_grad()
    def _reference_state(self) -> ReferenceState:
        if not self._images:
            raise RuntimeError(
                "call set_reference(image, mask=/box=/points=/scribble=) before predict"
            )
        if self._state is None:
            images = torch.stack(self._images)[None].to(self.device)
            masks = torch.stack(self._masks)[None].to(self.device)
            self._state = self.model.reference_state(images, masks)
        return self._state

    @torch.no_grad()
    def _target_features(
        self, rgbs: list[np.ndarray], batch: torch.Tensor, sizes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mid, high, SAM embeddings) of the targets, computing only those not cached."""
        keys = [_content_key(rgb) for rgb in rgbs]
        missing = [i for i, key in enumerate(keys) if key not in self._targets]
        computed: dict[str, tuple[torch.Tensor, ...]] = {}
        if missing:
            mid, high = self.model.target_features(batch[missing])
            embeddings = self.model.sam.encode(batch[missing], sizes[missing])
            for j, i in enumerate(missing):
                computed[keys[i]] = (mid[j], high[j], embeddings[j])
        rows = [computed.get(key) or self._targets[key] for key in keys]
        for key, row in computed.items():
            self._remember(key, row)
        for key in keys:
            if key in self._targets:
                self._targets.move_to_end(key)
        return tuple(torch.stack(parts) for parts in zip(*rows, strict=True))

    def _remember(self, key: str, row: tuple[torch.Tensor, ...]) -> None:
        if self.target_cache_size <= 0:
            return
        self._targets[key] = row
        while len(self._targets) > self.target_cache_size:
            self._targets.popitem(last=False)

    def predict_batch(
        self, images: Sequence[ImageLike]
    ) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """Segment several targets with the current references (computed once), ``batch_size``
        targets per forward pass.

        Args:
            images: targets as :func:`load_rgb` reads them (paths, PIL images or arrays); a target
                that cannot be read raises before any of its chunk is predicted.

        Returns:
            per target: mask (H, W) bool, SAM's predicted IoU, logits (H, W) float32.
        """
        images = list(images)
        results = []
        for start in range(0, len(images), self.batch_size):
            results += self._predict_chunk(images[start : start + self.batch_size])
        return results

    @torch.no_grad()
    def _predict_chunk(
        self, images: Sequence[ImageLike]
    ) -> list[tuple[np.ndarray, float, np.ndarray]]:
        state = self._reference_state()
        rgbs = [load_rgb(image, what="target image") for image in images]
        batch = torch.stack([self.transform.image(rgb) for rgb in rgbs]).to(self.device)
        sizes = torch.tensor([rgb.shape[:2] for rgb in rgbs])
        mid, high, embeddings = self._target_features(rgbs, batch, sizes)
        prompts = self.model.prompts_from_reference(
            state.tile(len(rgbs)), None, self.shots, features=(mid, high)
        )
        logits, iou = self.model.decode(
            prompts, batch, target_sizes=sizes, image_embeddings=embeddings, return_iou=True
        )
        results = []
        for i, rgb in enumerate(rgbs):
            full = F.interpolate(
                logits[i : i + 1].float(), size=rgb.shape[:2], mode="bilinear", align_corners=False
            )
            full = full[0, 0].cpu().numpy()
            results.append((full > 0, float(iou[i, 0]), full))
        return results

    def predict(self, image: ImageLike) -> tuple[np.ndarray, float, np.ndarray]:
        """Segment one target: mask (H, W) bool, SAM's predicted IoU, logits (H, W) float32."""
        return self.predict_batch([image])[0]


def _content_key(rgb: np.ndarray) -> str:
    """A key for an image's content (same pixels → same frozen features)."""
    digest = hashlib.blake2b(rgb.tobytes(), digest_size=16)
    digest.update(repr(rgb.shape).encode())
    return digest.hexdigest()
