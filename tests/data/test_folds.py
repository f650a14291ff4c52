"""Class splits of PASCAL-5i, COCO-20i and COCO→PASCAL, and the held-out validation images."""

from __future__ import annotations

import numpy as np
import pytest

from vrpsam.data.folds import (
    COCO2PASCAL_TEST_FOLDS,
    COCO_CATEGORIES,
    COCO_TO_VOC,
    PASCAL_CLASSES,
    all_classes,
    base_classes,
    class_name,
    holdout_images,
    novel_classes,
    split_train_val,
)

FOLDS = range(4)


@pytest.mark.parametrize("fold", FOLDS)
def test_pascal5i_fold_tests_five_consecutive_voc_classes(fold):
    novel, base = set(novel_classes("pascal", fold)), set(base_classes("pascal", fold))
    assert novel == set(range(5 * fold + 1, 5 * fold + 6))
    assert not novel & base
    assert novel | base == set(range(1, 21))


def test_pascal5i_fold_names_match_the_paper():
    assert [class_name("pascal", c) for c in novel_classes("pascal", 2)] == [
        "diningtable", "dog", "horse", "motorbike", "person",
    ]  # fmt: skip


@pytest.mark.parametrize("fold", FOLDS)
def test_coco20i_fold_is_interleaved_and_partitions_80_classes(fold):
    novel, base = set(novel_classes("coco", fold)), set(base_classes("coco", fold))
    assert novel == {fold + 1 + 4 * k for k in range(20)}
    assert not novel & base
    assert novel | base == set(all_classes("coco"))


def test_coco20i_folds_test_every_class_exactly_once():
    tested = [c for fold in FOLDS for c in novel_classes("coco", fold)]
    assert sorted(tested) == list(range(1, 81))


def test_coco_class_index_follows_sorted_real_category_ids():
    ids = [cat_id for cat_id, _ in COCO_CATEGORIES]
    assert len(ids) == 80 and ids == sorted(ids) and ids[-1] == 90
    assert class_name("coco", 1) == "person"
    assert class_name("coco", 12) == "stop sign"  # id 13: id 12 does not exist in COCO
    assert class_name("coco", 61) == "dining table"  # id 67
    assert class_name("coco", 80) == "toothbrush"


def test_every_coco_to_voc_name_is_a_real_class_on_both_sides():
    coco_names = {name for _, name in COCO_CATEGORIES}
    assert set(COCO_TO_VOC) <= coco_names
    assert sorted(COCO_TO_VOC.values()) == sorted(PASCAL_CLASSES)


def test_coco2pascal_test_folds_partition_the_voc_classes():
    names = [n for fold in FOLDS for n in COCO2PASCAL_TEST_FOLDS[fold]]
    assert sorted(names) == sorted(PASCAL_CLASSES)
    assert [class_name("pascal", c) for c in novel_classes("coco2pascal", 1)] == [
        "bicycle", "bus", "horse", "sofa",
    ]  # fmt: skip


@pytest.mark.parametrize("fold", FOLDS)
def test_coco2pascal_training_never_sees_a_test_class(fold):
    test_names = set(COCO2PASCAL_TEST_FOLDS[fold])
    training = base_classes("coco2pascal", fold)
    seen_as_voc = {COCO_TO_VOC.get(class_name("coco", c)) for c in training}
    assert not seen_as_voc & test_names
    # Training is COCO-20i's fold minus those classes, nothing else removed.
    assert set(training) <= set(base_classes("coco", fold))
    removed = set(base_classes("coco", fold)) - set(training)
    assert all(COCO_TO_VOC[class_name("coco", c)] in test_names for c in removed)


@pytest.mark.parametrize("fold", [-1, 4, 7])
@pytest.mark.parametrize("dataset", ["pascal", "coco", "coco2pascal"])
def test_fold_outside_0_to_3_is_a_clear_error(dataset, fold):
    with pytest.raises(ValueError, match=f"fold must be 0..3, got {fold}"):
        novel_classes(dataset, fold)
    with pytest.raises(ValueError, match=f"fold must be 0..3, got {fold}"):
        base_classes(dataset, fold)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="'voc'"):
        novel_classes("voc", 0)


def test_holdout_is_seeded_stable_and_about_the_fraction():
    ids = [f"img_{i:05d}" for i in range(4000)]
    lists = {1: ids}
    held = holdout_images(lists, fraction=0.1, seed=0)
    assert held == holdout_images(lists, fraction=0.1, seed=0)
    assert 0.08 < len(held) / len(ids) < 0.12
    assert held != holdout_images(lists, fraction=0.1, seed=1)
    # Growing the list keeps earlier decisions: the rule looks at each id alone.
    grown = holdout_images({1: [*ids, *(f"new_{i}" for i in range(500))]}, fraction=0.1, seed=0)
    assert {i for i in grown if i.startswith("img_")} == held


def test_holdout_tops_up_a_class_to_two_images_but_never_more_than_a_fifth():
    lists = {
        1: [f"a{i}" for i in range(30)],
        2: [f"b{i}" for i in range(10)],
        3: [f"c{i}" for i in range(9)],
    }
    held = holdout_images(lists, fraction=1e-9, seed=0)  # the hash alone holds out nothing
    assert sum(i.startswith("a") for i in held) == 2
    assert sum(i.startswith("b") for i in held) == 2  # 10 images: a fifth is 2
    assert sum(i.startswith("c") for i in held) == 1  # 9 images: a fifth is 1
    more = holdout_images(lists, fraction=1e-9, seed=0, min_per_class=6)
    assert sum(i.startswith("a") for i in more) == 6  # 30 images: a fifth is 6


def test_zero_fraction_holds_out_nothing_not_even_the_top_up():
    # The official protocol trains on every training image and selects on the test classes.
    lists = {1: [f"a{i}" for i in range(30)], 2: [f"b{i}" for i in range(12)]}
    assert holdout_images(lists, fraction=0.0, min_per_class=6) == frozenset()
    assert split_train_val(lists, "train", fraction=0.0) == {c: sorted(v) for c, v in lists.items()}
    assert split_train_val(lists, "val", fraction=0.0) == {1: [], 2: []}


def _small_tree_lists(images: int = 140, seed: int = 0) -> dict[int, list[str]]:
    """Base-class lists shaped like a 200-image synthetic VOC tree's fold 0: 140 training images,
    each with 2-4 classes of one of four 5-class groups; group 0 holds the novel classes."""
    rng = np.random.default_rng(seed)
    lists: dict[int, list[str]] = {c: [] for c in range(6, 21)}
    for i in range(images):
        group = i % 4
        if group == 0:
            continue  # BAM's filter drops the images that show the fold's novel classes
        for c in rng.choice(5, size=int(rng.integers(2, 5)), replace=False):
            lists[5 * group + int(c) + 1].append(f"img_{i:05d}")
    return lists


def test_holdout_share_stays_near_the_fraction_on_a_small_tree():
    for seed in range(5):
        lists = _small_tree_lists(seed=seed)
        images = set().union(*lists.values())
        held = holdout_images(lists, fraction=0.1, seed=0)
        assert len(held) / len(images) < 0.16  # the per-class top-up of 6 (a third) gave ~34%
        assert all(len(set(ids) & held) >= 2 for ids in lists.values())


def test_train_and_val_splits_are_disjoint_and_cover_the_lists():
    lists = {1: [f"x{i}" for i in range(50)], 2: [f"x{i}" for i in range(25, 90)]}
    train = split_train_val(lists, "train")
    val = split_train_val(lists, "val")
    for c, ids in lists.items():
        assert not set(train[c]) & set(val[c])
        assert sorted(train[c] + val[c]) == sorted(ids)
        assert len(val[c]) >= 2
