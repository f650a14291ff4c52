"""The VRP encoder: the only learnable part of VRP-SAM (1,592,064 parameters with ResNet-50).

Feature augmenter (DESIGN §2): a shared 1×1 reduce conv on reference and target mid features, a
masked-average prototype of the reference, a shared 1×1 merge conv over
[features, tiled prototype, 10 × mask] — the reference mask for the reference, the pseudo-mask for
the target. Prompt generator: 50 learnable queries attend to the reference (cross, then self), then
to the target (cross, then self); post-norm, no feed-forward block, sine positions on keys only.

The work splits into a reference side (:meth:`VRPEncoder.encode_reference`) and a target side
(:meth:`VRPEncoder.encode_target`) so a predictor can compute the reference once and reuse it for
every target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MASK_DOWNSAMPLE_MODES = ("max", "area", "nearest")
PROTOTYPE_EPS = 5e-4
COSINE_EPS = 1e-7
MASK_CHANNEL_SCALE = 10.0


def downsample_mask(mask: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Bring a reference annotation mask (B, 1, H, W) to a feature grid (B, 1, h, w).

    ``max`` keeps every cell that holds any annotated pixel, so 20 clicked points survive the
    512→64 reduction; ``area`` gives each cell its annotated fraction; ``nearest`` is the official
    code's choice, which samples one pixel per cell and loses most points (DESIGN §3).
    """
    if mode == "max":
        return F.adaptive_max_pool2d(mask, size)
    if mode == "area":
        return F.adaptive_avg_pool2d(mask, size)
    if mode == "nearest":
        return F.interpolate(mask, size=size, mode="nearest")
    raise ValueError(f"mask downsampling must be one of {MASK_DOWNSAMPLE_MODES}, got {mode!r}")


def masked_average(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Prototype sum(f·m) / (sum(m) + 5e-4): (B, C, h, w), (B, 1, h, w) → (B, C, 1, 1)."""
    return (features * mask).sum(dim=(2, 3), keepdim=True) / (
        mask.sum(dim=(2, 3), keepdim=True) + PROTOTYPE_EPS
    )


@torch.no_grad()
def pseudo_mask(
    target_high: torch.Tensor,
    reference_high: torch.Tensor,
    reference_mask: torch.Tensor,
    *,
    minmax: bool = False,
) -> torch.Tensor:
    """PFENet-style prior: for each target position, the best cosine similarity to a masked
    reference position.

    Args:
        target_high: (B, C, h, w).
        reference_high: (B, C, h, w), masked or not; it is multiplied by the mask here.
        reference_mask: (B, 1, h', w'); resized bilinearly to (h, w).
        minmax: min-max normalise per image (PFENet and the paper's appendix); the official
            VRP-SAM code does not.

    Returns:
        (B, 1, h, w). Background reference positions are zero vectors, so they score 0.
    """
    b, _, h, w = target_high.shape
    mask = F.interpolate(
        reference_mask, size=reference_high.shape[-2:], mode="bilinear", align_corners=True
    )
    ref = (reference_high * mask).flatten(2).transpose(1, 2)  # (B, HWr, C)
    tgt = target_high.flatten(2)  # (B, C, HWt)
    norms = ref.norm(dim=2, keepdim=True) @ tgt.norm(dim=1, keepdim=True)
    similarity = (ref @ tgt) / (norms + COSINE_EPS)
    prior = similarity.max(dim=1).values.view(b, 1, h, w)
    if minmax:
        low = prior.amin(dim=(2, 3), keepdim=True)
        high = prior.amax(dim=(2, 3), keepdim=True)
        prior = (prior - low) / (high - low + COSINE_EPS)
    return prior


def sine_positions(h: int, w: int, dim: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """DETR's normalised 2-D sine encoding for an (h, w) grid: (h·w, dim).

    Rows first (dim/2 channels), then columns; sine on even and cosine on odd channels.
    """
    half = dim // 2
    ys = torch.arange(1, h + 1, device=device, dtype=torch.float32)
    xs = torch.arange(1, w + 1, device=device, dtype=torch.float32)
    ys = ys / (ys[-1] + 1e-6) * 2 * math.pi
    xs = xs / (xs[-1] + 1e-6) * 2 * math.pi
    steps = torch.arange(half, device=device, dtype=torch.float32)
    freqs = 10000 ** (2 * torch.div(steps, 2, rounding_mode="floor") / half)

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos[:, None] / freqs
        return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)

    rows = encode(ys)[:, None, :].expand(h, w, half)
    cols = encode(xs)[None, :, :].expand(h, w, half)
    return torch.cat([rows, cols], dim=2).reshape(h * w, dim).to(dtype)


class AttentionBlock(nn.Module):
    """Multi-head attention with a post-norm residual; positions are added to keys only."""

    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=0.0, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        for p in self.attn.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        queries: torch.Tensor,
        memory: torch.Tensor | None = None,
        key_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Queries (B, N, C); memory (B, M, C) or None for self-attention; key_pos (M, C)."""
        if memory is None:
            attended = self.attn(queries, queries, queries, need_weights=False)[0]
        else:
            keys = memory if key_pos is None else memory + key_pos
            attended = self.attn(queries, keys, memory, need_weights=False)[0]
        return self.norm(queries + attended)


class PromptGeneratorLayer(nn.Module):
    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.reference_cross = AttentionBlock(dim=dim, num_heads=num_heads)
        self.reference_self = AttentionBlock(dim=dim, num_heads=num_heads)
        self.target_cross = AttentionBlock(dim=dim, num_heads=num_heads)
        self.target_self = AttentionBlock(dim=dim, num_heads=num_heads)

    def attend_reference(self, queries, reference, reference_pos):
        return self.reference_self(self.reference_cross(queries, reference, reference_pos))

    def attend_target(self, queries, target, target_pos):
        return self.target_self(self.target_cross(queries, target, target_pos))


@dataclass
class ReferenceState:
    """What the target side needs from a reference, computed once per reference.

    Attributes:
        prototype: (B, C, 1, 1) masked-average reference feature.
        tokens: (B, h·w, C) merged reference features (keys/values of the reference attention).
        positions: (h·w, C) sine positions of ``tokens``.
        high: (B, Ch, h, w) reference high-level features (masked if the backbone masks first).
        mask: (B, 1, h, w) reference mask on the feature grid.
        queries: (B, Q, C) queries after the first layer's reference attention.
    """

    prototype: torch.Tensor
    tokens: torch.Tensor
    positions: torch.Tensor
    high: torch.Tensor
    mask: torch.Tensor
    queries: torch.Tensor

    def tile(self, times: int) -> ReferenceState:
        """The same references for ``times`` targets: batch B·k becomes times·B·k."""
        if times == 1:
            return self
        return ReferenceState(
            prototype=self.prototype.repeat(times, 1, 1, 1),
            tokens=self.tokens.repeat(times, 1, 1),
            positions=self.positions,
            high=self.high.repeat(times, 1, 1, 1),
            mask=self.mask.repeat(times, 1, 1, 1),
            queries=self.queries.repeat(times, 1, 1),
        )


class VRPEncoder(nn.Module):
    """Feature augmenter + prompt generator.

    Args:
        mid_channels: channels of the backbone's mid features (1536 for ResNet-50).
        dim: width of prompts; must equal SAM's prompt embedding width (256).
        num_queries, num_heads, num_layers: prompt generator sizes (paper: 50, 4, 1).
        dropout: Dropout2d after the reduce conv (0.5 in the paper's code).
        pseudo_mask_minmax: see :func:`pseudo_mask`.
    """

    def __init__(
        self,
        *,
        mid_channels: int,
        dim: int = 256,
        num_queries: int = 50,
        num_heads: int = 4,
        num_layers: int = 1,
        dropout: float = 0.5,
        pseudo_mask_minmax: bool = False,
    ) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(mid_channels, dim, kernel_size=1, bias=False),
            nn.ReLU(),
            nn.Dropout2d(dropout),
        )
        self.merge = nn.Sequential(
            nn.Conv2d(2 * dim + 1, dim, kernel_size=1, bias=False), nn.ReLU()
        )
        self.queries = nn.Embedding(num_queries, dim)
        self.layers = nn.ModuleList(
            PromptGeneratorLayer(dim=dim, num_heads=num_heads) for _ in range(num_layers)
        )
        self.dim = dim
        self.num_queries = num_queries
        self.pseudo_mask_minmax = pseudo_mask_minmax

    def _merge(
        self, reduced: torch.Tensor, prototype: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        tiled = prototype.expand(-1, -1, *reduced.shape[-2:])
        return self.merge(torch.cat([reduced, tiled, MASK_CHANNEL_SCALE * mask], dim=1))

    @staticmethod
    def _tokens(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, c, h, w = features.shape
        pos = sine_positions(h, w, c, device=features.device, dtype=features.dtype)
        return features.flatten(2).transpose(1, 2), pos

    def encode_reference(
        self, mid: torch.Tensor, high: torch.Tensor, mask: torch.Tensor
    ) -> ReferenceState:
        """Args:
        mid: (B, mid_channels, h, w) reference mid features.
        high: (B, Ch, h', w') reference high features.
        mask: (B, 1, h, w) reference mask on the mid grid.
        """
        reduced = self.reduce(mid)
        prototype = masked_average(reduced, mask)
        tokens, pos = self._tokens(self._merge(reduced, prototype, mask))
        queries = self.queries.weight.unsqueeze(0).expand(mid.shape[0], -1, -1)
        queries = self.layers[0].attend_reference(queries, tokens, pos)
        return ReferenceState(
            prototype=prototype, tokens=tokens, positions=pos, high=high, mask=mask, queries=queries
        )

    def encode_target(
        self, reference: ReferenceState, mid: torch.Tensor, high: torch.Tensor
    ) -> torch.Tensor:
        """Args:
        reference: from :meth:`encode_reference` (batch B).
        mid: (B, mid_channels, h, w) target mid features.
        high: (B, Ch, h', w') target high features.

        Returns:
            (B, num_queries, dim) prompt embeddings for SAM.
        """
        prior = pseudo_mask(high, reference.high, reference.mask, minmax=self.pseudo_mask_minmax)
        if prior.shape[-2:] != mid.shape[-2:]:
            prior = F.interpolate(prior, size=mid.shape[-2:], mode="bilinear", align_corners=True)
        target, target_pos = self._tokens(self._merge(self.reduce(mid), reference.prototype, prior))
        queries = self.layers[0].attend_target(reference.queries, target, target_pos)
        for layer in self.layers[1:]:
            queries = layer.attend_reference(queries, reference.tokens, reference.positions)
            queries = layer.attend_target(queries, target, target_pos)
        return queries
