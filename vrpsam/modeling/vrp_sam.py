"""VRP-SAM: frozen backbone + learnable VRP encoder + frozen SAM, and its builder."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from vrpsam.modeling.backbones import FrozenBackbone, build_backbone
from vrpsam.modeling.precision import check_frozen_autocast, frozen_autocast_context
from vrpsam.modeling.sam import FrozenSam, build_sam
from vrpsam.modeling.switches import ModelSwitches
from vrpsam.modeling.vrp_encoder import ReferenceState, VRPEncoder, downsample_mask

RANDOM_FROZEN_SEED = 0
"""Seed of the frozen backbone and SAM when they are built without weight files (tests, demos)."""


class EmptyReferenceError(ValueError):
    """A reference annotation without a single foreground pixel: there is nothing to look for."""


def check_inputs(
    target_images: torch.Tensor, reference_images: torch.Tensor, reference_masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate model inputs and give references an explicit shot axis.

    Accepts references as (B, k, 3, H, W) / (B, k, H, W), or (B, 3, H, W) / (B, H, W) for one shot.

    Returns:
        reference_images (B, k, 3, H, W) and reference_masks (B, k, H, W), float.

    Raises:
        ValueError: wrong ranks, channels, batch sizes, image/mask sizes, or non-binary masks.
        EmptyReferenceError: a reference mask with no foreground pixel (names which).
    """
    if target_images.dim() != 4 or target_images.shape[1] != 3:
        raise ValueError(f"target_images must be (B, 3, H, W); got {tuple(target_images.shape)}")
    if reference_images.dim() == 4:
        reference_images = reference_images.unsqueeze(1)
    if reference_masks.dim() == 3:
        reference_masks = reference_masks.unsqueeze(1)
    if reference_images.dim() != 5 or reference_images.shape[2] != 3:
        raise ValueError(
            "reference_images must be (B, k, 3, H, W) with 3 channels; "
            f"got {tuple(reference_images.shape)}"
        )
    if reference_masks.dim() != 4:
        raise ValueError(
            f"reference_masks must be (B, k, H, W); got {tuple(reference_masks.shape)}"
        )
    b, k = reference_images.shape[:2]
    if target_images.shape[0] != b or reference_masks.shape[:2] != (b, k):
        raise ValueError(
            f"batch/shot mismatch: targets {target_images.shape[0]}, reference images {(b, k)}, "
            f"reference masks {tuple(reference_masks.shape[:2])}"
        )
    if reference_masks.shape[-2:] != reference_images.shape[-2:]:
        raise ValueError(
            f"reference mask size {tuple(reference_masks.shape[-2:])} differs from reference image "
            f"size {tuple(reference_images.shape[-2:])}; resize masks with nearest interpolation"
        )
    masks = reference_masks.float()
    if ((masks != 0) & (masks != 1)).any():
        values = torch.unique(masks)[:6].tolist()
        raise ValueError(
            f"reference masks must be binary {{0, 1}}; found values {values}. Map ignore labels "
            f"(255) to 0 and class ids to 1 before passing annotations."
        )
    empty = (masks.flatten(2).amax(dim=2) == 0).nonzero().tolist()
    if empty:
        raise EmptyReferenceError(
            f"reference annotation is empty for (batch, shot) {empty[:5]}: a point, scribble, box "
            f"or mask reference needs at least one foreground pixel"
        )
    return reference_images, masks


class VRPSAM(nn.Module):
    """VRP-SAM. Only :attr:`encoder` has trainable parameters.

    Args:
        backbone: a frozen feature extractor.
        encoder: the VRP encoder (its ``dim`` must equal SAM's prompt width).
        sam: the frozen SAM.
        switches: the model's behaviour switches (see :mod:`vrpsam.modeling.switches`).
        mask_before_high: compute the reference's high features on mask-multiplied pre-high
            features (paper/PFENet). False is a faster deviation: high features of the unmasked
            reference (cacheable), masked afterwards.
        frozen_autocast: whether the frozen encoders follow an enclosing autocast: ``auto``
            (where the hardware has native low precision), ``on`` or ``off`` (see
            :mod:`vrpsam.modeling.precision`).
    """

    def __init__(
        self,
        *,
        backbone: FrozenBackbone,
        encoder: VRPEncoder,
        sam: FrozenSam,
        switches: ModelSwitches | None = None,
        mask_before_high: bool = True,
        frozen_autocast: str = "auto",
    ) -> None:
        super().__init__()
        if encoder.dim != sam.embed_dim:
            raise ValueError(f"VRP encoder width {encoder.dim} != SAM prompt width {sam.embed_dim}")
        self.backbone = backbone
        self.encoder = encoder
        self.sam = sam
        self.switches = switches or ModelSwitches()
        self.mask_before_high = mask_before_high
        self.frozen_autocast = check_frozen_autocast(frozen_autocast)
        self.build_spec: dict = {}  # filled by build_vrp_sam; what an export needs to rebuild

    @property
    def reference_high_needs_mask(self) -> bool:
        """Whether the reference's high features are computed on mask-multiplied features (the
        paper's pseudo-mask), so that only the pre-high features can be computed ahead."""
        return self.mask_before_high and self.backbone.masks_before_high

    def frozen_precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Context in which the frozen encoders run on ``device`` (see ``frozen_autocast``)."""
        return frozen_autocast_context(self.frozen_autocast, device.type)

    @torch.no_grad()
    def reference_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Annotation-independent reference features of (N, 3, H, W) images: (mid, pre_high),
        or (mid, high) when the high features need no mask (see
        :attr:`reference_high_needs_mask`)."""
        with self.frozen_precision(images.device):
            mid, pre_high = self.backbone.mid(images)
            if self.reference_high_needs_mask:
                return mid, pre_high
            return mid, self.backbone.high(pre_high)

    @torch.no_grad()
    def target_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target features (mid, high) of (N, 3, H, W) images; they depend on nothing else."""
        with self.frozen_precision(images.device):
            mid, pre_high = self.backbone.mid(images)
            return mid, self.backbone.high(pre_high)

    def reference_state(
        self,
        reference_images: torch.Tensor | None,
        reference_masks: torch.Tensor,
        *,
        features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> ReferenceState:
        """The reference side, computed once per reference set.

        Args:
            reference_images: (B, k, 3, H, W) ImageNet-normalised (already validated); may be
                None when ``features`` are given.
            reference_masks: (B, k, H, W) binary float.
            features: precomputed :meth:`reference_features` of the B·k images (feature cache).

        Returns:
            a :class:`ReferenceState` of batch B·k (shot-major within each sample).
        """
        masks = reference_masks.flatten(0, 1).unsqueeze(1)
        if features is None:
            features = self.reference_features(reference_images.flatten(0, 1))
        mid, second = (f.to(masks.dtype) for f in features)
        with torch.no_grad(), self.frozen_precision(masks.device):
            grid_mask = downsample_mask(masks, mid.shape[-2:], self.switches.mask_downsample)
            high = second
            if self.reference_high_needs_mask:
                # The reference's high features depend on its mask (PFENet's trick), so they
                # are computed per episode even when everything else comes from a cache.
                high_mask = grid_mask
                if second.shape[-2:] != mid.shape[-2:]:
                    high_mask = downsample_mask(
                        masks, second.shape[-2:], self.switches.mask_downsample
                    )
                high = self.backbone.high(second, high_mask)
        return self.encoder.encode_reference(mid, high, grid_mask)

    def prompts_from_reference(
        self,
        reference: ReferenceState,
        target_images: torch.Tensor | None,
        shots: int,
        *,
        features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Target side: targets (B, 3, H, W) (or their precomputed :meth:`target_features`) and a
        B·k reference state → (B, k·Q, C) prompts."""
        if features is None:
            features = self.target_features(target_images)
        mid, high = (f.to(reference.tokens.dtype) for f in features)
        batch = mid.shape[0]
        if shots > 1:
            mid, high = mid.repeat_interleave(shots, 0), high.repeat_interleave(shots, 0)
        prompts = self.encoder.encode_target(reference, mid, high)  # (B·k, Q, C)
        return prompts.reshape(batch, shots * prompts.shape[1], prompts.shape[2])

    def prompt_embeddings(
        self,
        target_images: torch.Tensor,
        reference_images: torch.Tensor,
        reference_masks: torch.Tensor,
        *,
        target_features: tuple[torch.Tensor, torch.Tensor] | None = None,
        reference_features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """SAM prompt embeddings (B, k·Q, C) for targets (B, 3, H, W), references (B, k, 3, H, W)
        and reference annotation masks (B, k, H, W) in {0, 1}; features as in
        :meth:`reference_state` / :meth:`prompts_from_reference`."""
        reference_images, reference_masks = check_inputs(
            target_images, reference_images, reference_masks
        )
        state = self.reference_state(reference_images, reference_masks, features=reference_features)
        shots = reference_images.shape[1]
        return self.prompts_from_reference(state, target_images, shots, features=target_features)

    def decode(
        self,
        prompts: torch.Tensor,
        target_images: torch.Tensor,
        *,
        target_sizes: torch.Tensor | None = None,
        image_embeddings: torch.Tensor | None = None,
        return_iou: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """SAM decoding of prompts (B, N, C) → mask logits (B, 1, H, W) on the targets' frame,
        and SAM's predicted IoU (B, 1) when ``return_iou``."""
        if image_embeddings is None:
            with self.frozen_precision(target_images.device):
                image_embeddings = self.sam.encode(target_images, target_sizes)
        low_res, iou = self.sam.decode(image_embeddings.to(prompts.dtype), prompts)
        frames = self.sam.frame_sizes(target_images, target_sizes)
        logits = self.sam.postprocess(low_res, tuple(target_images.shape[-2:]), frames)
        return (logits, iou) if return_iou else logits

    def forward(
        self,
        target_images: torch.Tensor,
        reference_images: torch.Tensor,
        reference_masks: torch.Tensor,
        *,
        target_sizes: torch.Tensor | None = None,
        image_embeddings: torch.Tensor | None = None,
        target_features: tuple[torch.Tensor, torch.Tensor] | None = None,
        reference_features: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Mask logits (B, 1, H, W) of the referenced class in each target.

        Args:
            target_images: (B, 3, H, W) ImageNet-normalised.
            reference_images: (B, k, 3, H, W) ImageNet-normalised.
            reference_masks: (B, k, H, W) binary annotation masks (point/scribble/box/mask).
            target_sizes: optional (B, 2) original (H, W) of the targets, so SAM's
                resize-longest-side sees the true aspect ratio.
            image_embeddings: optional precomputed SAM image embeddings (B, C, h, w) (cache).
            target_features, reference_features: optional precomputed frozen backbone features
                (see :meth:`target_features`, :meth:`reference_features`).
        """
        prompts = self.prompt_embeddings(
            target_images,
            reference_images,
            reference_masks,
            target_features=target_features,
            reference_features=reference_features,
        )
        return self.decode(
            prompts, target_images, target_sizes=target_sizes, image_embeddings=image_embeddings
        )


def build_vrp_sam(
    *,
    backbone: str,
    sam: str,
    sam_checkpoint: str | Path | None = None,
    backbone_checkpoint: str | Path | None = None,
    official_compat: bool = False,
    num_queries: int = 50,
    num_heads: int = 4,
    num_layers: int = 1,
    dropout: float = 0.5,
    mask_before_high: bool = True,
    mask_downsample: str | None = None,
    sam_preprocess: str | None = None,
    align_corners: bool | None = None,
    pseudo_mask_minmax: bool | None = None,
    backbone_kwargs: dict | None = None,
    sam_kwargs: dict | None = None,
    sam_image_encoder: bool = True,
    frozen_autocast: str = "auto",
) -> VRPSAM:
    """Build VRP-SAM. With no checkpoint paths it builds random weights and reads no file.

    Args:
        backbone: ``resnet50``, ``resnet50_deepstem``, ``vgg16``, ``dinov2_vitb14``, ``resnet18``.
        sam: ``tiny``, ``vit_b``, ``vit_l`` or ``vit_h``.
        sam_checkpoint, backbone_checkpoint: local weight files.
        official_compat: restore every official-code model behaviour (see
            :mod:`vrpsam.modeling.switches`; the run's other switches:
            :mod:`vrpsam.engine.protocol`).
        num_queries, num_heads, num_layers, dropout: prompt generator sizes.
        mask_before_high: see :class:`VRPSAM`.
        mask_downsample, sam_preprocess, align_corners, pseudo_mask_minmax: explicit switch
            overrides (None keeps the default or official value).
        backbone_kwargs, sam_kwargs: size overrides passed to the backbone / tiny-SAM builders.
        sam_image_encoder: False skips SAM's image encoder (image embeddings come from a
            feature cache); not part of the architecture an export records.
        frozen_autocast: see :class:`VRPSAM`; a run-time setting, not recorded in exports.
    """
    switches = ModelSwitches.resolve(
        official_compat=official_compat,
        mask_downsample=mask_downsample,
        sam_preprocess=sam_preprocess,
        align_corners=align_corners,
        pseudo_mask_minmax=pseudo_mask_minmax,
    )
    # Random frozen weights come from a fixed seed, not from the global RNG: a model built without
    # weight files is the same in every process and every run, so its export reloads it exactly.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_FROZEN_SEED)
        frozen_backbone = build_backbone(
            backbone, checkpoint=backbone_checkpoint, **(backbone_kwargs or {})
        )
        frozen_sam = build_sam(
            sam,
            checkpoint=sam_checkpoint,
            preprocess=switches.sam_preprocess,
            align_corners=switches.align_corners,
            image_encoder=sam_image_encoder,
            **(sam_kwargs or {}),
        )
    encoder = VRPEncoder(
        mid_channels=frozen_backbone.mid_channels,
        dim=frozen_sam.embed_dim,
        num_queries=num_queries,
        num_heads=num_heads,
        num_layers=num_layers,
        dropout=dropout,
        pseudo_mask_minmax=switches.pseudo_mask_minmax,
    )
    model = VRPSAM(
        backbone=frozen_backbone,
        encoder=encoder,
        sam=frozen_sam,
        switches=switches,
        mask_before_high=mask_before_high,
        frozen_autocast=frozen_autocast,
    )
    # Everything needed to rebuild this architecture (weight paths excluded): exports store it.
    model.build_spec = {
        "backbone": backbone,
        "sam": sam,
        "num_queries": num_queries,
        "num_heads": num_heads,
        "num_layers": num_layers,
        "dropout": dropout,
        "mask_before_high": mask_before_high,
        "backbone_kwargs": dict(backbone_kwargs or {}),
        "sam_kwargs": dict(sam_kwargs or {}),
        **switches.as_dict(),
    }
    return model
