"""The synthetic generator writes real VOC/COCO formats, deterministically, distinct classes, and
trees on which every class of every fold forms episodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrpsam.data.coco import CocoSource
from vrpsam.data.folds import COCO_CATEGORIES
from vrpsam.data.synthetic import (
    MARKER,
    MIN_IMAGES,
    rle_encode,
    synthetic_min_pixels,
    write_coco_tree,
    write_voc_tree,
)
from vrpsam.data.synthetic_scenes import class_style
from vrpsam.data.verify import verify_tree


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("writer", [write_voc_tree, write_coco_tree])
def test_same_seed_gives_byte_identical_trees(writer, tmp_path):
    # 128 px: lists are completed by re-drawn scenes (at 64 px the tree is written as drawn).
    first = _tree_bytes(writer(tmp_path / "a", images=24, size=128, seed=3, workers=1))
    second = _tree_bytes(writer(tmp_path / "b", images=24, size=128, seed=3, workers=1))
    other = _tree_bytes(writer(tmp_path / "c", images=24, size=128, seed=4, workers=1))
    assert first == second
    assert len(first) > 10
    assert first.keys() == other.keys() and first != other


def test_parallel_rendering_and_re_drawing_write_the_same_bytes(tmp_path):
    # 128 px: the lists are completed by re-drawn scenes, which must not depend on the workers.
    serial = _tree_bytes(write_voc_tree(tmp_path / "a", images=70, size=128, workers=1))
    parallel = _tree_bytes(write_voc_tree(tmp_path / "b", images=70, size=128, workers=2))
    assert serial == parallel


def _fewest_per_split(report) -> dict[str, int]:
    """The fewest images of a class in each split, over the four folds of a verify report."""
    fewest: dict[str, int] = {}
    for _, split, _, _, low, _ in report.rows:
        fewest[split] = min(fewest.get(split, low), low)
    return fewest


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_voc_tree_of_the_minimum_size_gives_every_class_an_episode_in_every_split(seed, tmp_path):
    root = write_voc_tree(
        tmp_path / "voc", images=MIN_IMAGES["voc"], size=128, seed=seed, workers=1
    )
    report = verify_tree("pascal", root)  # with the threshold the marker records
    assert report.ok, report.format()
    assert len(report.rows) == 12
    assert min(_fewest_per_split(report).values()) >= 2, report.format()
    assert not any("no episode" in line for line in report.thin)


@pytest.mark.parametrize("seed", [1, 2])
def test_coco_tree_of_the_minimum_size_gives_every_class_an_episode_in_every_split(seed, tmp_path):
    root = write_coco_tree(
        tmp_path / "coco", images=MIN_IMAGES["coco"], size=128, seed=seed, workers=1
    )
    report = verify_tree("coco", root)
    assert report.ok, report.format()
    assert len(report.rows) == 12
    assert min(_fewest_per_split(report).values()) >= 2, report.format()


# The default size takes seconds to write (slow); the minimum-size trees above go through the
# same writer and check in the default suite.
@pytest.mark.slow
def test_default_voc_tree_has_six_images_of_every_class_in_every_split(tmp_path):
    root = write_voc_tree(tmp_path / "voc", workers=1)  # 600 images of 256 px
    report = verify_tree("pascal", root)
    assert report.ok
    assert (
        _fewest_per_split(report) == json.loads((root / MARKER).read_text())["min_images_per_class"]
    )
    assert min(_fewest_per_split(report).values()) >= 6, report.format()
    assert not report.thin


@pytest.mark.slow
def test_default_coco_tree_has_six_images_per_class_where_the_hold_out_has_room(tmp_path):
    root = write_coco_tree(tmp_path / "coco", workers=2)  # 1200 images of 256 px, ~30 s
    fewest = _fewest_per_split(verify_tree("coco", root))
    assert fewest["train"] >= 6 and fewest["test"] >= 6
    # 74 held-out images cannot show 6 images of each of 80 classes (5 classes a scene at most).
    assert fewest["val"] >= 2


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 12))
def test_trees_of_the_minimum_size_give_every_class_an_episode_for_more_seeds(seed, tmp_path):
    for dataset, writer, fmt in (
        ("pascal", write_voc_tree, "voc"),
        ("coco", write_coco_tree, "coco"),
    ):
        root = writer(tmp_path / fmt, images=MIN_IMAGES[fmt], size=128, seed=seed, workers=1)
        report = verify_tree(dataset, root)
        assert report.ok and min(_fewest_per_split(report).values()) >= 2, report.format()


def test_size_threshold_is_400_up_to_256_px_and_grows_with_the_area_above():
    assert [synthetic_min_pixels(s) for s in (64, 128, 256, 384, 512)] == [400, 400, 400, 900, 1600]


def test_marker_records_the_size_threshold_and_the_fewest_images_per_class(tmp_path):
    marker = json.loads((write_voc_tree(tmp_path / "a", images=12, size=64) / MARKER).read_text())
    assert marker["min_pixels"] == 400
    assert marker["holdout"]["val_fraction"] == 0.1 and marker["holdout"]["val_seed"] == 0
    assert 2 in marker["holdout"]["val_min_per_class"]
    assert set(marker["min_images_per_class"]) == {"train", "val", "test"}
    given = write_coco_tree(tmp_path / "b", images=12, size=64, min_pixels=50)
    assert json.loads((given / MARKER).read_text())["min_pixels"] == 50


def test_voc_scenes_hold_the_classes_of_one_fold_group(synthetic_voc_root):
    # BAM's filter drops training images that show a novel class: one group per image keeps 3/4.
    for png in sorted((synthetic_voc_root / "SegmentationClassAug").glob("*.png"))[:60]:
        classes = set(np.unique(np.asarray(Image.open(png))).tolist()) - {0, 255}
        assert len({(c - 1) // 5 for c in classes}) == 1, png.name


@pytest.mark.parametrize("fold", range(4))
def test_coco_lists_are_the_same_with_and_without_bams_filter(synthetic_coco_root, fold):
    # Runs read COCO training images with BAM's filter (protocol.train_exclude_novel), verify with
    # the reader's default (no filter): scenes drawn from one COCO-20i fold group give both the
    # same lists, so the tree's guarantee holds for both.
    for split in ("train", "val"):
        filtered, unfiltered = (
            CocoSource(
                root=synthetic_coco_root, fold=fold, split=split, min_area=400, exclude_novel=e
            ).image_ids_by_class()
            for e in (True, False)
        )
        assert filtered == unfiltered
        assert min(len(ids) for ids in filtered.values()) >= 2


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
