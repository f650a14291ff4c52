"""The episode rules of the protocols: uniform classes, list-order test pairs, fixed scribbles,
episodes shared by ranks, and what `vrpsam-data episodes` writes for each protocol."""

import json
from collections import Counter
from unittest import mock

import numpy as np
import pytest
from fakes import FakeSource
from scipy.stats import chisquare

from vrpsam.cli.data import main as data_cli
from vrpsam.data import annotations
from vrpsam.data.annotations import official_test_scribble, simulate_annotation
from vrpsam.data.dataset import EpisodeIndexSampler
from vrpsam.data.pascal import PascalSource
from vrpsam.data.sampling import TrainingEpisodeSampler, class_pools, make_test_episodes


def imbalanced_source(split="train"):
    """Class 1 in 40 images, classes 2 and 3 in 6 each: image-driven sampling favours class 1."""
    images = {f"img{i:03d}": (1,) for i in range(40)}
    images.update({f"img{40 + i:03d}": (2,) for i in range(6)})
    images.update({f"img{46 + i:03d}": (3,) for i in range(6)})
    return FakeSource(images=images, classes=(1, 2, 3), split=split)


def class_counts(episodes, classes):
    counts = Counter(e.class_id for e in episodes)
    return [counts.get(c, 0) for c in classes]


def test_class_rule_draws_classes_uniformly_and_image_rule_does_not():
    source = imbalanced_source()
    uniform = TrainingEpisodeSampler(source=source, shot=1, seed=0, rule="class")
    by_image = TrainingEpisodeSampler(source=source, shot=1, seed=0, rule="image")
    n = 3000
    counts = class_counts([uniform.episode(i // 52, i % 52) for i in range(n)], (1, 2, 3))
    assert chisquare(counts).pvalue > 0.01, counts
    skewed = class_counts([by_image.episode(i // 52, i % 52) for i in range(n)], (1, 2, 3))
    assert chisquare(skewed).pvalue < 1e-6, skewed
    assert len(uniform) == len(by_image) == 52  # the epoch length is the number of images


def test_coco_official_training_episodes_draw_classes_uniformly(synthetic_coco_root, tmp_path):
    out = tmp_path / "train.json"
    args = ["episodes", "--dataset", "coco", "--root", str(synthetic_coco_root), "--fold", "0",
            "--split", "train", "--protocol", "official", "--n", "2000", "--seed", "0",
            "--out", str(out), "--min-pixels", "400"]  # fmt: skip
    assert data_cli(args) == 0
    document = json.loads(out.read_text())
    meta = document["meta"]
    assert meta["split"] == "train" and meta["sampling"] == "class" and meta["epoch"] == 0
    assert meta["n"] == 2000 and meta["protocol"] == "official"
    classes = meta["classes"]
    assert len(classes) >= 50  # nearly all 60 base classes of fold 0 can give an episode
    counts = class_counts(
        [type("E", (), {"class_id": e["class_id"]}) for e in document["episodes"]], classes
    )
    assert chisquare(counts).pvalue > 0.001, counts
    assert not set(classes) & set(range(1, 81, 4)), "fold-0 novel classes in training"


def test_pascal_official_test_episodes_visit_the_list_in_order(synthetic_voc_root):
    source = PascalSource(root=synthetic_voc_root, fold=0, split="test", min_pixels=400)
    pools, _ = class_pools(source, 1)
    order = [i for i in source.image_order() if set(source.classes_present(i)) & set(pools)]
    episodes = make_test_episodes(source, shot=1, seed=0, n=2 * len(order) + 3, rule="images")
    assert [e.target_id for e in episodes] == (order * 3)[: len(episodes)]
    for episode in episodes:
        assert episode.class_id in source.classes_present(episode.target_id)
        assert episode.target_id not in episode.reference_ids
        assert set(episode.reference_ids) <= set(pools[episode.class_id])


def test_pairs_rule_cycles_through_the_image_class_pairs_in_list_order(synthetic_voc_root):
    source = PascalSource(root=synthetic_voc_root, fold=0, split="test", min_pixels=400)
    pools, _ = class_pools(source, 1)
    pairs = [(i, c) for i in source.image_order() for c in source.classes_present(i) if c in pools]
    assert len(pairs) > len(set(i for i, _ in pairs)), "the tree should hold two-class images"
    episodes = make_test_episodes(source, shot=1, seed=0, n=len(pairs) + 5, rule="pairs")
    assert [(e.target_id, e.class_id) for e in episodes] == (pairs * 2)[: len(episodes)]


def test_pairs_include_objects_of_any_size():
    # img000 shows class 2 too, but class 2 is listed only where large (the reader's threshold):
    # the pair (img000, 2) is still a test pair, as in hsnet's lists.
    source = FakeSource(images={"img000": (1, 2), "img001": (1,), "img002": (2,), "img003": (2,)},
                        classes=(1, 2))  # fmt: skip
    source.image_ids_by_class = lambda: {1: ["img000", "img001"], 2: ["img002", "img003"]}
    episodes = make_test_episodes(source, shot=1, seed=0, n=4, rule="pairs")
    assert [(e.target_id, e.class_id) for e in episodes][:2] == [("img000", 1), ("img000", 2)]


@pytest.mark.parametrize("rule", ["uniform", "pairs", "images"])
def test_new_test_rules_are_prefix_stable_and_share_targets_across_shots(rule):
    source = imbalanced_source(split="test")
    long = make_test_episodes(source, shot=1, seed=4, n=60, rule=rule)
    short = make_test_episodes(source, shot=1, seed=4, n=25, rule=rule)
    five = make_test_episodes(source, shot=5, seed=4, n=60, rule=rule)
    assert long[:25] == short
    assert [(e.target_id, e.class_id) for e in five] == [(e.target_id, e.class_id) for e in long]
    assert all(len(set(e.reference_ids)) == 5 for e in five)


def test_uniform_test_rule_draws_classes_uniformly():
    episodes = make_test_episodes(imbalanced_source("test"), shot=1, seed=0, n=1500, rule="uniform")
    assert chisquare(class_counts(episodes, (1, 2, 3))).pvalue > 0.01


def test_official_test_scribble_is_the_same_draw_for_every_episode():
    assert official_test_scribble(5000) == (9, "rand_curve")
    assert official_test_scribble(4) == (3, "rand_curve")  # randint(1, 4) from Random(321)
    mask = np.zeros((128, 128), np.uint8)
    mask[20:100, 30:110] = 1
    calls = []
    real = annotations._stroke_control_points

    def spy(*args, preset, **kwargs):
        calls.append(preset)
        return real(*args, preset=preset, **kwargs)

    with mock.patch.object(annotations, "_stroke_control_points", spy):
        per_episode = []
        for seed in range(6):
            calls.clear()
            rng = np.random.default_rng(seed)
            simulate_annotation(mask, "scribble", rng=rng, training=False, scribble="fixed")
            assert calls == [annotations.STROKE_PRESETS["rand_curve"]] * 9
            calls.clear()
            rng = np.random.default_rng(seed)
            simulate_annotation(mask, "scribble", rng=rng, training=False)
            per_episode.append(len(calls))
    assert len(set(per_episode)) > 1, "per-episode scribbles vary their stroke count"


def test_same_rank_episodes_hand_every_rank_the_same_keys():
    unique = [list(EpisodeIndexSampler(num_episodes=40, rank=r, world_size=4)) for r in range(4)]
    same = [list(EpisodeIndexSampler(num_episodes=40, rank=r, world_size=4,
                                     same_on_every_rank=True)) for r in range(4)]  # fmt: skip
    assert all(s == same[0] for s in same) and len(same[0]) == 10
    assert len({tuple(u) for u in unique}) == 4 and same[0] == unique[0]
