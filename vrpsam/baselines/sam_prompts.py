"""Geometric prompting of a frozen SAM, one image at a time: the training-free baselines' tool.

Coordinates: methods work on the pipeline's square (S, S) frame; SAM works on its own input frame
(resize-longest-side of the *original* image, then padding, or a squash). :class:`SamImage` keeps
the embedding of one image together with the mapping between the two frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vrpsam.modeling.sam import FrozenSam, decode_batch


@dataclass
class SamImage:
    """One image's SAM embedding and frame geometry.

    Attributes:
        embedding: (1, C, h, w) SAM image embedding.
        frame: (fh, fw), the part of SAM's square input frame the image occupies.
        size: (S, S), the pipeline frame the method works in.
    """

    embedding: torch.Tensor
    frame: tuple[int, int]
    size: tuple[int, int]


@torch.no_grad()
def encode_image(
    sam: FrozenSam, image: torch.Tensor, original_size: tuple[int, int] | None = None
) -> SamImage:
    """Embed a (3, S, S) ImageNet-normalised image (``original_size``: its true (h, w))."""
    sizes = None if original_size is None else torch.tensor([original_size])
    batch = image[None]
    embedding = sam.encode(batch, sizes)
    frame = sam.frame_sizes(batch, sizes)[0]
    return SamImage(embedding=embedding, frame=frame, size=tuple(image.shape[-2:]))


def to_sam_coords(image: SamImage, xy: torch.Tensor) -> torch.Tensor:
    """(..., 2) (x, y) pixel coordinates of the (S, S) frame → SAM input-frame coordinates."""
    fh, fw = image.frame
    sh, sw = image.size
    scale = torch.tensor([fw / sw, fh / sh], dtype=torch.float32, device=xy.device)
    # Pixel centres map to pixel centres.
    return (xy.float() + 0.5) * scale - 0.5


def box_to_sam(image: SamImage, box: torch.Tensor) -> torch.Tensor:
    """(..., 4) (x0, y0, x1, y1) box in the (S, S) frame → SAM input-frame coordinates."""
    corners = to_sam_coords(image, box.reshape(*box.shape[:-1], 2, 2))
    return corners.reshape(box.shape)


@torch.no_grad()
def prompt_sam(
    sam: FrozenSam,
    image: SamImage,
    *,
    points: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    box: torch.Tensor | None = None,
    mask_input: torch.Tensor | None = None,
    multimask_output: bool = True,
    extra_tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode P prompt sets on one image, as SamPredictor.predict_torch does.

    Args:
        points: (P, N, 2) (x, y) in the (S, S) frame; labels (P, N): 1 object, 0 background.
        box: (P, 4) (x0, y0, x1, y1) in the (S, S) frame.
        mask_input: (P, 1, 4h, 4w) low-res logits of a previous pass (SAM's mask prompt).
        multimask_output: 3 outputs per prompt set (True) or the single one.
        extra_tokens: (P, T, C) tokens appended to the sparse prompts.

    Returns:
        low-res logits (P, M, 4h, 4w) on SAM's input frame and predicted IoU (P, M).
    """
    encoder = sam.sam.prompt_encoder
    point_prompt = None
    if points is not None:
        if labels is None:
            labels = torch.ones(points.shape[:2], dtype=torch.int64, device=points.device)
        point_prompt = (to_sam_coords(image, points), labels)
    sam_box = None if box is None else box_to_sam(image, box)
    sparse, dense = encoder(points=point_prompt, boxes=sam_box, masks=mask_input)
    if extra_tokens is not None:
        sparse = torch.cat([sparse, extra_tokens.to(sparse.dtype)], dim=1)
    count = sparse.shape[0]
    embeddings = image.embedding.expand(count, -1, -1, -1)
    if dense.shape[0] != count:
        dense = dense.expand(count, -1, -1, -1)
    return decode_batch(sam.sam, embeddings, sparse, dense, multimask_output=multimask_output)


def to_frame(sam: FrozenSam, image: SamImage, low_res: torch.Tensor) -> torch.Tensor:
    """Low-res logits (P, M, 4h, 4w) on SAM's frame → logits (P, M, S, S) on the method's frame."""
    return sam.postprocess(low_res, image.size, [image.frame] * low_res.shape[0])


def mask_box(mask: torch.Tensor) -> torch.Tensor | None:
    """(x0, y0, x1, y1) of a (H, W) boolean mask's foreground, or None when it is empty."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if ys.numel() == 0:
        return None
    return torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()


def sample_points(mask: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Up to ``count`` distinct foreground pixels of a (H, W) boolean mask, drawn at random.

    Args:
        mask: (H, W) boolean mask.
        count: how many points at most; all foreground pixels when it has fewer.
        generator: a CPU ``torch.Generator`` (seed it from the episode for determinism).

    Returns:
        (n, 2) float (x, y) pixel coordinates, n = min(count, foreground pixels), in drawing
        order.
    """
    ys, xs = torch.nonzero(mask, as_tuple=True)
    # Drawn on the CPU generator, so the same seed picks the same pixels on any device.
    chosen = torch.randperm(ys.numel(), generator=generator)[:count].to(ys.device)
    return torch.stack([xs[chosen], ys[chosen]], dim=1).float()
