"""PASCAL-5i reader on a synthetic VOC/SBD tree, and its errors on broken trees."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from vrpsam.data.base import FewShotSource
from vrpsam.data.folds import novel_classes
from vrpsam.data.pascal import PascalSource, official_lists
from vrpsam.data.reading import DatasetError

# The session tree has 128-pixel images (conftest.py): list a class from 400 pixels on.
VOC_OPTIONS = {"min_pixels": 400}


def _source(root, fold=0, split="train", **options):
    return PascalSource(root=root, fold=fold, split=split, **{**VOC_OPTIONS, **options})


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("fold", range(4))
def test_synthetic_voc_loads_through_the_reader(synthetic_voc_root, fold, split):
    source = _source(synthetic_voc_root, fold, split)
    assert isinstance(source, FewShotSource)
    assert source.lists == "generated"
    novel = novel_classes("pascal", fold)
    assert source.classes == (
        novel if split == "test" else tuple(sorted(set(range(1, 21)) - set(novel)))
    )
    lists = source.image_ids_by_class()
    assert set(lists) == set(source.classes)
    assert all(ids and list(ids) == sorted(ids) for ids in lists.values())
    class_id = source.classes[0]
    image_id = lists[class_id][0]
    image, mask = source.load_image(image_id), source.load_mask(image_id, class_id)
    assert image.dtype == np.uint8 and image.shape == (128, 128, 3)
    assert mask.dtype == np.uint8 and mask.shape == (128, 128)
    assert set(np.unique(mask).tolist()) <= {0, 1, 255}
    assert (mask == 1).sum() >= VOC_OPTIONS["min_pixels"]
    assert source.class_name(class_id)


def test_mask_keeps_boundary_and_zeroes_other_classes(synthetic_voc_root):
    source = _source(synthetic_voc_root)
    image_id = source.image_ids()[0]
    label = source.load_label(image_id)
    class_id = next(c for c in source.classes if image_id in source.image_ids_by_class()[c])
    mask = source.load_mask(image_id, class_id)
    assert np.array_equal(mask == 1, label == class_id)
    assert np.array_equal(mask == 255, label == 255)
    assert not mask[(label != class_id) & (label != 255)].any()


@pytest.mark.parametrize("fold", range(4))
def test_train_and_val_are_disjoint_and_never_show_a_novel_class(synthetic_voc_root, fold):
    train, val = (
        _source(synthetic_voc_root, fold, "train"),
        _source(synthetic_voc_root, fold, "val"),
    )
    assert not set(train.image_ids()) & set(val.image_ids())
    novel = np.array(novel_classes("pascal", fold))
    for image_id in train.image_ids() + val.image_ids():
        assert not np.isin(train.load_label(image_id), novel).any()


def test_test_pool_comes_from_val_list(synthetic_voc_root):
    val_ids = set((synthetic_voc_root / "ImageSets/Segmentation/val.txt").read_text().split())
    assert set(_source(synthetic_voc_root, 1, "test").image_ids()) <= val_ids


def test_min_pixels_threshold_filters_small_objects(synthetic_voc_root):
    loose = _source(synthetic_voc_root, 0, "test", min_pixels=1)
    strict = _source(synthetic_voc_root, 0, "test", min_pixels=3000)
    for c in loose.classes:
        assert set(strict.image_ids_by_class()[c]) < set(loose.image_ids_by_class()[c])


def test_official_lists_need_the_official_images(synthetic_voc_root):
    with pytest.raises(DatasetError, match=r"none of the .* official fold-0 images"):
        _source(synthetic_voc_root, lists="official")


def test_auto_uses_official_lists_when_the_tree_holds_them(voc_copy, caplog):
    entry = official_lists()["folds"]["0"]["val"]
    official = entry["images_by_class"]["1"][:3]
    donor = _source(voc_copy, 0, "test").image_ids()[0]
    for image_id in official:  # rename synthetic files to official ids
        for folder, ext in (("JPEGImages", "jpg"), ("SegmentationClassAug", "png")):
            data = (voc_copy / folder / f"{donor}.{ext}").read_bytes()
            (voc_copy / folder / f"{image_id}.{ext}").write_bytes(data)
    with caplog.at_level(logging.WARNING):
        source = _source(voc_copy, 0, "test")
    assert source.lists == "official"
    assert list(source.image_ids_by_class()[1]) == sorted(official)
    assert "missing" in caplog.text


def test_missing_root_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"PASCAL VOC root not found: .*set data\.root"):
        _source(tmp_path / "nowhere")


def test_missing_split_file_is_named(voc_copy):
    (voc_copy / "ImageSets/Segmentation/train.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"image list not found: .*train\.txt: set data.root"
    ):
        _source(voc_copy)


def test_listed_image_without_mask_is_named(voc_copy):
    image_id = (voc_copy / "ImageSets/Segmentation/train.txt").read_text().split()[5]
    (voc_copy / "SegmentationClassAug" / f"{image_id}.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"mask not found: .*{image_id}.png"):
        _source(voc_copy)


def test_corrupt_image_is_named(voc_copy):
    source = _source(voc_copy)
    image_id = source.image_ids()[0]
    path = voc_copy / "JPEGImages" / f"{image_id}.jpg"
    path.write_bytes(path.read_bytes()[:300])  # truncated JPEG
    with pytest.raises(DatasetError, match=f"cannot read image .*{image_id}.jpg"):
        source.load_image(image_id)


def test_mask_value_outside_classes_is_named(voc_copy):
    source = _source(voc_copy)
    image_id = source.image_ids()[0]
    path = voc_copy / "SegmentationClassAug" / f"{image_id}.png"
    with Image.open(path) as png:
        label, palette = np.array(png), png.getpalette()
    label[:4, :4] = 42
    bad = Image.fromarray(label, mode="P")
    bad.putpalette(palette)
    bad.save(path)
    with pytest.raises(DatasetError, match=rf"{image_id}.png holds values \[42\] outside 0..20"):
        source.load_mask(image_id, source.classes[0])
    with pytest.raises(DatasetError, match="42"):
        _source(voc_copy)  # generating lists reads every mask


def test_colour_rendered_mask_is_rejected(voc_copy):
    source = _source(voc_copy)
    image_id = source.image_ids()[0]
    path = voc_copy / "SegmentationClassAug" / f"{image_id}.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(DatasetError, match="mode RGB"):
        source.load_mask(image_id, source.classes[0])


def test_fold_4_is_rejected(synthetic_voc_root):
    with pytest.raises(ValueError, match=r"fold must be 0\.\.3, got 4"):
        _source(synthetic_voc_root, fold=4)


def test_shipped_official_lists_have_the_published_sizes():
    folds = official_lists()["folds"]
    assert [len(folds[str(f)]["train"]["images"]) for f in range(4)] == [4208, 3726, 2752, 4510]
    assert [len(folds[str(f)]["val"]["images"]) for f in range(4)] == [364, 445, 592, 336]
    assert json.dumps(sorted(folds["0"]["val"]["images_by_class"])) == '["1", "2", "3", "4", "5"]'
