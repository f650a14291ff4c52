"""Matcher end to end on synthetic episodes, with a tiny SAM and a small DINOv2-shaped ViT."""

import numpy as np
import pytest
import torch

import vrpsam.baselines.matcher as matcher_module
from vrpsam.baselines.matcher import (
    CandidatePool,
    Candidates,
    Correspondence,
    Matcher,
    point_grid,
)
from vrpsam.baselines.sam_prompts import encode_image
from vrpsam.modeling.backbones import build_backbone

# Random weights give SAM masks of random quality: the quality filters are off so masks survive,
# and a few small prompt sets keep each episode around a second on two CPU cores.
FAST = dict(
    iou_thresh=0.0,
    stability_thresh=0.0,
    dense_points_per_side=2,
    dense_iou_thresh=0.0,
    dense_stability_thresh=0.0,
    sample_sizes=(1, 3),
    draws_per_size=4,
    decode_chunk=16,
)


@pytest.fixture(scope="module")
def small_dinov2():
    """A DINOv2-shaped ViT (patch 14) at input 224: a 16×16 token grid."""
    torch.manual_seed(0)
    return build_backbone(
        "dinov2_vitb14",
        input_size=224,
        mid_blocks=(0,),
        high_block=1,
        embed_dim=64,
        depth=2,
        num_heads=2,
    )


@pytest.fixture
def spy_prompts(monkeypatch):
    """Record the (P, n, 2) point tensor of every SAM decode."""
    calls = []

    def spy(sam, image, *, points, **kwargs):
        calls.append(points.detach().clone())
        return prompt_sam(sam, image, points=points, **kwargs)

    prompt_sam = matcher_module.prompt_sam
    monkeypatch.setattr(matcher_module, "prompt_sam", spy)
    return calls


def test_matcher_returns_binary_thresholdable_logits_of_the_target_size(
    small_dinov2, tiny_sam, make_episode
):
    method = Matcher(encoder=small_dinov2, sam=tiny_sam, **FAST)
    assert method.name == "matcher"
    logits = method.predict(make_episode(seed=1))
    assert logits.shape == (128, 128)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert (logits > 0).any()  # with the filters off, some mask is merged


def test_matcher_is_deterministic_for_a_fixed_episode_seed(small_dinov2, tiny_sam, make_episode):
    method = Matcher(encoder=small_dinov2, sam=tiny_sam, **FAST)
    episode = make_episode(seed=2)
    assert torch.equal(method.predict(episode), method.predict(episode))


def test_the_prediction_is_the_union_of_the_chosen_masks(small_dinov2, tiny_sam, make_episode):
    method = Matcher(encoder=small_dinov2, sam=tiny_sam, **FAST)
    episode = make_episode(seed=3)
    logits = method.predict(episode)
    # Re-run the steps with the same generator: the merged masks' union is `logits > 0`.
    rng = np.random.default_rng(episode.seed)
    found = method.correspond(episode)
    image = encode_image(tiny_sam, episode.target_image, episode.target_size)
    candidates = method.propose(image, found.points, rng)
    chosen = method.choose(candidates, found, rng)
    assert 1 <= len(chosen) <= 9
    assert torch.equal(logits > 0, candidates.masks[chosen].any(0))


@pytest.mark.parametrize(("shots", "annotation"), [(2, "mask"), (1, "point")])
def test_matcher_handles_k_shot_and_sparse_annotations(
    small_dinov2, tiny_sam, make_episode, shots, annotation
):
    method = Matcher(encoder=small_dinov2, sam=tiny_sam, **FAST)
    episode = make_episode(shots=shots, annotation=annotation, seed=4)
    found = method.correspond(episode)
    grid_cells = 16 * 16
    assert found.similarity.shape == (shots * grid_cells, grid_cells)  # shots concatenated
    assert 1 <= found.foreground.sum() <= shots * grid_cells
    assert method.predict(episode).shape == (128, 128)


def test_no_surviving_mask_predicts_background_everywhere(small_dinov2, tiny_sam, make_episode):
    strict = {**FAST, "iou_thresh": 1.0, "dense_points_per_side": 0}
    logits = Matcher(encoder=small_dinov2, sam=tiny_sam, **strict).predict(make_episode(seed=5))
    assert (logits == -1).all()


def test_an_annotation_touching_no_patch_skips_sam(
    small_dinov2, tiny_sam, make_episode, spy_prompts
):
    episode = make_episode(seed=6)
    episode.reference_masks.zero_()
    logits = Matcher(encoder=small_dinov2, sam=tiny_sam, **FAST).predict(episode)
    assert (logits == -1).all()
    assert spy_prompts == []


def test_many_matched_points_stay_within_the_caps(
    small_dinov2, tiny_sam, make_episode, spy_prompts, monkeypatch
):
    caps = dict(max_points=10, max_prompt_sets=12, decode_chunk=5, max_candidates=6)
    settings = {**FAST, "sample_sizes": (1, 6), "draws_per_size": 64, **caps}
    method = Matcher(encoder=small_dinov2, sam=tiny_sam, **settings)
    episode = make_episode(box=(0, 128), seed=7)  # every reference patch is foreground
    sizes = []
    add = CandidatePool.add

    def add_and_measure(pool, part):
        add(pool, part)
        sizes.append(pool.size)

    monkeypatch.setattr(CandidatePool, "add", add_and_measure)
    found = method.correspond(episode)
    assert len(found.points) == 10  # 256 foreground patches would give more
    method.predict(episode)
    prompted = [c for c in spy_prompts if c.shape[1] > 1 or c.shape[0] != 4]
    assert all(c.shape[0] <= 5 for c in spy_prompts)
    assert sum(c.shape[0] for c in spy_prompts) <= 12 + 4  # prompt sets + the 2×2 grid
    assert prompted and max(c.shape[1] for c in prompted) <= 6
    assert sizes and max(sizes) <= 6


def test_k_means_centres_prompt_every_small_subset(
    small_dinov2, tiny_sam, make_episode, spy_prompts
):
    settings = {**FAST, "use_centres": True, "sample_sizes": (1, 2), "dense_points_per_side": 0}
    Matcher(encoder=small_dinov2, sam=tiny_sam, **settings).predict(make_episode(seed=8))
    assert sum(c.shape[0] for c in spy_prompts) == 8 + 28  # C(8, 1) + C(8, 2)
    assert len(torch.cat([c.flatten(0, 1) for c in spy_prompts]).unique(dim=0)) == 8


def test_point_grid_covers_the_frame_at_cell_centres():
    grid = point_grid(2, (8, 8))
    assert grid.shape == (4, 1, 2)
    assert grid[:, 0].tolist() == [[1.5, 1.5], [5.5, 1.5], [1.5, 5.5], [5.5, 5.5]]


def test_invalid_settings_are_refused(small_dinov2, tiny_sam):
    with pytest.raises(ValueError, match="sample_sizes"):
        Matcher(encoder=small_dinov2, sam=tiny_sam, sample_sizes=(0, 6))
    with pytest.raises(ValueError, match="max_prompt_sets"):
        Matcher(encoder=small_dinov2, sam=tiny_sam, max_prompt_sets=0)


def test_k_shot_episodes_merge_at_most_the_k_shot_number_of_masks(small_dinov2, tiny_sam):
    # Three equally good masks (zero cost everywhere, one matched point in each).
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :4, :4], masks[1, :4, 4:], masks[2, 4:, :4] = True, True, True
    candidates = Candidates(torch.zeros(3, 4, 4), masks, torch.ones(3))
    points = torch.tensor([[1.5, 1.5], [5.5, 1.5], [1.5, 5.5]])

    def chosen(shots):
        found = Correspondence(
            torch.ones(1, 4), torch.ones(1, dtype=torch.bool), points, (2, 2), shots
        )
        return method.choose(candidates, found, np.random.default_rng(0))

    method = Matcher(encoder=small_dinov2, sam=tiny_sam, num_merging_mask=9, kshot_merging_mask=1)
    assert len(chosen(1)) == 3
    assert len(chosen(5)) == 1
