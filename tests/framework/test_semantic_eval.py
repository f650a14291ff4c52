"""vrpsam-eval task=semantic: every class at once (or N-way episodes) on the synthetic VOC tree."""

import json
import sys
from pathlib import Path

import pytest

from vrpsam.cli.eval import headline
from vrpsam.engine import progress
from vrpsam.engine.evaluation import evaluate

KEYS = {"method", "dataset", "task", "form", "classes", "class_names", "references_per_class",
        "images", "miou", "per_class_iou", "pixel_accuracy", "presence", "seconds_per_image",
        "protocol", "switches", "checkpoint", "trained_on", "units"}  # fmt: skip
SEMANTIC = ["task=semantic", "data.num_workers=0", "trainer.enable_progress_bar=false"]
RIM = ["method=rim", "method.encoder=resnet18", "method.encoder_kwargs=null",
       "method.settings.points_per_side=8"]  # fmt: skip


def evaluate_semantic(make_cfg, tmp_path, *overrides):
    cfg = make_cfg("eval", *SEMANTIC, *overrides)
    result = evaluate(cfg)
    assert json.loads((tmp_path / "run" / "eval.json").read_text()) == result
    # The command's last line (what scripts read) is printable for every semantic result.
    assert headline(result).startswith(f"mIoU {result['miou']:.2f} pixel accuracy ")
    return result


def check_reports(result, tmp_path, classes):
    assert set(result) >= KEYS and result["task"] == "semantic" and result["units"] == "percent"
    assert result["classes"] == len(classes) + 1 == len(result["per_class_iou"])
    assert list(result["per_class_iou"]) == ["background", *classes]
    assert 0 <= result["miou"] <= 100 and 0 <= result["pixel_accuracy"] <= 100
    scored = [v for v in result["per_class_iou"].values() if v is not None]
    assert result["miou"] == pytest.approx(sum(scored) / len(scored))
    assert result["seconds_per_image"] > 0
    for name in ("confusion.png", "overlays.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert "| mIoU (%) |" in (tmp_path / "run" / "eval.md").read_text()


VOC = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
       "train", "tvmonitor"]  # fmt: skip


def test_untrained_vrpsam_chooses_the_threshold_on_validation_images(
    make_cfg, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(progress, "LINE_SECONDS", 0.0)  # a progress line per image
    result = evaluate_semantic(make_cfg, tmp_path, "eval.episodes=1", "eval.semantic.val_images=1")
    # Both passes show their progress (here the bar is off: lines), each named and counted.
    printed = capsys.readouterr().out
    assert "vrpsam, presence threshold (validation): 1/1 images (" in printed
    assert "vrpsam, test: 1/1 images (" in printed
    check_reports(result, tmp_path, VOC)
    assert result["method"] == "vrpsam" and result["form"] == "all" and result["images"] == 1
    assert result["checkpoint"] is None and result["trained_on"] == {"untrained": True}
    presence = result["presence"]
    assert presence["chosen_on"] == "val" and presence["val_images"] == 1
    val = json.loads((tmp_path / "run" / "seed0" / "presence_val.json").read_text())
    assert len(val["scores"]) == presence["val_pairs"] == 1 * 20  # every class in every image
    assert presence["pairs"] == 1 * 20 and 0 <= presence["false_positive_rate"] <= 100
    assert 0 <= presence["val_auc"] <= 100  # the image shows some classes and lacks others


def test_rim_segments_every_class_and_honours_a_fixed_threshold(make_cfg, tmp_path):
    result = evaluate_semantic(
        make_cfg, tmp_path, *RIM, "eval.episodes=2", "eval.semantic.presence_threshold=0.25",
        "eval.semantic.references_per_class=2",
    )  # fmt: skip
    check_reports(result, tmp_path, VOC)
    assert result["method"] == "rim" and result["references_per_class"] == 2
    assert result["presence"]["threshold"] == 0.25 and result["presence"]["chosen_on"] == "config"
    assert not (tmp_path / "run" / "seed0" / "presence_val.json").exists()


def test_a_threshold_above_every_score_claims_no_class(make_cfg, tmp_path):
    result = evaluate_semantic(
        make_cfg, tmp_path, "eval.semantic.form=nway", "eval.episodes=2",
        "eval.semantic.presence_threshold=1.5",
    )  # fmt: skip
    presence = result["presence"]
    assert presence["false_positives"] == 0 and presence["false_positive_rate"] in (0, None)
    assert presence["recall"] == 0 and result["per_class_iou"]["background"] > 0
    assert all(v in (None, 0.0) for k, v in result["per_class_iou"].items() if k != "background")


def test_persam_in_the_nway_form_scores_the_folds_novel_classes(make_cfg, tmp_path):
    result = evaluate_semantic(
        make_cfg, tmp_path, "method=persam", "eval.semantic.form=nway", "eval.semantic.ways=2",
        "eval.episodes=2", "eval.semantic.val_images=1", "data.fold=1",
    )  # fmt: skip
    check_reports(result, tmp_path, VOC[5:10])
    assert result["form"] == "nway" and result["fold"] == 1 and result["ways"] == 2
    assert result["images"] == 2 and result["presence"]["pairs"] == 2 * 2
    assert result["presence"]["chosen_on"] == "val" and result["presence"]["val_pairs"] == 2


def test_matcher_small_runs_an_nway_episode(make_cfg, tmp_path):
    result = evaluate_semantic(
        make_cfg, tmp_path, "method=matcher_small", "eval.semantic.form=nway",
        "eval.semantic.ways=2", "eval.episodes=1", "eval.semantic.presence_threshold=0.5",
        "method.settings.dense_points_per_side=8", "method.settings.draws_per_size=4",
    )  # fmt: skip
    check_reports(result, tmp_path, VOC[:5])
    assert result["method"] == "matcher" and result["images"] == 1


def test_an_unknown_form_is_refused(make_cfg):
    with pytest.raises(ValueError, match=r"form must be one of all, nway"):
        evaluate(make_cfg("eval", *SEMANTIC, "eval.semantic.form=some"))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="gloo process groups on Linux CI")
def test_two_processes_give_the_one_process_eval_json(make_cfg, tmp_path):
    overrides = [*SEMANTIC, *RIM, "eval.episodes=3", "eval.semantic.val_images=3"]
    one = evaluate(make_cfg("eval", *overrides, run="one"))
    two = evaluate(make_cfg("eval", *overrides, "trainer=ddp_cpu", "trainer.devices=2", run="two"))
    for key in ("miou", "per_class_iou", "pixel_accuracy", "presence", "images"):
        assert two[key] == one[key], key


def test_compare_script_collects_runs_into_one_table(tmp_path, monkeypatch):
    import runpy

    runs = []
    for method, miou in (("rim", 20.0), ("persam", 30.0)):
        folder = tmp_path / method
        folder.mkdir()
        (folder / "confusion.png").write_bytes(b"png")
        result = {"method": method, "dataset": "pascal", "task": "semantic", "form": "all",
                  "classes": 21, "references_per_class": 1, "images": 4, "miou": miou,
                  "pixel_accuracy": 50.0, "seconds_per_image": 0.5,
                  "presence": {"threshold": 0.5, "chosen_on": "val",
                               "false_positive_rate": 12.5}}  # fmt: skip
        (folder / "eval.json").write_text(json.dumps(result))
        runs.append(str(folder / "eval.json"))
    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_semantic.py"
    monkeypatch.setattr(
        sys, "argv", ["compare", "--out", str(tmp_path / "out"), "--collect", *runs]
    )
    runpy.run_path(str(script), run_name="__main__")
    rows = (tmp_path / "out" / "semantic.md").read_text().splitlines()
    assert rows[2].startswith(
        "| persam | persam | pascal | all | 21 | 1 | 4 | 30.0 | 50.0 | 12.5 |"
    )
    assert rows[3].startswith("| rim | rim |")
    assert (tmp_path / "out" / "confusion_rim.png").read_bytes() == b"png"


def test_compare_semantic_names_runs_and_gives_each_its_checkpoint():
    import argparse
    import runpy

    script = Path(__file__).resolve().parents[2] / "scripts" / "compare_semantic.py"
    runs = runpy.run_path(str(script))["runs"]

    def parsed(methods, ckpt=(), vrpsam_ckpt=None):
        return argparse.Namespace(methods=methods, ckpt=list(ckpt), vrpsam_ckpt=vrpsam_ckpt)

    got = runs(parsed(["vrpsam", "neg=vrpsam", "rim"], ["neg=b.ckpt"], "a.ckpt"))
    assert got == [("vrpsam", "vrpsam", "a.ckpt"), ("neg", "vrpsam", "b.ckpt"),
                   ("rim", "rim", None)]  # fmt: skip
    with pytest.raises(SystemExit, match="share a name"):
        runs(parsed(["vrpsam", "vrpsam"]))
    with pytest.raises(SystemExit, match="lacks: other"):
        runs(parsed(["vrpsam"], ["other=c.ckpt"]))
