"""``make demo`` / ``vrpsam-demo``: the whole framework end to end on one CPU machine.

1. write a synthetic VOC-format tree (20 appearance-defined classes);
2. fit stand-ins for the released weights on fold 0's *base-class* training images — a tiny SAM
   and a ResNet-18 (see :mod:`vrpsam.demo.standins`) — saved as SAM-format and timm-format weight
   files, reused by later runs;
3. meta-train VRP-SAM on fold 0 through ``vrpsam-train``'s own :func:`~vrpsam.train.train`, testing
   the novel classes before and after training on the same fixed episodes;
4. export the result and segment a few novel-class targets from one reference with the predictor;
5. print where the report, curve, overlays and predictions are.

Everything here is a toy: stand-in models fitted on synthetic data. Its numbers show that the
machinery learns, and are not comparable to the paper's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

SETTINGS = {
    # Sized for a first run of about 15 minutes on 2 CPU cores (stand-ins ~8, meta-training ~6).
    "full": {"images": 600, "sam_steps": 400, "backbone_steps": 250, "backbone_batch": 8,
             "epochs": 6, "episodes_per_epoch": 800, "val_episodes": 150, "test_episodes": 500},
    "quick": {"images": 120, "sam_steps": 6, "backbone_steps": 4, "backbone_batch": 4,
              "epochs": 1, "episodes_per_epoch": 16, "val_episodes": 8, "test_episodes": 16},
}  # fmt: skip
IMAGE_SIZE = 128
SAM_SIZES = {"patch_size": 8, "window_size": 8}


def log(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.0f}s] {message}", flush=True)


def ensure_data(root: Path, images: int) -> Path:
    from vrpsam.data.synthetic import MARKER, write_voc_tree

    if not (root / MARKER).is_file():
        write_voc_tree(root, images=images, seed=0, size=256, overwrite=root.exists())
    return root


def ensure_standins(
    folder: Path, data_root: Path, settings: dict, start: float
) -> tuple[Path, Path]:
    """Fit (or reuse) the stand-in SAM and backbone; returns their weight files."""
    from vrpsam.data.sources import build_source
    from vrpsam.demo.standins import fit_standin_backbone, fit_standin_sam, load_training_images

    key = {
        "data": str(data_root),
        "image_size": IMAGE_SIZE,
        "sam": SAM_SIZES,
        "sam_steps": settings["sam_steps"],
        "backbone_steps": settings["backbone_steps"],
        "backbone_batch": settings["backbone_batch"],
    }
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    sam_file, backbone_file = folder / f"sam_tiny_{tag}.pth", folder / f"resnet18_{tag}.pth"
    if sam_file.is_file() and backbone_file.is_file():
        log(f"reusing stand-in weights {sam_file.name}, {backbone_file.name}", start)
        return sam_file, backbone_file
    folder.mkdir(parents=True, exist_ok=True)
    source = build_source("pascal", data_root, 0, "train", lists="generate", min_pixels=400)
    data = load_training_images(source, IMAGE_SIZE)
    log(f"fitting a stand-in tiny SAM on {len(data.images)} base-class images", start)
    sam, _ = fit_standin_sam(data, steps=settings["sam_steps"], **SAM_SIZES)
    torch.save(sam.state_dict(), sam_file)
    log("fitting a stand-in ResNet-18 on the base classes", start)
    body, _ = fit_standin_backbone(
        data, steps=settings["backbone_steps"], batch_size=settings["backbone_batch"]
    )
    torch.save(body.state_dict(), backbone_file)
    (folder / f"standins_{tag}.json").write_text(json.dumps(key, indent=2))
    return sam_file, backbone_file


def train_config(
    out: Path,
    data_root: Path,
    sam_file: Path,
    backbone_file: Path,
    settings: dict,
    extra_overrides: tuple[str, ...] = (),
):
    """The demo's training config; ``extra_overrides`` come last (precision, seed, ...)."""
    from hydra import compose, initialize_config_dir

    from vrpsam.train import CONFIG_PATH

    overrides = [
        "experiment=demo",
        f"data.root={data_root}",
        f"model.sam_checkpoint={sam_file}",
        f"model.backbone_checkpoint={backbone_file}",
        f"trainer.max_epochs={settings['epochs']}",
        f"data.train_episodes_per_epoch={settings['episodes_per_epoch']}",
        f"data.val_episodes={settings['val_episodes']}",
        f"data.test_episodes={settings['test_episodes']}",
        f"paths.output_dir={out}",
        f"paths.run_dir={out / 'run'}",
        "trainer.enable_progress_bar=false",
        *extra_overrides,
    ]
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def predict_examples(
    export_dir: Path, data_root: Path, sam_file: Path, backbone_file: Path, out: Path
) -> Path:
    """Segment a few novel-class test images from one reference of the same class."""
    from PIL import Image

    from vrpsam.data.sources import build_source
    from vrpsam.predict import overlay
    from vrpsam.predictor import VRPSAMPredictor

    source = build_source("pascal", data_root, 0, "test", lists="generate", min_pixels=400)
    class_id = source.classes[0]
    images = list(source.image_ids_by_class()[class_id])[:5]
    predictor = VRPSAMPredictor.from_export(
        export_dir, sam_checkpoint=sam_file, backbone_checkpoint=backbone_file
    )
    reference = source.load_image(images[0])
    predictor.set_reference(reference, mask=source.load_mask(images[0], class_id) == 1)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(reference).save(out / f"reference_{images[0]}.png")
    for image_id in images[1:]:
        target = source.load_image(image_id)
        mask, _, _ = predictor.predict(target)
        Image.fromarray(overlay(target, mask)).save(out / f"{image_id}_overlay.png")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="vrpsam demo: stand-ins, meta-training, evaluation, export"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="full",
                        help="'quick' is a seconds-long smoke run with the same steps")  # fmt: skip
    args = parser.parse_args(argv)
    settings = SETTINGS[args.setting]
    out = args.out.resolve()
    start = time.perf_counter()
    torch.manual_seed(0)
    np.random.seed(0)

    data_root = ensure_data(out / f"synthetic_voc_{settings['images']}", settings["images"])
    log(f"synthetic VOC-format data at {data_root}", start)
    sam_file, backbone_file = ensure_standins(out / "standins", data_root, settings, start)

    from vrpsam.export import export_model
    from vrpsam.train import train

    log(
        "meta-training VRP-SAM on fold 0 (base classes); testing novel classes before and after",
        start,
    )
    metrics, objects = train(train_config(out, data_root, sam_file, backbone_file, settings))
    model = objects["module"].model
    export_dir = export_model(
        model,
        out / "export",
        sam_checkpoint=sam_file,
        backbone_checkpoint=backbone_file,
        training={"dataset": "pascal (synthetic)", "fold": 0, "image_size": IMAGE_SIZE},
        metrics={"test": metrics.get("test")},
    )
    predictions = predict_examples(
        export_dir, data_root, sam_file, backbone_file, out / "predictions"
    )

    before = (metrics.get("test_before_training") or {}).get("miou", float("nan"))
    after = (metrics.get("test") or {}).get("miou", float("nan"))
    run = objects["run_dir"]
    log("done", start)
    print()
    print("Stand-in models on synthetic data: these numbers show learning, not paper results.")
    print(f"novel-class mIoU on {settings['test_episodes']} fixed fold-0 test episodes: "
          f"before training {before:.1f}, after {after:.1f} ({after - before:+.1f})")  # fmt: skip
    print(f"report:      {run / 'metrics.json'}")
    print(f"curve:       {run / 'training_curve.png'}")
    print(f"overlays:    {run / 'overlays.png'}")
    print(f"checkpoints: {run / 'checkpoints'}")
    print(f"export:      {export_dir}")
    print(f"predictions: {predictions}")


if __name__ == "__main__":
    main()
