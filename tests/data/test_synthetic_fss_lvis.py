"""The FSS-1000 and LVIS v1 synthetic writers produce the real on-disk formats, deterministically,
with the quirks the readers must handle (anti-aliased and RGB masks, val images in train2017)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from vrpsam.data.fss_splits import FSS_SPLITS, fss_class_splits
from vrpsam.data.synthetic import MARKER
from vrpsam.data.synthetic_fss import COVERAGE, IMAGES_PER_CLASS, write_fss_tree
from vrpsam.data.synthetic_lvis import (
    MIN_IMAGES_PER_CATEGORY,
    frequency,
    lvis_min_pixels,
    polygons,
    write_lvis_tree,
)
from vrpsam.data.synthetic_scenes import class_style, render_scene

FSS_ARGS = {"classes": (3, 2, 2), "size": 64}
LVIS_ARGS = {"categories": 8, "images": (30, 30), "size": 128}
IMAGE_KEYS = {
    "id", "width", "height", "license", "coco_url", "flickr_url", "date_captured",
    "neg_category_ids", "not_exhaustive_category_ids",
}  # fmt: skip
ANNOTATION_KEYS = {"id", "image_id", "category_id", "segmentation", "area", "bbox"}
CATEGORY_KEYS = {
    "id", "name", "synonyms", "def", "synset", "frequency", "image_count", "instance_count",
}  # fmt: skip


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def fss_root(tmp_path_factory) -> Path:
    return write_fss_tree(tmp_path_factory.mktemp("fss") / "FSS-1000", seed=0, **FSS_ARGS)


@pytest.fixture(scope="module")
def lvis_root(tmp_path_factory) -> Path:
    return write_lvis_tree(tmp_path_factory.mktemp("lvis") / "lvis", seed=0, **LVIS_ARGS)


def _marker(root: Path) -> dict:
    return json.loads((root / MARKER).read_text(encoding="utf-8"))


def _lvis_json(root: Path, split: str) -> dict:
    return json.loads((root / "annotations" / f"lvis_v1_{split}.json").read_text(encoding="utf-8"))


def _file_of(root: Path, image: dict) -> Path:
    folder, name = image["coco_url"].split("/")[-2:]
    return root / folder / name


@pytest.mark.parametrize(
    ("writer", "args", "fixture"),
    [(write_fss_tree, FSS_ARGS, "fss_root"), (write_lvis_tree, LVIS_ARGS, "lvis_root")],
)
def test_same_seed_gives_byte_identical_trees_and_another_seed_differs(
    writer, args, fixture, request, tmp_path
):
    first = _tree_bytes(request.getfixturevalue(fixture))
    again = _tree_bytes(writer(tmp_path / "again", seed=0, **args))
    other = _tree_bytes(writer(tmp_path / "other", seed=1, **args))
    assert first == again
    assert len(first) > 20
    assert first != other


def test_fss_splits_ship_with_the_package_as_hsnet_has_them():
    splits = fss_class_splits()
    assert tuple(splits) == FSS_SPLITS
    assert [len(splits[s]) for s in FSS_SPLITS] == [520, 240, 240]
    assert len(set().union(*splits.values())) == 1000
    assert "abe's_flyingfish" in splits["test"]


def test_fss_tree_has_the_released_layout(fss_root):
    marker = _marker(fss_root)
    assert marker["format"] == "fss1000"
    names = [n for s in FSS_SPLITS for n in marker["classes"][s]]
    assert sorted(p.name for p in fss_root.iterdir() if p.is_dir()) == sorted(names)
    expected = {f"{k}.{ext}" for k in range(1, IMAGES_PER_CLASS + 1) for ext in ("jpg", "png")}
    for name in names:
        assert {p.name for p in (fss_root / name).iterdir()} == expected
        with Image.open(fss_root / name / "1.jpg") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 64))


def test_fss_tree_draws_hsnet_classes_including_apostrophes_and_underscores(fss_root):
    classes, splits = _marker(fss_root)["classes"], fss_class_splits()
    for split, n in zip(FSS_SPLITS, FSS_ARGS["classes"], strict=True):
        assert len(classes[split]) == n and set(classes[split]) <= set(splits[split])
        assert any("_" in name for name in classes[split])
        # hsnet's val and test lists each hold one name with an apostrophe.
        assert any("'" in name for name in classes[split]) == (split != "trn")


def test_fss_masks_are_anti_aliased_and_thresholding_at_128_gives_the_object(fss_root):
    classes = _marker(fss_root)["classes"]
    names = [n for s in FSS_SPLITS for n in classes[s]]
    for index, name in enumerate(names):
        colors = np.array(class_style(index).colors, np.float32)
        for k in range(1, IMAGES_PER_CLASS + 1):
            mask = np.array(Image.open(fss_root / name / f"{k}.png").convert("L"))
            grey = (mask > 0) & (mask < 255)
            assert grey.any() and (mask == 0).any() and (mask == 255).any()
            assert ((mask >= 128) != (mask > 0)).any()  # the threshold decides edge pixels
            assert COVERAGE[0] <= (mask >= 128).mean() <= COVERAGE[1]
            # The mask is the object: inside, the image is nearer the class's colours than outside,
            # and its grey edge lies on the image's edges.
            image = np.asarray(Image.open(fss_root / name / f"{k}.jpg"), np.float32)
            dist = np.linalg.norm(image[:, :, None] - colors, axis=-1).min(-1)
            assert np.median(dist[mask == 255]) < 0.8 * np.median(dist[mask == 0])
            gradient = np.hypot(*np.gradient(image.mean(-1)))
            assert gradient[grey].mean() > 1.3 * gradient[~grey].mean()


def test_a_seeded_few_fss_masks_are_rgb_with_three_equal_channels(fss_root):
    rgb = set(_marker(fss_root)["rgb_masks"])
    assert rgb
    for path in sorted(fss_root.glob("*/*.png")):
        with Image.open(path) as png:
            relative = f"{path.parent.name}/{path.name}"
            assert png.mode == ("RGB" if relative in rgb else "L")
            if png.mode == "RGB":
                array = np.asarray(png)
                assert (array == array[:, :, :1]).all()


def test_lvis_tree_has_the_v1_layout_and_image_records(lvis_root):
    marker = _marker(lvis_root)
    assert marker["format"] == "lvis"
    train, val = _lvis_json(lvis_root, "train"), _lvis_json(lvis_root, "val")
    assert [len(train["images"]), len(val["images"])] == list(LVIS_ARGS["images"])
    ids = {split: {i["id"] for i in data["images"]} for split, data in (("t", train), ("v", val))}
    assert not ids["t"] & ids["v"]
    listed = set()
    for data in (train, val):
        for image in data["images"]:
            assert set(image) == IMAGE_KEYS  # no file_name: the file is named by coco_url
            assert image["coco_url"].startswith("http://images.cocodataset.org/")
            path = _file_of(lvis_root, image)
            assert path.is_file() and path.name == f"{image['id']:012d}.jpg"
            listed.add(path)
    assert listed == set(lvis_root.glob("*2017/*.jpg"))
    assert all(_file_of(lvis_root, i).parent.name == "train2017" for i in train["images"])
    in_train = [i for i in val["images"] if _file_of(lvis_root, i).parent.name == "train2017"]
    assert len(in_train) >= 2 and len(in_train) == marker["val_in_train2017"]


def test_lvis_annotations_and_categories_are_consistent(lvis_root):
    n = LVIS_ARGS["categories"]
    train_counts = None
    for split in ("train", "val"):
        data = _lvis_json(lvis_root, split)
        images = {c: set() for c in range(1, n + 1)}
        instances = dict.fromkeys(range(1, n + 1), 0)
        for ann in data["annotations"]:
            assert set(ann) == ANNOTATION_KEYS
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in ann["segmentation"])
            images[ann["category_id"]].add(ann["image_id"])
            instances[ann["category_id"]] += 1
        assert [c["id"] for c in data["categories"]] == list(range(1, n + 1))
        counts = {c: len(ids) for c, ids in images.items()}
        train_counts = train_counts or counts
        for cat in data["categories"]:
            assert set(cat) == CATEGORY_KEYS
            assert cat["image_count"] == counts[cat["id"]] > MIN_IMAGES_PER_CATEGORY - 1
            assert cat["instance_count"] == instances[cat["id"]]
            assert cat["frequency"] == frequency(train_counts[cat["id"]])
        assert len({c["name"] for c in data["categories"]}) == n


def test_every_lvis_category_shows_enough_of_itself_in_enough_images(lvis_root):
    for split in ("train", "val"):
        data = _lvis_json(lvis_root, split)
        area: dict[tuple[int, int], float] = {}
        for ann in data["annotations"]:
            key = (ann["category_id"], ann["image_id"])
            area[key] = area.get(key, 0.0) + ann["area"]
        for c in range(1, LVIS_ARGS["categories"] + 1):
            shown = [a for (cat, _), a in area.items() if cat == c]
            assert sum(a >= lvis_min_pixels(LVIS_ARGS["size"]) for a in shown) >= 6


def test_lvis_json_round_trips_through_pycocotools(lvis_root):
    for split in ("train", "val"):
        coco = COCO(str(lvis_root / "annotations" / f"lvis_v1_{split}.json"))
        assert len(coco.getCatIds()) == LVIS_ARGS["categories"]
        repeated = 0
        for image_id, anns in coco.imgToAnns.items():
            union = np.zeros((LVIS_ARGS["size"],) * 2, np.uint8)
            for ann in anns:
                mask = coco.annToMask(ann)
                assert mask.sum() == ann["area"]
                ys, xs = np.nonzero(mask)
                x, y, w, h = ann["bbox"]
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
                assert not (union & mask).any()  # visible parts: instances never overlap
                union |= mask
            cats = [a["category_id"] for a in anns]
            repeated += len(cats) != len(set(cats))
            assert image_id in coco.imgs
        assert repeated > 0  # some images hold two instances of one category


def test_polygons_reproduce_rendered_masks_and_open_holes():
    from pycocotools import mask as mask_utils

    ring = np.zeros((40, 40), bool)
    ring[5:30, 5:30] = True
    ring[12:20, 12:20] = False
    scene = render_scene(np.random.default_rng(0), size=96, classes=[0, 1, 2, 3])
    masks = [ring] + [scene.instances == k for k in range(1, len(scene.classes) + 1)]
    for mask in masks:
        polys, kept = polygons(mask)
        if not polys:
            continue
        h, w = mask.shape
        decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        assert (decoded.astype(bool) == kept).all()
        assert (kept <= mask).all() and (mask & ~kept).sum() <= max(16, 0.05 * mask.sum())
    assert not polygons(ring)[1][12:20, 12:20].any()  # the hole stays a hole
