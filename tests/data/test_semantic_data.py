"""The splits, reference banks and N-way episodes of the many-classes evaluation."""

import numpy as np
import pytest

from vrpsam.data.base import IGNORE_INDEX
from vrpsam.data.folds import novel_classes
from vrpsam.data.pascal import PascalSource
from vrpsam.data.semantic import (
    all_class_episodes,
    draw_references,
    label_map,
    make_nway_episodes,
    semantic_splits,
)

SMALL = {"min_pixels": 400}  # the synthetic trees' objects are small (see tests/conftest.py)


@pytest.fixture(scope="module")
def voc(synthetic_voc_root):
    return semantic_splits("pascal", synthetic_voc_root, options=SMALL)


@pytest.fixture(scope="module")
def fold0_test(synthetic_voc_root):
    return PascalSource(root=synthetic_voc_root, fold=0, split="test", lists="generate", **SMALL)


def test_pascal_splits_cover_every_class_and_keep_test_images_apart(voc):
    assert voc.classes == tuple(range(1, 21))
    assert voc.train.classes == voc.val.classes == voc.test.classes == voc.classes
    train, val, test = (set(s.image_ids()) for s in (voc.train, voc.val, voc.test))
    assert train and val and test
    assert not train & val and not train & test and not val & test
    assert all(i.startswith("synth_val_") for i in test)  # the VOC val list only


def test_every_test_image_with_any_object_is_scored(voc, synthetic_voc_root):
    listed = (synthetic_voc_root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    with_objects = [i for i in listed if (voc.test.load_label(i) % 255 > 0).any()]
    assert voc.test.image_order() == with_objects


def test_reference_draw_is_seeded_prefix_stable_and_per_class(voc):
    three = draw_references(voc.train, voc.classes, 3, seed=0)
    assert three == draw_references(voc.train, voc.classes, 3, seed=0)
    one = draw_references(voc.train, voc.classes, 1, seed=0)
    assert all(one[c] == three[c][:1] for c in voc.classes)
    # A class's references do not depend on which other classes are drawn.
    assert draw_references(voc.train, (4, 7), 3, seed=0) == {4: three[4], 7: three[7]}
    assert draw_references(voc.train, voc.classes, 3, seed=1) != three


def test_references_show_their_class_and_are_never_test_images(voc):
    bank = draw_references(voc.train, voc.classes, 2, seed=0)
    test = set(voc.test.image_ids())
    for class_id, ids in bank.items():
        assert len(ids) == len(set(ids)) == 2
        assert all(i in voc.train.image_ids_by_class()[class_id] for i in ids)
        assert not set(ids) & test


class OneEmptyClass:
    name, split = "stub", "train"

    def image_ids_by_class(self):
        return {1: ["a", "b"], 2: []}

    def class_name(self, class_id):
        return f"c{class_id}"


def test_the_bank_refuses_a_class_without_images(voc):
    with pytest.raises(ValueError, match=r"class 2 \(c2\) has no listed image"):
        draw_references(OneEmptyClass(), (1, 2), 1, seed=0)
    with pytest.warns(UserWarning, match=r"fewer than 3 images"):
        assert sorted(draw_references(OneEmptyClass(), (1,), 3, seed=0)[1]) == ["a", "b"]
    with pytest.raises(ValueError, match=r">= 1"):
        draw_references(voc.train, (1,), 0, seed=0)


def test_all_class_episodes_share_the_bank_and_cap_the_images(voc):
    bank = draw_references(voc.train, voc.classes, 1, seed=0)
    episodes = all_class_episodes(voc.test, bank, 5)
    assert [e.target_id for e in episodes] == voc.test.image_order()[:5]
    assert {e.class_ids for e in episodes} == {voc.classes}
    assert {e.reference_ids for e in episodes} == {tuple((bank[c][0],) for c in voc.classes)}
    assert len(all_class_episodes(voc.test, bank)) == len(voc.test.image_order())


def test_label_map_keeps_only_the_asked_classes(voc):
    image_id = voc.test.image_order()[0]
    full = label_map(voc.test, image_id)
    present = sorted(set(np.unique(full).tolist()) - {0, IGNORE_INDEX})
    kept = label_map(voc.test, image_id, keep=present[:1])
    assert set(np.unique(kept).tolist()) <= {0, present[0], IGNORE_INDEX}
    assert ((kept == IGNORE_INDEX) == (full == IGNORE_INDEX)).all()
    assert ((kept == present[0]) == (full == present[0])).all()


def test_nway_episodes_put_the_target_classes_first_and_draw_other_references(fold0_test):
    novel = novel_classes("pascal", 0)
    episodes = make_nway_episodes(fold0_test, novel, n_way=3, shot=2, seed=0, count=12)
    assert episodes == make_nway_episodes(fold0_test, novel, n_way=3, shot=2, seed=0, count=12)
    assert make_nway_episodes(fold0_test, novel, 3, 2, seed=0, count=5) == episodes[:5]
    by_class = fold0_test.image_ids_by_class()
    for episode in episodes:
        assert len(set(episode.class_ids)) == 3 and set(episode.class_ids) <= set(novel)
        present = set(fold0_test.classes_present(episode.target_id))
        flags = [c in present for c in episode.class_ids]
        assert flags[0] and flags == sorted(flags, reverse=True)  # present ones first
        for class_id, refs in zip(episode.class_ids, episode.reference_ids, strict=True):
            assert len(set(refs)) == 2 and episode.target_id not in refs
            assert set(refs) <= set(by_class[class_id])


def test_nway_ground_truth_drops_the_classes_outside_the_episode(fold0_test):
    episode = make_nway_episodes(fold0_test, novel_classes("pascal", 0), 1, 1, seed=3, count=4)[3]
    truth = label_map(fold0_test, episode.target_id, keep=episode.class_ids)
    assert set(np.unique(truth).tolist()) <= {0, IGNORE_INDEX, *episode.class_ids}


def test_nway_refuses_more_ways_than_classes(fold0_test):
    with pytest.raises(ValueError, match=r"fewer than ways = 6"):
        make_nway_episodes(fold0_test, novel_classes("pascal", 0), 6, 1, seed=0, count=1)


def test_coco_splits_and_composed_label_maps(synthetic_coco_root):
    coco = semantic_splits("coco", synthetic_coco_root, options={"min_area": 400})
    assert len(coco.classes) == 80 and coco.test.classes == coco.classes
    assert not set(coco.train.image_ids()) & set(coco.test.image_ids())
    image_id = coco.test.image_order()[0]
    label = label_map(coco.test, image_id)
    for class_id in coco.test.classes_present(image_id):
        assert (label[coco.test.load_mask(image_id, class_id) == 1] > 0).all()
    assert set(np.unique(label).tolist()) - {0, IGNORE_INDEX} <= set(
        coco.test.classes_present(image_id)
    )


def test_other_datasets_are_refused_with_the_supported_ones_named(synthetic_voc_root):
    with pytest.raises(ValueError, match=r"pascal or coco"):
        semantic_splits("fss1000", synthetic_voc_root)
