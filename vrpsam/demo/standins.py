"""Stand-ins for the released weights, fitted on a fold's *base-class* training images.

No SAM checkpoint or ImageNet backbone can be downloaded on the machines the demo targets, and a
VRP encoder on top of random frozen parts learns nothing (the VRP encoder collapses to background).
So the demo fits small replacements first, each saved in the format of the real files and loaded
through the normal ``sam_checkpoint`` / ``backbone_checkpoint`` paths:

* a tiny SAM (segment-anything's classes) trained class-agnostically: given a point or a box on an
  object, segment that object; given *content tokens* (mean image embeddings over a region of
  another image), segment the regions that look like it, and nothing where none does. Real SAM
  answers such semantic tokens after its web-scale training; a tiny SAM trained on a few hundred
  images only does when taught, and without it the VRP encoder has nothing it can learn to steer.
  How it is taught decides whether the demo learns: taught on one token from the image's own
  embedding, it answered VRP-SAM's 50 tokens with "every object" whatever they held, a plateau
  that training escaped or not depending on floating-point rounding (the same code gave 74 mIoU
  on one machine and 34 on another). Tokens from another image, sets of 50 tokens (VRP-SAM's
  count) and absent classes answered with an empty mask remove that plateau. (Tried and not kept:
  also teaching the encoder the base classes with a linear head made the tiny SAM's answer to
  content tokens strong on every seed, a cross-image oracle of 78 to 81 mIoU on novel classes,
  yet VRP-SAM's training then stayed on a plateau for seed 0, 5.8 → 32.2, while seeds 1 and 2
  reached 81.9 and 55.7: the encoder's training, not the stand-in SAM, is where the demo's
  outcome is decided.)
* a ResNet-18 trained for semantic segmentation of the base classes (the role ImageNet
  pre-training plays for the real backbone): its features feed the VRP encoder and pseudo-mask.

Novel classes are never seen: both are fitted on the training split of the fold, whose images hold
no novel-class pixel (BAM's filter). These are toy models fitted on synthetic data; numbers obtained
with them say nothing about the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vrpsam.data.base import IGNORE_INDEX
from vrpsam.data.transforms import ResizeNormalize
from vrpsam.engine.losses import bce_dice_loss
from vrpsam.modeling.sam import build_tiny_sam, decode_batch


@dataclass
class TrainingImages:
    """A split's images in memory at the training size.

    Attributes:
        images: (N, 3, S, S) ImageNet-normalised.
        labels: (N, S, S) uint8 class maps restricted to ``classes`` (others → 0, 255 kept).
        classes: the class ids present.
    """

    images: torch.Tensor
    labels: np.ndarray
    classes: tuple[int, ...]


def load_training_images(source, size: int) -> TrainingImages:
    """Every image of a PASCAL-format source's split, resized to ``size`` (labels: nearest)."""
    transform = ResizeNormalize(size=size)
    ids = sorted({i for ids in source.image_ids_by_class().values() for i in ids})
    images, labels = [], []
    allowed = np.zeros(256, dtype=np.uint8)
    allowed[list(source.classes)] = list(source.classes)
    allowed[IGNORE_INDEX] = IGNORE_INDEX
    for image_id in ids:
        images.append(transform.image(source.load_image(image_id)))
        labels.append(allowed[transform.mask_array(source.load_label(image_id))])
    return TrainingImages(torch.stack(images), np.stack(labels), tuple(source.classes))


def _fit(params, loss_at, *, steps: int, lr: float, log_every: int, name: str) -> list[float]:
    """AdamW with a one-cycle schedule over ``steps`` calls of ``loss_at(step)``; the losses."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    history = []
    for step in range(steps):
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
        if log_every and (step + 1) % log_every == 0:
            recent = np.mean(history[-log_every:])
            print(f"  stand-in {name} step {step + 1}/{steps}: loss {recent:.3f}", flush=True)
    return history


# --- tiny SAM ------------------------------------------------------------------------------------


def _sample_prompt_targets(label: np.ndarray, rng: np.random.Generator):
    """A random object of a random class: (component mask, class mask), or None if none."""
    present = [c for c in np.unique(label) if c not in (0, IGNORE_INDEX)]
    if not present:
        return None
    class_mask = (label == rng.choice(present)).astype(np.uint8)
    _, components = cv2.connectedComponents(class_mask)
    sizes = np.bincount(components.ravel())[1:]
    pick = 1 + int(rng.choice(np.flatnonzero(sizes >= max(sizes.max() // 8, 1))))
    return (components == pick).astype(np.uint8), class_mask


def _prompt_batch(sam, targets, kind: str, rng: np.random.Generator):
    """Sparse prompts (B, N, C) of one kind ("point" or "box") for the targets (B, S, S) {0,1}."""
    encoder = sam.prompt_encoder
    coords = []
    for mask in targets.numpy():
        ys, xs = np.nonzero(mask)
        if kind == "point":
            i = rng.integers(len(xs))
            coords.append([[xs[i] + 0.5, ys[i] + 0.5]])
        else:
            jitter = rng.normal(0, 0.05 * mask.shape[0], size=4)
            coords.append(
                [
                    xs.min() + jitter[0],
                    ys.min() + jitter[1],
                    xs.max() + jitter[2],
                    ys.max() + jitter[3],
                ]
            )
    coords = torch.tensor(np.asarray(coords), dtype=torch.float32)
    if kind == "point":
        sparse, _ = encoder(points=(coords, torch.ones(len(coords), 1)), boxes=None, masks=None)
    else:
        sparse, _ = encoder(points=None, boxes=coords, masks=None)
    return sparse


def _content_pairs(data: TrainingImages, by_class: dict, rng: np.random.Generator, pairs: int,
                   negative_share: float):  # fmt: skip
    """Rows and masks for content prompts taken from one image and answered in another.

    Returns (source rows, source masks, target rows, target masks); a target drawn without the
    source's class (``negative_share`` of them) has an empty mask.
    """
    classes = [c for c, rows in by_class.items() if len(rows) >= 2]
    sources, source_masks, targets, target_masks = [], [], [], []
    for _ in range(pairs):
        c = classes[int(rng.integers(len(classes)))]
        j = int(rng.choice(by_class[c]))
        if rng.random() < negative_share:
            i = int(rng.integers(len(data.images)))
            while (data.labels[i] == c).any():
                i = int(rng.integers(len(data.images)))
        else:
            i = int(rng.choice([r for r in by_class[c] if r != j]))
        sources.append(j)
        targets.append(i)
        source_masks.append(data.labels[j] == c)
        target_masks.append(data.labels[i] == c)
    as_tensor = lambda masks: torch.from_numpy(np.stack(masks).astype(np.uint8))  # noqa: E731
    return sources, as_tensor(source_masks), targets, as_tensor(target_masks)


def _content_tokens(embeddings, masks, count: int, generator) -> torch.Tensor:
    """``count`` tokens per image (B, count, C): mean embeddings over random halves of the mask's
    cells (one token: the whole mask), so a set of tokens describes the region as VRP prompts do."""
    weights = F.adaptive_avg_pool2d(masks[:, None].float(), embeddings.shape[-2:])
    if count > 1:
        keep = torch.rand((masks.shape[0], count, *weights.shape[-2:]), generator=generator) < 0.5
        subset = weights * keep
        empty = subset.sum((2, 3), keepdim=True) == 0
        weights = torch.where(empty, weights.expand_as(subset), subset)
    totals = weights.sum((2, 3)).clamp_min(1e-6)
    return torch.einsum("bchw,bkhw->bkc", embeddings, weights) / totals[..., None]


def fit_standin_sam(
    data: TrainingImages,
    *,
    steps: int = 600,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    log_every: int = 100,
    negative_share: float = 0.2,
    content_tokens: tuple[int, ...] = (1, 50),
    **sam_sizes,
) -> tuple[nn.Module, list[float]]:
    """Train a tiny SAM class-agnostically; returns (the Sam, loss history).

    Each step uses one prompt kind, cycling point → box → content: points and boxes target one
    object (a connected component) of the image; content tokens, taken from *another* image's
    region of a class, target every pixel of that class in this image, or nothing where the class
    is absent (``negative_share`` of the pairs). Content prompts alternate between the counts in
    ``content_tokens`` (VRP-SAM prompts SAM with 50 tokens).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    size = data.images.shape[-1]
    sam = build_tiny_sam(image_size=size, **sam_sizes)
    by_class = {c: np.flatnonzero((data.labels == c).any((1, 2))) for c in data.classes}

    def loss_at(step: int) -> torch.Tensor:
        kind = ("point", "content", "box", "content")[step % 4]
        if kind == "content":
            count = content_tokens[(step // 4) % len(content_tokens)]
            sources, source_masks, rows, target = _content_pairs(
                data, by_class, rng, batch_size // 2, negative_share
            )
            both = sam.image_encoder(data.images[sources + rows])
            references, embeddings = both.split(len(rows))
            sparse = _content_tokens(references, source_masks, count, generator)
        else:
            rows, targets = [], []
            while len(rows) < batch_size:
                i = int(rng.integers(len(data.images)))
                picked = _sample_prompt_targets(data.labels[i], rng)
                if picked is not None:
                    rows.append(i)
                    targets.append(picked[0])
            target = torch.from_numpy(np.stack(targets))
            embeddings = sam.image_encoder(data.images[rows])
            sparse = _prompt_batch(sam, target, kind, rng)
        dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand_as(embeddings)
        masks, iou = decode_batch(sam, embeddings, sparse, dense, all_outputs=True)
        logits = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
        single = bce_dice_loss(logits[:, :1], target.long())["loss"]
        # SAM's multimask recipe: only the best of the three outputs is trained.
        multi = torch.stack(
            [bce_dice_loss(logits[:, k : k + 1], target.long())["loss"] for k in (1, 2, 3)]
        )
        with torch.no_grad():
            hit = logits > 0
            truth = target[:, None].bool()
            actual = (hit & truth).sum((2, 3)) / (hit | truth).sum((2, 3)).clamp_min(1)
        return single + multi.min() + F.mse_loss(iou, actual)

    history = _fit(sam.parameters(), loss_at, steps=steps, lr=lr, log_every=log_every, name="SAM")
    return sam.eval(), history


# --- backbone ------------------------------------------------------------------------------------


def fit_standin_backbone(
    data: TrainingImages,
    *,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    log_every: int = 100,
) -> tuple[nn.Module, list[float]]:
    """Train a ResNet-18 to segment the base classes; returns (timm body, losses).

    Trained at the usual output stride 32 (about 10× cheaper than 8) and used dilated at stride 8,
    as ImageNet backbones are: dilation changes no weight shape. The returned module is the timm
    ``features_only`` body, whose state dict is the layout ``build_backbone("resnet18",
    checkpoint=...)`` reads.
    """
    import timm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    body = timm.create_model(
        "resnet18", pretrained=False, features_only=True, out_indices=(2, 3, 4)
    )
    classes = list(data.classes)
    lookup = np.full(256, IGNORE_INDEX, dtype=np.int64)
    lookup[0] = 0
    lookup[classes] = np.arange(1, len(classes) + 1)
    head = nn.Conv2d(sum(body.feature_info.channels()), len(classes) + 1, kernel_size=1)
    body.train()

    def loss_at(step: int) -> torch.Tensor:
        rows = rng.integers(len(data.images), size=batch_size)
        images = data.images[rows]
        if rng.random() < 0.5:  # horizontal flips: a cheap augmentation for a small dataset
            images, labels = images.flip(-1), data.labels[rows][..., ::-1]
        else:
            labels = data.labels[rows]
        target = torch.from_numpy(lookup[labels])
        layer2, *deeper = body(images)
        features = torch.cat(
            [layer2, *(F.interpolate(f, size=layer2.shape[-2:], mode="bilinear") for f in deeper)],
            1,
        )
        logits = F.interpolate(
            head(features), size=target.shape[-2:], mode="bilinear", align_corners=False
        )
        return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)

    params = [*body.parameters(), *head.parameters()]
    history = _fit(params, loss_at, steps=steps, lr=lr, log_every=log_every, name="backbone")
    return body.eval(), history
