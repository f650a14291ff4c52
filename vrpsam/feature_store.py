"""An in-memory cache of frozen, annotation-independent features, keyed by image id.

Everything but the VRP encoder is frozen and the paper's recipe has no augmentation, so an image's
SAM embedding and backbone features are the same in every epoch. The store computes them the first
time an image is seen and serves them afterwards (as fp16 by default, to halve memory). What it
does *not* cache is the reference's high-level features: they are computed on the mask-multiplied
pre-high features, so they depend on the annotation of each episode.

Memory per image, fp16: ResNet-50 at 512 px stores mid (1536×64×64) + pre-high (1024×64×64) +
high (2048×64×64) ≈ 36 MiB, SAM ViT embeddings 256×64×64 = 2 MiB. Use it for small datasets and
small inputs (the demo: ResNet-18 at 128 px ≈ 0.5 MiB per image), or set ``backbone=False`` to
cache only the SAM embeddings, which are cheap to keep and the most expensive to compute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vrpsam.modeling.vrp_sam import VRPSAM


class FrozenFeatureStore:
    """Frozen features by image id.

    Args:
        model: the model whose frozen parts compute the features.
        backbone: cache backbone features.
        sam: cache SAM image embeddings.
        dtype: storage dtype.
    """

    def __init__(
        self, model: VRPSAM, *, backbone: bool = True, sam: bool = True, dtype=torch.float16
    ) -> None:
        self.model = model
        self.cache_backbone = backbone
        self.cache_sam = sam
        self.dtype = dtype
        self.entries: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for e in self.entries.values() for t in e.values())

    def _fill(self, ids: Sequence[str], images: torch.Tensor, keys: tuple[str, ...], sizes=None):
        """Compute ``keys`` for the ids that lack them and store them.

        One image at a time, so that what is stored never depends on which images happened to
        share a batch (a convolution's last bits can); each image is computed once anyway.
        """
        for i, image_id in enumerate(ids):
            entry = self.entries.setdefault(image_id, {})
            if all(k in entry for k in keys):
                continue
            image = images[i : i + 1]
            with torch.no_grad():
                computed: dict[str, torch.Tensor] = {}
                if "mid" in keys or "high" in keys:
                    computed["mid"], computed["pre_high"] = self.model.backbone.mid(image)
                    if "high" in keys:
                        computed["high"] = self.model.backbone.high(computed["pre_high"])
                if "sam" in keys:
                    size = None if sizes is None else sizes[i : i + 1]
                    computed["sam"] = self.model.sam.encode(image, size)
            for key, value in computed.items():
                entry.setdefault(key, value[0].detach().to("cpu", self.dtype))

    def _stack(self, ids: Sequence[str], key: str, device) -> torch.Tensor:
        return torch.stack([self.entries[i][key] for i in ids]).to(device, torch.float32)

    def target(
        self, ids: Sequence[str], images: torch.Tensor, sizes: torch.Tensor | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
        """(target features (mid, high) or None, SAM embeddings or None) for B target images."""
        keys = (("mid", "high") if self.cache_backbone else ()) + (
            ("sam",) if self.cache_sam else ()
        )
        self._fill(ids, images, keys, sizes)
        device = images.device
        features = (
            (self._stack(ids, "mid", device), self._stack(ids, "high", device))
            if self.cache_backbone
            else None
        )
        embeddings = self._stack(ids, "sam", device) if self.cache_sam else None
        return features, embeddings

    def reference(
        self, ids: Sequence[str], images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Reference features (mid, pre_high) for N reference images, or None when not cached."""
        if not self.cache_backbone:
            return None
        self._fill(ids, images, ("mid",))
        device = images.device
        return self._stack(ids, "mid", device), self._stack(ids, "pre_high", device)
