"""vrpsam-eval takes from the checkpoint what shapes the episodes, and says what it did not use.

Issue "The paper's rows run, and nothing is silent", items 5-7 and 9: the dataset folder and the
reader's options (size threshold, lists) recorded at training are restored when the command line
does not set them, an override that differs is named in one warning, a run without data names
``data.root`` and the fix, and random frozen weights are written where the figures are read.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from vrpsam.cli import eval as eval_cli
from vrpsam.conf import CONFIG_DIR
from vrpsam.engine.protocol import named_protocol
from vrpsam.engine.settle import settle
from vrpsam.reports.tables import eval_markdown


def moved_frozen_files(ckpt: Path, out: Path) -> Path:
    """A copy of ``ckpt`` whose recorded frozen files are no longer where training left them."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    for entry in checkpoint["vrpsam"]["run_info"]["frozen_weights"].values():
        entry["path"] = str(out / "moved_away" / entry["file"])
    torch.save(checkpoint, out / "moved.ckpt")
    return out / "moved.ckpt"


@pytest.fixture(scope="module")
def cli_eval(demo_run, frozen_files, tmp_path_factory):
    """``vrpsam-eval`` as a user types it, in this process: the demo checkpoint (trained on a
    synthetic tree with ``min_pixels: 400``, generated lists) whose frozen files moved, with no
    ``data.root``, no ``experiment`` (so ``data=pascal5i``: 2048, auto lists), SAM's file given
    and random frozen weights asked for."""
    out = tmp_path_factory.mktemp("cli_eval")
    argv = [
        "vrpsam-eval",
        f"ckpt_path={moved_frozen_files(demo_run['ckpt'], out)}",
        f"model.sam_checkpoint={frozen_files[0]}",
        "random_frozen_weights=true",
        "eval.episodes=4",
        "eval.overlays=0",
        "data.num_workers=0",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={out}",
        f"hydra.run.dir={out / 'eval'}",
        "hydra/job_logging=none",
        "hydra/hydra_logging=none",
    ]
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setattr(sys, "argv", argv)
        with contextlib.redirect_stdout(stdout):
            eval_cli.main()
    folder = out / "eval"
    return {
        "result": json.loads((folder / "eval.json").read_text()),
        "markdown": (folder / "eval.md").read_text(),
        "last_line": stdout.getvalue().strip().splitlines()[-1],
        "warnings": [str(w.message) for w in caught if w.filename.endswith("evaluation.py")],
        "episodes": sorted((out / "episodes").glob("*.json")),
    }


def test_eval_takes_the_checkpoints_dataset_folder_when_none_is_given(cli_eval):
    result = cli_eval["result"]
    assert result["root"] == result["trained_on"]["root"]
    assert result["episodes"] == 4


def test_eval_draws_the_episodes_with_the_checkpoints_size_threshold_and_lists(cli_eval, demo_run):
    result = cli_eval["result"]
    assert result["trained_on"]["source_options"] == {"lists": "generate", "min_pixels": 400}
    assert result["source_options"] == {"lists": "generate", "min_pixels": 400}
    # The same fixed list as the training run's test on that tree and threshold.
    (written,) = cli_eval["episodes"]
    training = demo_run["run"].parent / "episodes" / written.name
    assert json.loads(written.read_text()) == json.loads(training.read_text())
    # Nothing was overridden: no warning about the episode side.
    assert not [w for w in cli_eval["warnings"] if "data." in w]


def test_random_frozen_weights_are_written_into_eval_json_md_and_the_last_line(cli_eval):
    result = cli_eval["result"]
    assert result["random_frozen_weights"] == ["backbone"]  # SAM's file was given
    assert "**Random frozen weights** (backbone" in cli_eval["markdown"]
    assert cli_eval["last_line"].startswith("mIoU ")
    assert cli_eval["last_line"].endswith("(random frozen weights: backbone)")


def test_an_eval_on_the_files_the_model_was_trained_on_records_no_random_part():
    from vrpsam.engine.methods import random_frozen_parts

    info = {"frozen_weights": {"sam": {"file": "s.pth"}, "backbone": {"file": "b.pth"}},
            "sam_checkpoint": "s.pth", "backbone_checkpoint": "b.pth"}  # fmt: skip
    assert random_frozen_parts(info) == []
    assert random_frozen_parts({**info, "sam_checkpoint": None}) == ["sam"]
    assert random_frozen_parts({"training_free": True}) == []


# The checkpoint's record, as load_trained_model returns it (the parts settle reads).
INFO = {
    "dataset": "pascal",
    "fold": 0,
    "image_size": 128,
    "interpolation": "bilinear",
    "annotation": "mask",
    "source_options": {"lists": "generate", "min_pixels": 400},
    "protocol": named_protocol("default", "pascal", CONFIG_DIR).as_dict(),
}


def eval_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="eval", overrides=list(overrides))


def settled(tmp_path: Path, *overrides: str, known: bool = True):
    """settle() of the checkpoint record above (its root: ``tmp_path``) and a command line."""
    cfg = eval_cfg(*overrides)
    info = {**INFO, "root": str(tmp_path)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg, _ = settle(cfg, info, list(overrides) if known else None)
    return cfg, [str(w.message) for w in caught if "differ from the checkpoint" in str(w.message)]


def test_an_explicit_threshold_that_differs_is_honoured_with_one_warning_naming_both(tmp_path):
    cfg, notes = settled(tmp_path, "data.source_options.min_pixels=1000")
    assert cfg.data.source_options == {"lists": "generate", "min_pixels": 1000}
    assert cfg.data.root == str(tmp_path)
    (note,) = notes
    assert "data.source_options.min_pixels: checkpoint 400, this run 1000" in note


def test_an_explicit_root_that_differs_is_honoured_with_one_warning(tmp_path):
    other = tmp_path / "copy"
    cfg, notes = settled(tmp_path, f"data.root={other}")
    assert cfg.data.root == str(other)
    (note,) = notes
    assert f"data.root: checkpoint '{tmp_path}', this run '{other}'" in note


def test_the_same_values_given_again_raise_no_warning(tmp_path):
    cfg, notes = settled(tmp_path, f"data.root={tmp_path}", "++data.source_options.min_pixels=400",
                         "data.source_options.lists=generate")  # fmt: skip
    assert notes == [] and cfg.data.source_options.min_pixels == 400


def test_a_checkpoint_of_another_dataset_restores_no_folder_or_options(tmp_path):
    cfg, _ = settled(tmp_path, "data=coco20i")
    assert cfg.data.root != str(tmp_path) and "min_pixels" not in cfg.data.source_options


def test_a_restored_folder_that_is_gone_names_data_root_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no longer exists: pass .*data\.root=/path/to/"):
        settled(tmp_path / "VOC2012")


def test_an_eval_annotation_override_is_named_in_the_warning(tmp_path):
    cfg, notes = settled(tmp_path, "eval.annotation=box")
    assert cfg.eval.annotation == "box"
    (note,) = notes
    assert "eval.annotation: checkpoint 'mask', this run 'box'" in note


@pytest.mark.parametrize("stage", ["fit", "test"])
def test_no_data_at_the_root_names_data_root_and_the_fix(tmp_path, stage):
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"data.root={tmp_path / 'VOC2012'}"])
    data = instantiate(cfg.data, num_workers=0)
    with pytest.raises(ValueError, match=r"data\.root=.*VOC2012\. .*e\.g\. data\.root=/path/to/"):
        data.setup(stage)


def base_result(**extra) -> dict:
    return {"method": "vrpsam", "dataset": "pascal", "fold": 0, "shot": 1, "annotation": "mask",
            "episodes": 4, "seeds": [0], "miou": 50.0, "fbiou": 60.0, "class_ids": [1],
            "per_class_iou": [50.0], "split": "novel", **extra}  # fmt: skip


def test_eval_md_shows_the_false_positive_rate_of_negative_episodes():
    markdown = eval_markdown(base_result(negatives=True, negative_fp_rate=37.5,
                                         negative_area=2.25))  # fmt: skip
    assert "| false-positive rate: episodes with any predicted pixel (%) | 37.5 |" in markdown
    assert "| predicted area on negative targets (%) | 2.2 |" in markdown
    assert "false-positive" not in eval_markdown(base_result())


def test_eval_md_says_split_base():
    assert "split: base" in eval_markdown(base_result(split="base"))
