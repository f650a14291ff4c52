"""``vrpsam-data``: synthetic, verify and episodes subcommands, run through ``main(argv)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vrpsam.cli.data import main
from vrpsam.data.verify import verify_tree

# The session trees have 128-pixel images (conftest.py): list a class from 400 pixels on.
SMALL = ["--min-pixels", "400"]


def test_synthetic_subcommand_writes_a_tree_that_verifies(tmp_path, capsys):
    out = tmp_path / "toy"
    assert (
        main(["synthetic", "--format", "voc", "--out", str(out), "--images", "8", "--size", "64"])
        == 0
    )
    assert len(list((out / "JPEGImages").glob("*.jpg"))) == 8
    assert "vrpsam-data verify --dataset pascal" in capsys.readouterr().out
    assert main(["synthetic", "--format", "voc", "--out", str(out), "--images", "8"]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["pascal", "coco"])
def test_verify_passes_a_sound_tree_and_prints_fold_counts(
    dataset, synthetic_voc_root, synthetic_coco_root, capsys
):
    root = synthetic_voc_root if dataset == "pascal" else synthetic_coco_root
    assert main(["verify", "--dataset", dataset, "--root", str(root), *SMALL]) == 0
    out = capsys.readouterr().out
    assert "min/class" in out and out.rstrip().endswith("OK")
    assert sum(line.split()[1:2] == ["test"] for line in out.splitlines()) == 4


def test_verify_names_every_broken_file(voc_copy, capsys):
    ids = (voc_copy / "ImageSets/Segmentation/train.txt").read_text().split()
    (voc_copy / "SegmentationClassAug" / f"{ids[0]}.png").unlink()
    (voc_copy / "JPEGImages" / f"{ids[1]}.jpg").write_bytes(b"not a jpeg")
    label_path = voc_copy / "SegmentationClassAug" / f"{ids[2]}.png"
    label = np.array(Image.open(label_path))
    label[0, 0] = 77
    Image.fromarray(label).save(label_path)
    assert main(["verify", "--dataset", "pascal", "--root", str(voc_copy), *SMALL]) == 1
    out = capsys.readouterr().out
    assert f"(e.g. {ids[0]})" in out
    assert f"cannot read image {voc_copy / 'JPEGImages' / ids[1]}.jpg" in out
    assert f"{ids[2]}.png holds values [77]" in out
    assert "3 problem(s) found" in out


def test_verify_reports_coco_json_that_does_not_match_the_images(coco_copy):
    missing = sorted((coco_copy / "train2014").iterdir())[3]
    missing.unlink()
    report = verify_tree("coco", coco_copy, min_area=400)
    assert not report.ok
    assert any(missing.name in problem for problem in report.problems)


def test_verify_reports_a_missing_root(tmp_path, capsys):
    assert main(["verify", "--dataset", "coco", "--root", str(tmp_path / "none")]) == 1
    assert "COCO root not found" in capsys.readouterr().out


def test_verify_passes_a_sound_tree_whose_classes_are_too_thin_and_notes_them(
    synthetic_voc_root, capsys
):
    # A threshold too high for 128-pixel images empties some class lists: the tree is still sound.
    argv = ["verify", "--dataset", "pascal", "--root", str(synthetic_voc_root)]
    assert main([*argv, "--min-pixels", "3000"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("OK") and "PROBLEM" not in out
    thin = [line.strip() for line in out.splitlines() if line.startswith("  fold ")]
    assert any("< 2 images, no episode" in line for line in thin)
    assert any(line.startswith("fold 0 val:") for line in thin)
    assert len(thin) == len({line.split(":")[0] for line in thin})  # one line per fold split
    report = verify_tree("pascal", synthetic_voc_root, min_pixels=3000)
    assert report.ok and report.thin and not report.problems


def test_verify_uses_the_threshold_recorded_by_a_synthetic_tree(synthetic_voc_root, capsys):
    # The session tree is made for 400 pixels: read at PFENet's 2048 most of its lists would empty.
    argv = ["verify", "--dataset", "pascal", "--root", str(synthetic_voc_root)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "min_pixels=400, recorded in vrpsam_synthetic.json" in out
    assert "no episode" not in out
    assert main([*argv, "--min-pixels", "2048"]) == 0
    out = capsys.readouterr().out
    assert "size threshold: min_pixels=2048" in out and "no episode" in out


def test_verify_uses_the_recorded_threshold_on_a_synthetic_coco_tree(synthetic_coco_root):
    report = verify_tree("coco", synthetic_coco_root)
    assert any("min_area=400, recorded in" in note for note in report.notes)
    assert report.ok and min(row[4] for row in report.rows) >= 2


def test_verify_prints_the_share_of_training_images_held_out_per_fold(synthetic_voc_root, capsys):
    assert main(["verify", "--dataset", "pascal", "--root", str(synthetic_voc_root)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("held out"))
    report = verify_tree("pascal", synthetic_voc_root)
    for fold in range(4):
        rows = {split: images for f, split, images, *_ in report.rows if f == fold}
        held, total = rows["val"], rows["train"] + rows["val"]
        assert f"fold {fold} {held}/{total} ({held / total:.1%})" in line
    assert (fold, held, total) == report.holdout[-1]


def test_synthetic_voc_tree_of_120_images_verifies_without_min_pixels(tmp_path, capsys):
    out = tmp_path / "voc"
    argv = ["synthetic", "--format", "voc", "--out", str(out), "--images", "120", "--seed", "0"]
    assert main([*argv, "--workers", "1"]) == 0
    assert "size threshold 400 pixels" in capsys.readouterr().out
    assert main(["verify", "--dataset", "pascal", "--root", str(out)]) == 0
    report = capsys.readouterr().out
    assert report.rstrip().endswith("OK") and "no episode" not in report


@pytest.mark.parametrize("dataset", ["pascal", "coco", "coco2pascal"])
def test_episodes_subcommand_writes_a_fixed_list(
    dataset, synthetic_voc_root, synthetic_coco_root, tmp_path
):
    from vrpsam.data.episodes import load_episodes

    root = synthetic_coco_root if dataset == "coco" else synthetic_voc_root
    out = tmp_path / "episodes.json"
    argv = ["episodes", "--dataset", dataset, "--root", str(root), "--fold", "1", "--shot", "1"]
    argv += ["--seed", "3", "--n", "25", "--out", str(out), *SMALL]
    assert main(argv) == 0
    first = out.read_bytes()
    assert main(argv) == 0 and out.read_bytes() == first
    episodes, meta = load_episodes(out)
    assert len(episodes) == 25
    assert (meta["dataset"], meta["fold"], meta["shot"], meta["seed"]) == (dataset, 1, 1, 3)
    assert {e.class_id for e in episodes} <= set(meta["classes"])
    assert all(e.target_id not in e.reference_ids for e in episodes)
    assert json.loads(first)["meta"]["split"] == "test"


def test_episodes_subcommand_rejects_fold_7(synthetic_voc_root, tmp_path, capsys):
    argv = ["episodes", "--dataset", "pascal", "--root", str(synthetic_voc_root), "--fold", "7"]
    assert main([*argv, "--out", str(tmp_path / "e.json")]) == 2
    assert "fold must be 0..3, got 7" in capsys.readouterr().err
