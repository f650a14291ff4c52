"""Frozen, annotation-independent features by image id: from a disk cache or kept in memory.

Everything but the VRP encoder is frozen and the paper's recipe has no augmentation, so an image's
SAM embedding and backbone features are the same in every epoch. The store serves them from a
:class:`~vrpsam.cache.FeatureCache` built by ``vrpsam-cache`` when there is one, else computes them
the first time an image is seen and keeps them in memory (fp16 by default, to halve memory). What
it never caches is the reference's high-level features of the paper's pseudo-mask: they are computed
on the mask-multiplied pre-high features, so they depend on each episode's annotation. (With
``model.mask_before_high=false``, a faster deviation, they are the unmasked high features, which are
cached like the target's.)

Memory per image, fp16: ResNet-50 at 512 px stores mid (1536×64×64) + pre-high (1024×64×64) +
high (2048×64×64) ≈ 36 MiB, SAM ViT embeddings 256×64×64 = 2 MiB. Keep backbone features in
memory for small datasets and small inputs only (the demo: ResNet-18 at 128 px ≈ 0.5 MiB per
image); for real datasets use the disk cache (``vrpsam-cache``, memory-mapped) or cache only the
SAM embeddings (``cache_features=sam``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vrpsam.modeling.vrp_sam import VRPSAM


class FrozenFeatureStore:
    """Frozen features by image id.

    Args:
        model: the model whose frozen parts compute what no cache holds.
        backbone: keep backbone features in memory.
        sam: keep SAM image embeddings in memory.
        dtype: in-memory storage dtype.
        disk: disk caches by kind (``"sam"``, ``"backbone"``); what they hold is read from them.
    """

    def __init__(
        self,
        *,
        model: VRPSAM,
        backbone: bool = True,
        sam: bool = True,
        dtype=torch.float16,
        disk: dict | None = None,
    ) -> None:
        self.model = model
        self.disk = {k: v for k, v in (disk or {}).items() if v is not None}
        self.cache_backbone = backbone or "backbone" in self.disk
        self.cache_sam = sam or "sam" in self.disk
        self.dtype = dtype
        self.entries: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def nbytes(self) -> int:
        """Bytes held in memory (disk caches are memory-mapped and not counted)."""
        return sum(t.numel() * t.element_size() for e in self.entries.values() for t in e.values())

    def _compute(self, image: torch.Tensor, keys: set[str], size) -> dict[str, torch.Tensor]:
        computed: dict[str, torch.Tensor] = {}
        with torch.no_grad(), self.model.frozen_precision(image.device):
            if keys & {"mid", "pre_high", "high"}:
                computed["mid"], computed["pre_high"] = self.model.backbone.mid(image)
                if "high" in keys:
                    computed["high"] = self.model.backbone.high(computed["pre_high"])
            if "sam" in keys:
                computed["sam"] = self.model.sam.encode(image, size)
        return computed

    def _memory(self, ids, images, keys: tuple[str, ...], sizes) -> dict[str, list[torch.Tensor]]:
        """Compute ``keys`` for the ids that lack them, keep them, return them per id.

        One image at a time, so that what is stored never depends on which images happened to
        share a batch (a convolution's last bits can); each image is computed once anyway.
        """
        out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for i, image_id in enumerate(ids):
            entry = self.entries.setdefault(image_id, {})
            missing = {k for k in keys if k not in entry}
            if missing:
                size = None if sizes is None else sizes[i : i + 1]
                for key, value in self._compute(images[i : i + 1], missing, size).items():
                    entry.setdefault(key, value[0].detach().to("cpu", self.dtype))
            for key in keys:
                out[key].append(entry[key])
        return out

    def features(
        self,
        ids: Sequence[str],
        images: torch.Tensor,
        keys: tuple[str, ...],
        sizes: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """{key: (N, ...) float32 on the images' device} for N images, from disk or memory."""
        device = images.device
        kind = {k: "sam" if k == "sam" else "backbone" for k in keys}
        on_disk = [k for k in keys if kind[k] in self.disk]
        in_memory = tuple(k for k in keys if k not in on_disk)
        # Computed under the ambient autocast (the model's frozen_precision decides), kept as
        # rows of self.dtype.
        rows = self._memory(ids, images, in_memory, sizes) if in_memory else {}
        # Stored fp16 rows are read and stacked outside autocast: CPU autocast cannot promote fp16.
        with torch.autocast(device.type, enabled=False):
            result = {k: self.disk[kind[k]].get(ids, k) for k in on_disk}
            result.update({key: torch.stack(r) for key, r in rows.items()})
            return {key: result[key].to(device, torch.float32) for key in keys}

    def target(
        self, ids: Sequence[str], images: torch.Tensor, sizes: torch.Tensor | None = None
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
        """(target features (mid, high) or None, SAM embeddings or None) for B target images."""
        keys = (("mid", "high") if self.cache_backbone else ()) + (
            ("sam",) if self.cache_sam else ()
        )
        found = self.features(ids, images, keys, sizes)
        features = (found["mid"], found["high"]) if self.cache_backbone else None
        return features, found.get("sam")

    def reference(
        self, ids: Sequence[str], images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Reference features for N reference images, or None when not cached: (mid, pre_high),
        or (mid, high) when the model takes unmasked high features (``mask_before_high=False``)."""
        if not self.cache_backbone:
            return None
        second = "pre_high" if self.model.reference_high_needs_mask else "high"
        found = self.features(ids, images, ("mid", second))
        return found["mid"], found[second]
