"""A frozen Segment Anything Model, built from segment-anything's own classes, decoded in batches.

``vit_b``, ``vit_l`` and ``vit_h`` are segment-anything's registry builders; ``tiny`` is the same
classes with a small image encoder (real-size prompt encoder and mask decoder) for tests and demos.
Checkpoints load from local files only, strictly, without unpickling.

Two facts of the released package shape this module:

* ``Sam.forward`` runs under ``torch.no_grad()``, so VRP prompts are decoded by calling the mask
  decoder's parts directly: the loss must reach the VRP encoder through the frozen decoder.
* ``MaskDecoder.predict_masks`` repeats the image embedding once per prompt set (one image, many
  prompt sets). A batch of B images with one prompt set each would become B×B, so
  :meth:`FrozenSam.decode` drives the decoder's transformer, upscaling and hypernetwork MLPs itself,
  one prompt set per image (tested against per-image ``MaskDecoder.forward``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vrpsam.modeling.weights import WeightFileError, read_state_dict

SAM_SOURCE = (
    "https://github.com/facebookresearch/segment-anything#model-checkpoints (sam_vit_*.pth)"
)
PREPROCESS_MODES = ("longest_side", "squash")


def build_tiny_sam(
    *,
    image_size: int = 256,
    encoder_embed_dim: int = 64,
    encoder_depth: int = 2,
    encoder_num_heads: int = 2,
    encoder_global_attn_indexes: tuple[int, ...] = (1,),
    window_size: int = 8,
    patch_size: int = 16,
    prompt_embed_dim: int = 256,
):
    """A small SAM from segment-anything's classes: small ViT, real prompt encoder and decoder."""
    from segment_anything.modeling import ImageEncoderViT

    encoder = ImageEncoderViT(
        img_size=image_size,
        patch_size=patch_size,
        embed_dim=encoder_embed_dim,
        depth=encoder_depth,
        num_heads=encoder_num_heads,
        mlp_ratio=4,
        out_chans=prompt_embed_dim,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=window_size,
        global_attn_indexes=encoder_global_attn_indexes,
    )
    return assemble_sam(encoder, image_size=image_size, grid=image_size // patch_size,
                        prompt_embed_dim=prompt_embed_dim)  # fmt: skip


def assemble_sam(image_encoder: nn.Module, *, image_size: int, grid: int, prompt_embed_dim=256):
    """A ``Sam`` around an image encoder, with the official prompt encoder and mask decoder."""
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    return Sam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=prompt_embed_dim, mlp_dim=2048, num_heads=8
            ),
            transformer_dim=prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


class CachedImageEncoder(nn.Module):
    """Stands in for SAM's image encoder when image embeddings come from a feature cache, so the
    (up to 2.5 GB) encoder is neither built nor loaded."""

    def __init__(self, *, img_size: int) -> None:
        super().__init__()
        self.img_size = img_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "SAM's image encoder was not built because this run reads image embeddings from the "
            "feature cache (cache.dir): an image missing from the cache cannot be encoded. Run "
            "vrpsam-cache again with the run's settings, or turn the cache off (cache.dir=null)."
        )


def _registry_builder(variant: str) -> Callable[..., nn.Module]:
    def build(image_encoder: bool = True, **sizes):
        if sizes:
            raise ValueError(f"SAM {variant} has fixed official sizes; got overrides {sizes}")
        if not image_encoder:  # official frame: 1024 px, 16 px patches → 64×64 embeddings
            return assemble_sam(CachedImageEncoder(img_size=1024), image_size=1024, grid=64)
        from segment_anything import sam_model_registry

        return sam_model_registry[variant](checkpoint=None)

    return build


SAM_VARIANTS: dict[str, Callable[..., nn.Module]] = {
    "tiny": build_tiny_sam,
    "vit_b": _registry_builder("vit_b"),
    "vit_l": _registry_builder("vit_l"),
    "vit_h": _registry_builder("vit_h"),
}

# Image-encoder width and depth identify a checkpoint's variant.
_VARIANT_SHAPES = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}


def identify_sam_variant(state: dict) -> str:
    """Name the SAM variant a state dict was saved from (``"unknown (...)"`` when none fits)."""
    patch = state.get("image_encoder.patch_embed.proj.weight")
    if patch is None:
        return "not a SAM checkpoint (no image_encoder.patch_embed.proj.weight)"
    depth = 1 + max(
        (int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks.")), default=-1
    )
    dims = (int(patch.shape[0]), depth)
    return _VARIANT_SHAPES.get(dims, f"unknown (embed dim {dims[0]}, depth {dims[1]})")


def decode_batch(
    sam: nn.Module,
    image_embeddings: torch.Tensor,
    sparse_prompts: torch.Tensor,
    dense_prompts: torch.Tensor,
    *,
    multimask_output: bool = False,
    all_outputs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's mask decoding with one prompt set per image (no B×B pairing; see the module doc).

    Args:
        sam: a ``segment_anything.modeling.Sam`` (frozen or not: gradients flow as usual).
        image_embeddings: (B, C, h, w).
        sparse_prompts: (B, N, C).
        dense_prompts: (B, C, h, w).
        multimask_output: return the 3 multimask outputs instead of the single one.
        all_outputs: return all 4 outputs (single first, then the 3 multimask ones), for training.

    Returns:
        low-res mask logits (B, M, 4h, 4w) and predicted IoU (B, M), M = 3, 1 (or 4).
    """
    decoder = sam.mask_decoder
    batch = image_embeddings.shape[0]
    if sparse_prompts.shape[0] != batch:
        raise ValueError(f"{sparse_prompts.shape[0]} prompt sets for {batch} images")
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat(
        [output_tokens.expand(batch, -1, -1).to(sparse_prompts.dtype), sparse_prompts], dim=1
    )
    src = image_embeddings + dense_prompts
    pos = sam.prompt_encoder.get_dense_pe().expand(batch, -1, -1, -1)
    hs, src = decoder.transformer(src, pos, tokens)
    return mask_head(
        decoder, hs, src, image_embeddings.shape, multimask_output=multimask_output,
        all_outputs=all_outputs,
    )  # fmt: skip


def mask_head(
    decoder: nn.Module,
    hs: torch.Tensor,
    src: torch.Tensor,
    shape: torch.Size,
    *,
    multimask_output: bool = False,
    all_outputs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask decoder's outputs from its two-way transformer's tokens ``hs`` and image ``src``
    (embeddings of ``shape`` (B, C, h, w)): low-res logits and predicted IoU, chosen as in
    :func:`decode_batch`."""
    b, c, h, w = shape
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    mask_tokens = hs[:, 1 : 1 + decoder.num_mask_tokens]
    hyper_in = torch.stack(
        [mlp(mask_tokens[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1
    )
    masks = (hyper_in @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[-2:])
    iou = decoder.iou_prediction_head(hs[:, 0])
    if all_outputs:
        return masks, iou
    chosen = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, chosen], iou[:, chosen]


class FrozenSam(nn.Module):
    """A frozen SAM with batched decoding of VRP prompt embeddings.

    Args:
        sam: a ``segment_anything.modeling.Sam``.
        preprocess: ``"longest_side"`` (SAM's own resize-longest-side + pad; default) or
            ``"squash"`` (the official VRP-SAM code: bilinear resize to a square, aspect distorted).
        align_corners: bilinear ``align_corners`` for the resizes in and out of SAM's frame
            (the official code uses True).
    """

    def __init__(
        self, *, sam: nn.Module, preprocess: str = "longest_side", align_corners: bool = False
    ) -> None:
        super().__init__()
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(f"preprocess must be one of {PREPROCESS_MODES}, got {preprocess!r}")
        self.sam = sam
        self.preprocess = preprocess
        self.align_corners = align_corners
        self.sam.requires_grad_(False)  # the official code forgot this
        self.train(False)

    def train(self, mode: bool = True) -> FrozenSam:
        return super().train(False)

    @property
    def image_size(self) -> int:
        return self.sam.image_encoder.img_size

    @property
    def embed_dim(self) -> int:
        return self.sam.prompt_encoder.embed_dim

    # --- image side ------------------------------------------------------------------------

    def frame_sizes(
        self, images: torch.Tensor, original_sizes: torch.Tensor | None
    ) -> list[tuple[int, int]]:
        """The (h, w) each image occupies inside SAM's square input frame."""
        size = self.image_size
        if self.preprocess == "squash":
            return [(size, size)] * images.shape[0]
        if original_sizes is None:
            original_sizes = torch.tensor([images.shape[-2:]] * images.shape[0])
        frames = []
        for h, w in original_sizes.tolist():
            scale = size / max(h, w)
            frames.append((int(h * scale + 0.5), int(w * scale + 0.5)))
        return frames

    def to_sam_frame(
        self, images: torch.Tensor, original_sizes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Resize (and pad) images into SAM's input frame.

        Args:
            images: (B, 3, H, W), ImageNet-normalised (the same statistics SAM normalises with).
            original_sizes: optional (B, 2) original (H, W) of each image, so that
                ``longest_side`` restores the true aspect ratio of a squashed input.

        Returns:
            (B, 3, S, S) with S = SAM's image size; padding is 0 (SAM pads after normalising).
        """
        size = self.image_size
        if self.preprocess == "squash":
            return F.interpolate(
                images, (size, size), mode="bilinear", align_corners=self.align_corners
            )
        out = images.new_zeros(images.shape[0], 3, size, size)
        for i, (h, w) in enumerate(self.frame_sizes(images, original_sizes)):
            out[i, :, :h, :w] = F.interpolate(
                images[i : i + 1], (h, w), mode="bilinear", align_corners=self.align_corners
            )[0]
        return out

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor, original_sizes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Image embeddings (B, C, h, w) of images given as in :meth:`to_sam_frame`."""
        return self.sam.image_encoder(self.to_sam_frame(images, original_sizes))

    # --- prompt side -----------------------------------------------------------------------

    def dense_prompt(self, batch: int) -> torch.Tensor:
        """SAM's "no mask" dense prompt broadcast to the embedding grid: (B, C, h, w)."""
        h, w = self.sam.prompt_encoder.image_embedding_size
        return self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            batch, -1, h, w
        )

    def decode(
        self,
        image_embeddings: torch.Tensor,
        sparse_prompts: torch.Tensor,
        *,
        multimask_output: bool = False,
        dense_prompts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode one prompt set per image, keeping the graph to the prompts.

        Args:
            image_embeddings: (B, C, h, w).
            sparse_prompts: (B, N, C) prompt tokens (VRP embeddings are used as they are).
            multimask_output: return SAM's 3 multimask outputs instead of the single one.
            dense_prompts: (B, C, h, w); default SAM's ``no_mask_embed``.

        Returns:
            low-res mask logits (B, M, 4h, 4w) and predicted IoU (B, M), M = 3 or 1.
        """
        if dense_prompts is None:
            dense_prompts = self.dense_prompt(image_embeddings.shape[0])
        return decode_batch(
            self.sam,
            image_embeddings,
            sparse_prompts,
            dense_prompts,
            multimask_output=multimask_output,
        )

    def postprocess(
        self,
        low_res_logits: torch.Tensor,
        output_size: tuple[int, int],
        frame_sizes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Map low-res logits (B, M, h, w) back onto the input images' (H, W) frame.

        ``frame_sizes`` comes from :meth:`frame_sizes`; the padded part of SAM's frame is cropped.
        """
        ac = self.align_corners
        if self.preprocess == "squash":
            return F.interpolate(low_res_logits, output_size, mode="bilinear", align_corners=ac)
        size = self.image_size
        full = F.interpolate(low_res_logits, (size, size), mode="bilinear", align_corners=ac)
        return torch.cat(
            [
                F.interpolate(
                    full[i : i + 1, :, :h, :w], output_size, mode="bilinear", align_corners=ac
                )
                for i, (h, w) in enumerate(frame_sizes)
            ]
        )


def build_sam(
    variant: str,
    *,
    checkpoint: str | Path | None = None,
    preprocess: str = "longest_side",
    align_corners: bool = False,
    image_encoder: bool = True,
    **sizes,
) -> FrozenSam:
    """Build a frozen SAM.

    Args:
        variant: ``tiny``, ``vit_b``, ``vit_l`` or ``vit_h``.
        checkpoint: a local SAM checkpoint (``sam_vit_b_01ec64.pth`` ...); None = random weights,
            no file read.
        preprocess, align_corners: see :class:`FrozenSam`.
        image_encoder: False builds no image encoder (embeddings come from a feature cache) and
            loads only the prompt encoder and mask decoder from the checkpoint.
        **sizes: size overrides for ``tiny`` (see :func:`build_tiny_sam`).

    Raises:
        ValueError: unknown variant.
        FileNotFoundError: missing checkpoint (naming the file, where to get it, the config key).
        WeightFileError: a checkpoint of another variant (saying which) or otherwise not fitting.
    """
    if variant not in SAM_VARIANTS:
        raise ValueError(f"unknown SAM variant {variant!r}; choose one of {sorted(SAM_VARIANTS)}")
    if image_encoder or variant == "tiny":
        sam = SAM_VARIANTS[variant](**sizes)
    else:
        sam = SAM_VARIANTS[variant](image_encoder=False, **sizes)
    if not image_encoder and variant == "tiny":
        sam.image_encoder = CachedImageEncoder(img_size=sam.image_encoder.img_size)
    if checkpoint is not None:
        state = read_state_dict(
            checkpoint,
            what=f"SAM {variant} checkpoint",
            source=SAM_SOURCE,
            config_key="model.sam_checkpoint",
        )
        found = identify_sam_variant(state)
        if not image_encoder:  # keep what the model has: prompt encoder and mask decoder
            encoder_known = variant == "tiny" or found == variant
            state = {k: v for k, v in state.items() if not k.startswith("image_encoder.")}
        own = sam.state_dict()
        fits = set(state) == set(own) and all(state[k].shape == own[k].shape for k in own)
        if not image_encoder:
            fits = fits and encoder_known
        if not fits:
            raise WeightFileError(
                f"SAM checkpoint {checkpoint} does not fit the {variant!r} variant: it is {found}. "
                f"Set model.sam to the checkpoint's variant or point model.sam_checkpoint at a "
                f"{variant} checkpoint."
            )
        sam.load_state_dict(state, strict=True)
    return FrozenSam(sam=sam, preprocess=preprocess, align_corners=align_corners)
