"""COCO-20i reader and its index cache on a synthetic COCO 2014 tree; COCO→PASCAL sources."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from vrpsam.data import coco_index
from vrpsam.data.base import FewShotSource
from vrpsam.data.coco import CocoSource
from vrpsam.data.coco_index import load_index, rle_decode
from vrpsam.data.folds import (
    COCO_CATEGORIES,
    COCO_TO_VOC,
    base_classes,
    class_name,
    novel_classes,
)
from vrpsam.data.reading import DatasetError
from vrpsam.data.sources import build_source

# The session tree has 128-pixel images (conftest.py): list a class from 400 pixels on.
MIN_AREA = 400


def _source(root, fold=0, split="train", **options):
    return CocoSource(root=root, fold=fold, split=split, **{"min_area": MIN_AREA, **options})


@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("fold", range(4))
def test_synthetic_coco_loads_through_the_reader(synthetic_coco_root, fold, split):
    source = _source(synthetic_coco_root, fold, split)
    assert isinstance(source, FewShotSource)
    novel = novel_classes("coco", fold)
    assert source.classes == (novel if split == "test" else base_classes("coco", fold))
    lists = source.image_ids_by_class()
    assert all(ids and list(ids) == sorted(ids) for ids in lists.values())
    folder = "val2014" if split == "test" else "train2014"
    assert all(i.startswith(f"COCO_{folder}_") for i in source.image_ids())
    class_id = source.classes[-1]
    image_id = lists[class_id][0]
    image, mask = source.load_image(image_id), source.load_mask(image_id, class_id)
    assert image.dtype == np.uint8 and image.shape == (128, 128, 3)
    assert mask.dtype == np.uint8 and mask.shape == (128, 128)
    assert set(np.unique(mask).tolist()) <= {0, 1}
    assert (mask == 1).sum() >= MIN_AREA * 0.9  # polygon rasterisation loses a little at edges


def test_train_and_val_are_disjoint(synthetic_coco_root):
    train, val = _source(synthetic_coco_root, 2, "train"), _source(synthetic_coco_root, 2, "val")
    assert not set(train.image_ids()) & set(val.image_ids())


def test_mask_is_the_union_of_all_instances_of_the_class(synthetic_coco_root):
    pycoco = pytest.importorskip("pycocotools.coco")
    json_path = synthetic_coco_root / "annotations/instances_val2014.json"
    coco = pycoco.COCO(str(json_path))
    source = _source(synthetic_coco_root, 1, "test", crowd="foreground")
    checked = 0
    for img in list(coco.imgs.values())[:40]:
        stem = img["file_name"].removesuffix(".jpg")
        for cat_id in {a["category_id"] for a in coco.imgToAnns[img["id"]]}:
            expected = np.zeros((img["height"], img["width"]), bool)
            for ann in coco.imgToAnns[img["id"]]:
                if ann["category_id"] == cat_id:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools, NumPy 2
                        expected |= coco.annToMask(ann).astype(bool)
            index = [c for c, _ in COCO_CATEGORIES].index(cat_id) + 1
            assert np.array_equal(source.load_mask(stem, index) == 1, expected)
            checked += 1
    assert checked > 40


def test_crowd_regions_follow_the_crowd_option(synthetic_coco_root):
    data = json.loads((synthetic_coco_root / "annotations/instances_train2014.json").read_text())
    ann = next(a for a in data["annotations"] if a["iscrowd"])
    image = next(i for i in data["images"] if i["id"] == ann["image_id"])
    stem = image["file_name"].removesuffix(".jpg")
    class_id = [c for c, _ in COCO_CATEGORIES].index(ann["category_id"]) + 1
    masks = {
        mode: _source(synthetic_coco_root, crowd=mode).load_mask(stem, class_id)
        for mode in ("foreground", "ignore", "background")
    }
    assert (masks["ignore"] == 255).any()
    assert (masks["foreground"] == 1).sum() > (masks["background"] == 1).sum()
    assert np.array_equal(
        masks["foreground"] == 1, (masks["ignore"] == 1) | (masks["ignore"] == 255)
    )


def test_class_absent_from_an_image_gives_an_empty_mask(synthetic_coco_root):
    data = json.loads((synthetic_coco_root / "annotations/instances_train2014.json").read_text())
    image = data["images"][0]
    present = {a["category_id"] for a in data["annotations"] if a["image_id"] == image["id"]}
    absent = next(i for i, (cat_id, _) in enumerate(COCO_CATEGORIES, 1) if cat_id not in present)
    mask = _source(synthetic_coco_root).load_mask(image["file_name"].removesuffix(".jpg"), absent)
    assert mask.shape == (image["height"], image["width"]) and not mask.any()


def test_index_is_cached_and_rebuilt_when_the_json_changes(coco_copy):
    json_path = coco_copy / "annotations/instances_val2014.json"
    assert _source(coco_copy, 0, "test").index_status == "built"
    cache = coco_copy / "annotations/.vrpsam_index_val2014.json"
    assert cache.is_file()
    assert _source(coco_copy, 0, "test").index_status == "cached"
    os.utime(json_path, ns=(1, 1))  # touched, same content: the sha says the cache still holds
    assert _source(coco_copy, 0, "test").index_status == "cached"
    before = _source(coco_copy, 0, "test").image_ids_by_class()
    data = json.loads(json_path.read_text())
    dropped = [a for a in data["annotations"] if a["category_id"] == 1]  # class index 1: person
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 1]
    json_path.write_text(json.dumps(data))
    rebuilt = _source(coco_copy, 0, "test")
    assert dropped and rebuilt.index_status == "built"
    assert before[1] and not rebuilt.image_ids_by_class()[1]


def test_read_only_annotations_folder_caches_elsewhere(coco_copy, tmp_path, monkeypatch, caplog):
    real_write = coco_index.atomic_write_json

    def refuse_next_to_data(path, payload, **kwargs):
        if path.parent == coco_copy / "annotations":
            raise PermissionError(f"read-only: {path}")
        real_write(path, payload, **kwargs)

    monkeypatch.setattr(coco_index, "atomic_write_json", refuse_next_to_data)
    cache_dir = tmp_path / "user_cache"
    _, status = load_index(
        coco_copy / "annotations/instances_val2014.json", coco_copy / "val2014", cache_dir=cache_dir
    )
    assert (
        status == "built" and len(list(cache_dir.glob("coco_index_*_instances_val2014.json"))) == 1
    )
    assert "read-only" in caplog.text
    source = _source(coco_copy, 0, "test", cache_dir=cache_dir)
    assert source.index_status == "cached"


def test_json_naming_missing_images_is_reported_with_names(coco_copy):
    names = sorted(p.name for p in (coco_copy / "val2014").iterdir())[:2]
    for name in names:
        (coco_copy / "val2014" / name).unlink()
    with pytest.raises(DatasetError, match=f"lists 2 images that are not in .*{names[0]}"):
        _source(coco_copy, 0, "test")


def test_unknown_category_is_rejected(coco_copy):
    json_path = coco_copy / "annotations/instances_val2014.json"
    data = json.loads(json_path.read_text())
    data["categories"].append({"id": 12, "name": "street sign", "supercategory": "outdoor"})
    json_path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"category ids \[12\]"):
        _source(coco_copy, 0, "test")


def test_missing_root_and_fold_4_are_clear_errors(synthetic_coco_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"COCO root not found: .*data\.root"):
        _source(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"fold must be 0\.\.3, got 4"):
        _source(synthetic_coco_root, fold=4)


def test_rle_decoder_matches_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    for _ in range(50):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((height, width)) < rng.random()
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert np.array_equal(rle_decode(rle["counts"].decode(), height, width), mask)


@pytest.mark.parametrize("fold", range(4))
def test_coco2pascal_sources_train_on_coco_and_test_on_voc(
    synthetic_coco_root, synthetic_voc_root, fold
):
    train = build_source("coco2pascal", synthetic_coco_root, fold, "train", min_area=MIN_AREA)
    test = build_source(
        "coco2pascal",
        synthetic_coco_root,
        fold,
        "test",
        pascal_root=synthetic_voc_root,
        min_pixels=400,
    )
    assert train.name == test.name == "coco2pascal"
    assert train.classes == base_classes("coco2pascal", fold)
    assert test.classes == novel_classes("coco2pascal", fold)
    test_names = {test.class_name(c) for c in test.classes}
    trained_as_voc = {COCO_TO_VOC.get(class_name("coco", c)) for c in train.classes}
    assert test_names and not trained_as_voc & test_names
    assert all(test.image_ids_by_class()[c] for c in test.classes)


def test_build_source_rejects_unknown_datasets(synthetic_voc_root):
    with pytest.raises(ValueError, match="dataset must be one of pascal, coco, coco2pascal"):
        build_source("ade20k", synthetic_voc_root, 0, "train")
