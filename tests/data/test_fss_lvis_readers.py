"""FSS-1000 and LVIS-92i readers on small hand-made trees in the released formats."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrpsam.data.base import FewShotSource
from vrpsam.data.datamodule import BaseSplit, build_datamodule
from vrpsam.data.fss import FssSource, class_numbering
from vrpsam.data.fss_splits import fss_class_splits
from vrpsam.data.lvis import LvisSource, fold_classes, lvis_file_name
from vrpsam.data.reading import DatasetError
from vrpsam.data.sampling import make_test_episodes
from vrpsam.data.sources import build_source

# --- FSS-1000 -----------------------------------------------------------------------------------


def _square(size: int = 32) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[8:24, 8:24] = 255
    return mask


def _fss_tree(root: Path, per_split: int = 2) -> dict[str, list[str]]:
    """``per_split`` classes of each hsnet split (one with an apostrophe), 10 images each, as a
    synthetic tree that records its classes."""
    splits = fss_class_splits()
    apostrophe = next(n for n in sorted(splits["test"]) if "'" in n)
    chosen = {key: sorted(splits[key])[-per_split:] for key in splits}
    chosen["test"][-1] = apostrophe
    rng = np.random.default_rng(0)
    for names in chosen.values():
        for name in names:
            folder = root / name
            folder.mkdir(parents=True)
            for k in range(1, 11):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(
                    folder / f"{k}.jpg"
                )
                Image.fromarray(_square()).save(folder / f"{k}.png")
    record = {"format": "fss1000", "classes": {k: list(v) for k, v in chosen.items()}}
    (root / "vrpsam_synthetic.json").write_text(json.dumps(record), encoding="utf-8")
    return chosen


@pytest.fixture
def fss_root(tmp_path: Path) -> Path:
    _fss_tree(tmp_path / "FSS-1000")
    return tmp_path / "FSS-1000"


def test_fss_numbering_follows_hsnet_splits_sorted():
    numbering = class_numbering()
    splits = fss_class_splits()
    assert len(numbering) == 1000
    assert numbering[sorted(splits["trn"])[0]] == 1
    assert numbering[sorted(splits["val"])[0]] == 521
    assert numbering[sorted(splits["test"])[-1]] == 1000


def test_fss_source_reads_the_layout_and_names_with_apostrophes(fss_root):
    source = FssSource(root=fss_root, split="test")
    assert isinstance(source, FewShotSource)
    assert len(source.classes) == 2
    names = [source.class_name(c) for c in source.classes]
    assert any("'" in name for name in names)
    ids = source.image_ids_by_class()[source.classes[0]]
    # hsnet's order: string-sorted paths (1, 10, 2, ...)
    assert [i.split("/")[1] for i in ids] == ["1", "10", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert source.classes_present(ids[0]) == (source.classes[0],)
    assert source.load_image(ids[0]).shape == (32, 32, 3)


def test_fss_test_episodes_take_every_test_image_once(fss_root):
    source = FssSource(root=fss_root, split="test")
    episodes = make_test_episodes(source, shot=1, seed=0, n=None, rule="pairs")
    assert len(episodes) == 20
    assert sorted(e.target_id for e in episodes) == sorted(source.image_order())
    for episode in episodes:
        assert episode.reference_ids[0].split("/")[0] == episode.target_id.split("/")[0]
        assert episode.reference_ids[0] != episode.target_id


def test_fss_masks_are_thresholded_at_128_whatever_their_mode(fss_root):
    source = FssSource(root=fss_root, split="train")
    image_id = source.image_ids_by_class()[source.classes[0]][0]
    path = fss_root / f"{image_id}.png"
    # An anti-aliased edge: grey levels 127 and 128 on both sides of the threshold.
    grey = _square()
    grey[8:24, 7] = 127
    grey[8:24, 24] = 128
    Image.fromarray(grey).save(path)
    mask = source.load_mask(image_id, source.classes[0])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask[:, 7].sum() == 0 and mask[8:24, 24].all()
    # The same mask as RGB (three equal channels, as some FSS-1000 masks are stored).
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(path)
    assert np.array_equal(source.load_mask(image_id, source.classes[0]), mask)
    # A coloured RGB mask: converted to grey first (pure red 255 → luma 76: background).
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = _square()
    Image.fromarray(red).save(path)
    assert source.load_mask(image_id, source.classes[0]).sum() == 0
    # Another class's mask on this image is empty: FSS images show one class.
    assert source.load_mask(image_id, source.classes[1]).sum() == 0


def test_a_real_fss_tree_missing_class_folders_is_refused_by_name(tmp_path):
    root = tmp_path / "FSS-1000"
    (root / "bus").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"lacks 239 class folder\(s\) of the test split"):
        FssSource(root=root, split="test")


def test_fss_fold_other_than_0_is_refused(fss_root):
    with pytest.raises(ValueError, match=r"fold must be 0, got 1 \(fss1000 has 1 fold"):
        build_source("fss1000", fss_root, 1, "test")


# --- LVIS-92i -----------------------------------------------------------------------------------

N_CATEGORIES = 23  # two per fold, three left over


def _polygon(x: int, y: int, side: int) -> list[list[float]]:
    return [[x, y, x + side, y, x + side, y + side, x, y + side]]


def _lvis_tree(root: Path) -> None:
    """Category c appears in c % 4 + 2 val images (one of them stored in train2017) and in 3
    train images; one image holds two instances of one class."""
    (root / "annotations").mkdir(parents=True)
    written: dict[str, int] = {}

    def image(folder: str, image_id: int) -> dict:
        name = f"{image_id:012d}.jpg"
        (root / folder).mkdir(exist_ok=True)
        Image.fromarray(np.full((40, 48, 3), image_id % 255, np.uint8)).save(root / folder / name)
        written[name] = image_id
        return {"id": image_id, "width": 48, "height": 40, "license": 1,
                "coco_url": f"http://images.cocodataset.org/{folder}/{name}",
                "neg_category_ids": [], "not_exhaustive_category_ids": []}  # fmt: skip

    def document(images, annotations) -> dict:
        cats = [{"id": c, "name": f"thing_{c}", "synonyms": [], "def": "", "synset": "",
                 "frequency": "r", "image_count": 0, "instance_count": 0}
                for c in range(1, N_CATEGORIES + 1)]  # fmt: skip
        return {"images": images, "annotations": annotations, "categories": cats}

    next_id = [1000]

    def ann(image_id: int, category: int, x: int, side: int) -> dict:
        next_id[0] += 1
        return {"id": next_id[0], "image_id": image_id, "category_id": category,
                "segmentation": _polygon(x, 4, side), "area": side * side,
                "bbox": [x, 4, side, side]}  # fmt: skip

    val_images, val_anns, train_images, train_anns = [], [], [], []
    image_id = 1
    for c in range(1, N_CATEGORIES + 1):
        for k in range(c % 4 + 2):
            folder = "train2017" if k == 0 else "val2017"
            val_images.append(image(folder, image_id))
            val_anns.append(ann(image_id, c, 2, 10))
            if k == 1:  # a second instance: the mask is the union
                val_anns.append(ann(image_id, c, 30, 8))
            image_id += 1
        for _ in range(3):
            train_images.append(image("train2017", image_id))
            train_anns.append(ann(image_id, c, 2, 12))
            image_id += 1
    for which, images, anns in (("val", val_images, val_anns), ("train", train_images, train_anns)):
        path = root / "annotations" / f"lvis_v1_{which}.json"
        path.write_text(json.dumps(document(images, anns)), encoding="utf-8")


@pytest.fixture(scope="module")
def lvis_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lvis") / "LVIS"
    _lvis_tree(root)
    return root


def test_lvis_coco_url_resolves_to_folder_and_file():
    entry = {"id": 7, "coco_url": "http://images.cocodataset.org/train2017/000000000007.jpg"}
    assert lvis_file_name(entry) == "train2017/000000000007.jpg"
    assert lvis_file_name({"id": 8, "file_name": "val2017/8.jpg"}) == "val2017/8.jpg"
    with pytest.raises(DatasetError, match="neither coco_url nor file_name"):
        lvis_file_name({"id": 9})


def test_lvis_val_images_stored_in_train2017_are_read(lvis_root):
    source = LvisSource(root=lvis_root, fold=0, split="test")
    in_train = [i for i in source.image_order() if "train2017" in str(source.image_path(i))]
    assert in_train, "the tree stores some val-json images in train2017"
    assert source.load_image(in_train[0]).shape == (40, 48, 3)


def test_lvis_folds_take_every_tenth_class_with_more_than_shot_images(lvis_root):
    one = LvisSource(root=lvis_root, fold=0, split="test", shot=1)
    # Every category has >= 2 val images: 23 eligible, 2 per fold: categories 1 and 11.
    assert one.classes == (1, 11)
    assert LvisSource(root=lvis_root, fold=9, split="test").classes == (10, 20)
    # 3-shot: categories with c % 4 + 2 > 3, i.e. c % 4 in (2, 3): 2, 3, 6, 7, ..., 22, 23 (12).
    three = LvisSource(root=lvis_root, fold=0, split="test", shot=3)
    eligible = [c for c in range(1, N_CATEGORIES + 1) if c % 4 + 2 > 3]
    assert three.classes == (eligible[0],)
    with pytest.raises(ValueError, match=r"fold must be 0\.\.9, got 10"):
        LvisSource(root=lvis_root, fold=10, split="test")


def test_lvis_training_classes_leave_out_the_folds_test_classes(lvis_root):
    train = LvisSource(root=lvis_root, fold=0, split="train")
    val = LvisSource(root=lvis_root, fold=0, split="val")
    assert set(train.classes) == set(range(1, N_CATEGORIES + 1)) - {1, 11}
    assert val.classes == train.classes
    assert not set(train.image_order()) & set(val.image_order())
    assert train.class_name(2) == "thing_2"


def test_lvis_target_mask_is_the_union_of_the_class_instances(lvis_root):
    source = LvisSource(root=lvis_root, fold=0, split="test")
    sizes = sorted(int(source.load_mask(i, 1).sum()) for i in source.image_ids_by_class()[1])
    # Category 1 has 3 val images: two with one 10x10 square, one with a second 8x8 square too.
    assert len(sizes) == 3
    assert sizes[-1] - sizes[0] > 50


def test_lvis_fold_classes_depend_on_the_shot_through_the_datamodule(lvis_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = build_datamodule(dataset="lvis92i", root=lvis_root, fold=0, shot=1)
        three = build_datamodule(dataset="lvis92i", root=lvis_root, fold=0, shot=3)
    assert one.source("test").classes == (1, 11)
    assert three.source("test").classes != one.source("test").classes
    index = json.loads((lvis_root / "annotations" / "lvis_v1_val.json").read_text())
    assert len(index["images"]) > 0
    assert fold_classes is not None


def test_base_split_tests_the_folds_training_images_of_base_classes(lvis_root):
    datamodule = build_datamodule(
        dataset="lvis92i", root=lvis_root, fold=0, shot=1, test_split="base", test_episodes=40
    )
    source = datamodule.source("test")
    assert isinstance(source, BaseSplit) and source.split == "base"
    assert source.classes == datamodule.source("train").classes
    datamodule.setup("test")
    episodes = datamodule.test_dataset.episodes
    assert len(episodes) == 40
    train_images = set(datamodule.source("train").image_order())
    assert {e.target_id for e in episodes} <= train_images
    assert datamodule.test_episode_meta["split"] == "base"
    assert datamodule.test_episode_meta["sampling"] == "balanced"


def test_a_capped_fss_test_list_is_a_class_balanced_prefix(fss_root):
    source = FssSource(root=fss_root, split="test")
    episodes = make_test_episodes(source, shot=1, seed=0, n=4, rule="pairs")
    assert [e.class_id for e in episodes] == [*source.classes, *source.classes]
