"""train(cfg) / evaluate(cfg) / export / predict on synthetic data with the demo's tiny models.

The training run is the session's ``demo_run`` (framework/conftest.py), trained once.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vrpsam.artifacts.checkpoints import read_training_checkpoint
from vrpsam.cli.export import export
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.training_module import FROZEN_PREFIXES
from vrpsam.predictor.folder import predict

EVAL_KEYS = {"miou", "fbiou", "per_class_iou", "episodes", "fold", "shot", "annotation", "seed"}


def test_training_writes_checkpoints_metrics_and_curve(demo_run):
    run = demo_run["run"]
    for name in (
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "metrics.json",
        "training_curve.png",
        "logs/metrics.csv",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["episodes"] == 4 and 0 <= metrics["test"]["miou"] <= 100
    assert metrics["test_before_training"]["episodes"] == 4
    assert metrics["val_history"] and metrics["steps"] == 2  # 16 episodes, total batch 8


def test_checkpoints_hold_only_learnable_weights(demo_run):
    checkpoint = read_training_checkpoint(demo_run["run"] / "checkpoints/last.ckpt")
    keys = checkpoint["state_dict"].keys()
    assert keys and not [k for k in keys if k.startswith(FROZEN_PREFIXES)]
    assert all(k.startswith("model.encoder.") for k in keys)
    assert checkpoint["vrpsam"]["build_spec"]["backbone"] == "resnet18"


def test_eval_reproduces_the_training_test_and_writes_its_reports(demo_run, compose_cfg, tmp_path):
    out = tmp_path
    cfg = compose_cfg(
        "eval",
        out,
        f"ckpt_path={demo_run['run'] / 'checkpoints/best.ckpt'}",
        "eval.episodes=4",
        run="eval",
    )
    result = evaluate(cfg)
    assert set(result) >= EVAL_KEYS
    assert result["miou"] == pytest.approx(demo_run["metrics"]["test"]["miou"], abs=1e-6)
    for name in ("eval.json", "eval.md", "overlays.png"):
        assert (out / "eval" / name).is_file()
    assert json.loads((out / "eval/eval.json").read_text())["episodes"] == 4


def test_several_seeds_give_mean_and_std(demo_run, compose_cfg, tmp_path):
    cfg = compose_cfg(
        "eval",
        tmp_path,
        f"ckpt_path={demo_run['run'] / 'checkpoints/best.ckpt'}",
        "eval.episodes=4",
        "eval.seed=[0,1]",
        run="eval_seeds",
    )
    result = evaluate(cfg)
    assert result["seeds"] == [0, 1] and len(result["per_seed"]) == 2
    assert result["miou"] == pytest.approx(np.mean([r["miou"] for r in result["per_seed"]]))


def test_eval_refuses_a_checkpoint_of_another_architecture(demo_run, compose_cfg, tmp_path):
    cfg = compose_cfg(
        "eval",
        tmp_path,
        f"ckpt_path={demo_run['run'] / 'checkpoints/best.ckpt'}",
        "model.backbone=vgg16",
        run="eval_wrong",
    )
    with pytest.raises(ValueError, match="backbone: 'resnet18' \\(saved\\) vs 'vgg16'"):
        evaluate(cfg)


def test_missing_checkpoint_and_export_folder_are_named(compose_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        evaluate(compose_cfg("eval", tmp_path, f"ckpt_path={tmp_path / 'nope.ckpt'}"))
    with pytest.raises(FileNotFoundError, match="vrpsam-export"):
        evaluate(compose_cfg("eval", tmp_path, f"export_dir={tmp_path / 'nowhere'}"))


def test_export_then_predictor_gives_the_lightning_module_logits(
    demo_run, compose_cfg, frozen_files, tmp_path
):
    out = export(
        compose_cfg(
            "export",
            tmp_path,
            f"ckpt_path={demo_run['run'] / 'checkpoints/best.ckpt'}",
            f"out_dir={tmp_path / 'export'}",
        )
    )
    config = json.loads((out / "config.json").read_text())
    assert config["frozen_weights"]["sam"]["file"] == "sam_tiny.pth"
    from vrpsam.predictor import VRPSAMPredictor

    sam_file, backbone_file = frozen_files
    predictor = VRPSAMPredictor.from_export(
        out, sam_checkpoint=sam_file, backbone_checkpoint=backbone_file
    )
    module = demo_run["module"].eval()
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    target = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    predictor.set_reference(reference, box=(30, 30, 90, 100))
    _, _, logits = predictor.predict(target)
    t = predictor.transform
    ref_mask = torch.zeros(1, 1, 128, 128)
    ref_mask[..., 30:101, 30:91] = 1
    with torch.no_grad():
        expected = module.model(t.image(target)[None], t.image(reference)[None, None], ref_mask)
    np.testing.assert_allclose(logits, expected[0, 0].numpy(), atol=1e-4)


def test_predict_cli_writes_masks_and_refuses_bad_targets(
    demo_run, compose_cfg, frozen_files, synthetic_voc_root, tmp_path
):
    out = export(
        compose_cfg(
            "export",
            tmp_path,
            f"ckpt_path={demo_run['run'] / 'checkpoints/best.ckpt'}",
            f"out_dir={tmp_path / 'export'}",
        )
    )
    sam_file, backbone_file = frozen_files
    images = sorted((synthetic_voc_root / "JPEGImages").glob("*.jpg"))[:3]
    common = [
        f"export_dir={out}",
        f"sam_checkpoint={sam_file}",
        f"backbone_checkpoint={backbone_file}",
        f"reference.image={images[0]}",
        "reference.box=[10,10,60,60]",
    ]
    folder = tmp_path / "targets"
    folder.mkdir()
    for image in images[1:]:
        (folder / image.name).write_bytes(image.read_bytes())
    report = predict(
        compose_cfg(
            "predict", tmp_path, *common, f"targets={folder}", f"out_dir={tmp_path / 'pred'}"
        )
    )
    written = report.written
    assert len(written) == 2 and all(p.is_file() for p in written) and not report.failed
    assert set(np.unique(np.asarray(Image.open(written[0])))) <= {0, 255}
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")
    report = predict(
        compose_cfg(
            "predict", tmp_path, *common, f"targets={not_image}", f"out_dir={tmp_path / 'p2'}"
        )
    )
    assert not report.written and [path for path, _ in report.failed] == [not_image]
    assert "not a readable image" in report.failed[0][1]
    with pytest.raises(FileNotFoundError, match="no target images"):
        predict(
            compose_cfg(
                "predict",
                tmp_path,
                *common,
                f"targets={tmp_path / 'none'}/*.jpg",
                f"out_dir={tmp_path / 'p3'}",
            )
        )


def test_unwritable_output_folder_is_refused(demo_run, compose_cfg, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the output folder should go")
    with pytest.raises(PermissionError, match="cannot write to"):
        export(
            compose_cfg(
                "export",
                tmp_path,
                f"ckpt_path={demo_run['run'] / 'checkpoints/best.ckpt'}",
                f"out_dir={blocker / 'export'}",
            )
        )
