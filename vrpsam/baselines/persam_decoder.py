"""SAM's mask decoder with PerSAM's two injections, driven from the released, unmodified package.

PerSAM (Zhang et al., 2023) changes SAM's two-way transformer in two places:

* **target-guided attention**: in every two-way block's token→image cross-attention, a bias map
  (the location prior, standardised and sigmoid-ed) is added to the attention *probabilities*,
  which are then re-normalised by a second softmax (the public code's ``Attention.forward``;
  the final token→image attention after the blocks gets no bias);
* **target-semantic prompting**: the reference feature ``t`` is added to the query tokens before
  every block and to the queries of the final attention.

The public code edits a copy of segment-anything. We keep the released package unmodified and
re-implement the forward passes of ``TwoWayTransformer``, ``TwoWayAttentionBlock`` and the biased
``Attention`` on the package's own submodules (their weights, their order of operations). With no
bias and no target embedding the result equals :func:`vrpsam.modeling.sam.decode_batch` (tested).

One quirk of the public code is reproduced on purpose, because its published numbers come from
it: it adds ``t`` *in place* to the token tensor that also serves as the tokens' positional
term, so the positional term carries ``t`` as well (``query_pe = tokens + t``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vrpsam.modeling.sam import mask_head


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) → (B, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def biased_attention(
    attention: nn.Module,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """segment-anything's ``Attention.forward`` with PerSAM's optional bias.

    Args:
        attention: a ``segment_anything.modeling.transformer.Attention``.
        q: (B, Nq, C) queries; k, v: (B, Nk, C) keys and values.
        bias: optional, broadcastable to (B, heads, Nq, Nk); added to the softmax-ed attention,
            followed by a second softmax (PerSAM's target-guided attention).

    Returns:
        (B, Nq, C).
    """
    heads = attention.num_heads
    q = _split_heads(attention.q_proj(q), heads)
    k = _split_heads(attention.k_proj(k), heads)
    v = _split_heads(attention.v_proj(v), heads)
    # Same order of operations as the package (scale after the product) for close equality.
    probs = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1]), dim=-1)
    if bias is not None:
        probs = torch.softmax(probs + bias, dim=-1)
    out = (probs @ v).transpose(1, 2).flatten(2)
    return attention.out_proj(out)


def _two_way_block(
    block: nn.Module,
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_pe: torch.Tensor,
    key_pe: torch.Tensor,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``TwoWayAttentionBlock.forward`` with the bias on the token→image cross-attention."""
    if block.skip_first_layer_pe:
        queries = block.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + block.self_attn(q=q, k=q, v=queries)
    queries = block.norm1(queries)

    q, k = queries + query_pe, keys + key_pe
    queries = block.norm2(
        queries + biased_attention(block.cross_attn_token_to_image, q, k, keys, bias)
    )
    queries = block.norm3(queries + block.mlp(queries))

    q, k = queries + query_pe, keys + key_pe
    keys = block.norm4(keys + block.cross_attn_image_to_token(q=k, k=q, v=queries))
    return queries, keys


def guided_transformer(
    transformer: nn.Module,
    image_embedding: torch.Tensor,
    image_pe: torch.Tensor,
    tokens: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    target_embedding: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``TwoWayTransformer.forward`` with PerSAM's injections.

    Args:
        transformer: a ``segment_anything.modeling.TwoWayTransformer``.
        image_embedding, image_pe: (B, C, h, w).
        tokens: (B, N, C) output tokens followed by the sparse prompts.
        bias: optional (B, 1, 1, h·w) attention bias (see :func:`biased_attention`).
        target_embedding: optional (B, 1, C), added to every token.

    Returns:
        processed tokens (B, N, C) and image tokens (B, h·w, C).
    """
    keys = image_embedding.flatten(2).transpose(1, 2)
    key_pe = image_pe.flatten(2).transpose(1, 2)
    # The public code's in-place add makes the positional term carry t too (module doc).
    query_pe = tokens if target_embedding is None else tokens + target_embedding
    queries = tokens
    for block in transformer.layers:
        if target_embedding is not None:
            queries = queries + target_embedding
        queries, keys = _two_way_block(block, queries, keys, query_pe, key_pe, bias)
    q = queries + query_pe
    if target_embedding is not None:
        q = q + target_embedding
    attended = transformer.final_attn_token_to_image(q=q, k=keys + key_pe, v=keys)
    return transformer.norm_final_attn(queries + attended), keys


def decode_guided(
    sam: nn.Module,
    image_embeddings: torch.Tensor,
    sparse_prompts: torch.Tensor,
    dense_prompts: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    target_embedding: torch.Tensor | None = None,
    multimask_output: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's mask decoding, one prompt set per image, with PerSAM's optional injections.

    Args:
        sam: a ``segment_anything.modeling.Sam``.
        image_embeddings: (B, C, h, w).
        sparse_prompts: (B, N, C).
        dense_prompts: (B, C, h, w).
        bias: optional (B, h, w) map added to the token→image attention of every two-way block.
        target_embedding: optional (B, C) reference feature added to the tokens.
        multimask_output: return the 3 multimask outputs instead of the single one.

    Returns:
        low-res mask logits (B, M, 4h, 4w) and predicted IoU (B, M), M = 3 or 1 — what
        :func:`vrpsam.modeling.sam.decode_batch` returns when neither injection is given.
    """
    decoder = sam.mask_decoder
    b, _, h, w = image_embeddings.shape
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat(
        [output_tokens.expand(b, -1, -1).to(sparse_prompts.dtype), sparse_prompts], dim=1
    )
    pos = sam.prompt_encoder.get_dense_pe().expand(b, -1, -1, -1)
    hs, src = guided_transformer(
        decoder.transformer,
        image_embeddings + dense_prompts,
        pos,
        tokens,
        bias=None if bias is None else bias.reshape(b, 1, 1, h * w),
        target_embedding=None if target_embedding is None else target_embedding[:, None],
    )
    return mask_head(decoder, hs, src, image_embeddings.shape, multimask_output=multimask_output)
