"""The synthetic generator writes real VOC/COCO formats, deterministically, distinct classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrpsam.data.folds import COCO_CATEGORIES
from vrpsam.data.synthetic import rle_encode, write_coco_tree, write_voc_tree
from vrpsam.data.synthetic_scenes import class_style


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("writer", [write_voc_tree, write_coco_tree])
def test_same_seed_gives_byte_identical_trees(writer, tmp_path):
    first = _tree_bytes(writer(tmp_path / "a", images=10, size=64, seed=3, workers=1))
    second = _tree_bytes(writer(tmp_path / "b", images=10, size=64, seed=3, workers=1))
    other = _tree_bytes(writer(tmp_path / "c", images=10, size=64, seed=4, workers=1))
    assert first == second
    assert len(first) > 10
    assert first.keys() == other.keys() and first != other


def test_parallel_rendering_writes_the_same_bytes(tmp_path):
    serial = _tree_bytes(write_voc_tree(tmp_path / "a", images=70, size=48, workers=1))
    parallel = _tree_bytes(write_voc_tree(tmp_path / "b", images=70, size=48, workers=2))
    assert serial == parallel


def test_voc_masks_are_palette_pngs_with_class_ids_and_boundary_band(synthetic_voc_root):
    ids = (synthetic_voc_root / "ImageSets/Segmentation/train.txt").read_text().split()
    assert len(ids) == 112
    seen = set()
    for image_id in ids[:20]:
        with Image.open(synthetic_voc_root / "SegmentationClassAug" / f"{image_id}.png") as png:
            assert png.mode == "P"
            label = np.asarray(png)
        with Image.open(synthetic_voc_root / "JPEGImages" / f"{image_id}.jpg") as jpg:
            assert jpg.size == (128, 128) and jpg.mode == "RGB"
        seen |= set(np.unique(label).tolist())
    assert {0, 255} <= seen
    assert seen <= set(range(21)) | {255}
    assert len(seen - {0, 255}) >= 5


def test_coco_json_has_real_categories_and_well_formed_annotations(synthetic_coco_root):
    data = json.loads((synthetic_coco_root / "annotations/instances_val2014.json").read_text())
    assert [(c["id"], c["name"]) for c in data["categories"]] == list(COCO_CATEGORIES)
    image_ids = {img["id"] for img in data["images"]}
    assert all(
        (synthetic_coco_root / "val2014" / img["file_name"]).is_file() for img in data["images"]
    )
    kinds = set()
    for ann in data["annotations"]:
        assert ann["image_id"] in image_ids and ann["area"] > 0 and len(ann["bbox"]) == 4
        segmentation = ann["segmentation"]
        kinds.add(("rle" if isinstance(segmentation, dict) else "polygon", ann["iscrowd"]))
        if ann["iscrowd"]:
            assert isinstance(segmentation, dict)
    assert ("polygon", 0) in kinds and ("rle", 1) in kinds
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under NumPy 2
def test_rle_round_trips_through_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    mask = np.zeros((7, 5), np.uint8)
    mask[0, 0] = mask[2:5, 1:4] = mask[6, 4] = 1
    rle = mask_utils.frPyObjects(rle_encode(mask), 7, 5)
    assert np.array_equal(mask_utils.decode(rle), mask)


def test_writer_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        write_voc_tree(tmp_path, images=4, size=32)


def test_each_class_has_its_own_look():
    styles = [class_style(i) for i in range(80)]
    looks = {(s.shape, s.texture, s.colors[0], s.frequency) for s in styles}
    assert len(looks) == 80
    voc = {(s.shape, s.texture) for s in styles[:20]}
    assert len(voc) == 20  # the 20 VOC classes differ even without colour
