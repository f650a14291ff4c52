"""The demo's steps: data, stand-ins, training, the comparison with training-free prompting,
export and predictions. Each step is a function the command (:mod:`vrpsam.demo.run`) calls in turn.

Only the synthetic tree and the stand-in weights are reused across runs, each under a key of
everything that shapes it (:mod:`vrpsam.demo.keys`); the run's own products (training run,
episode lists, evaluations, export, predictions) are written afresh every time.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json
from vrpsam.demo.keys import DATA_CODE, STANDIN_CODE, code_fingerprint, key
from vrpsam.demo.settings import MATCHER_FILTERS_OFF, SEED, model_sizes

RUN_PRODUCTS = ("run", "episodes", "evaluations", "export", "predictions")
"""Sub-folders a demo run writes afresh (removed at its start)."""

NAMES = {
    "vrpsam": "VRP-SAM (trained)",
    "untrained": "VRP-SAM (untrained encoder)",
    "gpsam": "GP-SAM",
    "persam": "PerSAM",
    "persam_f": "PerSAM-F",
    "matcher": "Matcher",
    "matcher_small": "Matcher (on the stand-in backbone, small grid, filters off)",
}

Log = Callable[[str], None]


def clear_run_products(out: Path) -> None:
    """Remove what an earlier run wrote that this one writes again."""
    for name in RUN_PRODUCTS:
        shutil.rmtree(out / name, ignore_errors=True)


def ensure_data(out: Path, settings: dict, log: Log, *, seed: int = SEED) -> tuple[Path, str]:
    """The synthetic VOC-format tree (written unless this exact one exists); (root, its key)."""
    from vrpsam.data.synthetic import MARKER, write_voc_tree

    data_key = key(code=code_fingerprint(DATA_CODE), images=settings["images"], seed=seed, size=256)
    root = out / f"synthetic_voc_{settings['images']}_{data_key}"
    if (root / MARKER).is_file():  # the marker is written last
        log(f"reusing synthetic VOC-format data {root.name}")
    else:
        write_voc_tree(root, images=settings["images"], seed=seed, size=256, overwrite=True)
        log(f"wrote synthetic VOC-format data to {root}")
    return root, data_key


def ensure_standins(
    out: Path, data_root: Path, data_key: str, settings: dict, log: Log, *, seed: int = SEED
) -> tuple[Path, Path]:
    """Fit (or reuse) the stand-in SAM and backbone; returns their weight files."""
    from vrpsam.data.sources import build_source
    from vrpsam.demo.standins import fit_standin_backbone, fit_standin_sam, load_training_images

    image_size, sam_sizes = model_sizes()
    parts = {
        "code": code_fingerprint(STANDIN_CODE),
        "data": data_key,
        "image_size": image_size,
        "sam": sam_sizes,
        "seed": seed,
        "threads": torch.get_num_threads(),  # rounding, hence the fitted weights, depend on it
        **{k: settings[k] for k in ("sam_steps", "backbone_steps", "backbone_batch")},
    }
    folder = out / "standins" / f"standins_{key(**parts)}"
    sam_file, backbone_file, record = (folder / n for n in ("sam_tiny.pth", "resnet18.pth",
                                                            "standins.json"))  # fmt: skip
    if record.is_file():  # written last, after both weight files
        log(f"reusing stand-in weights {folder.name}")
        return sam_file, backbone_file
    source = build_source("pascal", data_root, 0, "train", lists="generate", min_pixels=400)
    data = load_training_images(source, image_size)
    log(f"fitting a stand-in tiny SAM on {len(data.images)} base-class images")
    sam, sam_losses = fit_standin_sam(data, steps=settings["sam_steps"], seed=seed, **sam_sizes)
    atomic_write(sam_file, lambda tmp: torch.save(sam.state_dict(), tmp))
    log("fitting a stand-in ResNet-18 on the base classes")
    body, body_losses = fit_standin_backbone(
        data, steps=settings["backbone_steps"], batch_size=settings["backbone_batch"], seed=seed
    )
    atomic_write(backbone_file, lambda tmp: torch.save(body.state_dict(), tmp))
    atomic_write_json(record, {**parts, "sam_final_loss": sam_losses[-1],
                               "backbone_final_loss": body_losses[-1]}, indent=2)  # fmt: skip
    return sam_file, backbone_file


def _overrides(
    out: Path, data_root: Path, sam_file: Path, backbone_file: Path, seed: int
) -> list[str]:
    return [
        "experiment=demo",
        f"seed={seed}",
        f"data.root={data_root}",
        f"model.sam_checkpoint={sam_file}",
        f"model.backbone_checkpoint={backbone_file}",
        f"paths.output_dir={out}",
        "trainer.enable_progress_bar=false",
    ]


def compose(name: str, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from vrpsam.conf import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name=name, overrides=overrides)


def train_config(
    out: Path,
    data_root: Path,
    sam_file: Path,
    backbone_file: Path,
    settings: dict,
    extra_overrides: tuple[str, ...] = (),
    *,
    seed: int = SEED,
):
    """The demo's training config; ``extra_overrides`` come last (precision, seed, ...)."""
    return compose("train", [
        *_overrides(out, data_root, sam_file, backbone_file, seed),
        f"trainer.max_epochs={settings['epochs']}",
        f"data.train_episodes_per_epoch={settings['episodes_per_epoch']}",
        f"data.val_episodes={settings['val_episodes']}",
        f"data.test_episodes={settings['test_episodes']}",
        f"paths.run_dir={out / 'run'}",
        "test_before_training=true",
        "test_after_training=false",  # the trained model is tested by evaluate(), as the others
        *extra_overrides,
    ])  # fmt: skip


def evaluate_method(
    out: Path,
    data_root: Path,
    sam_file: Path,
    backbone_file: Path,
    method: str,
    episodes: int,
    checkpoint: Path | None = None,
    extra_overrides: tuple[str, ...] = (),
    *,
    seed: int = SEED,
) -> dict:
    """``vrpsam-eval`` of one method on the first ``episodes`` of the demo's fixed test list."""
    from vrpsam.engine.evaluation import evaluate

    name = method if checkpoint is None else f"vrpsam_{episodes}"
    overrides = [
        *_overrides(out, data_root, sam_file, backbone_file, seed),
        f"method={method}",
        f"eval.episodes={episodes}",
        f"eval.seed={seed}",  # the training run's test episodes (drawn from its seed)
        f"paths.run_dir={evaluation_dir(out, name)}",
        *extra_overrides,
    ]
    if checkpoint is not None:
        overrides.append(f"ckpt_path={checkpoint}")
    start = time.perf_counter()
    result = evaluate(compose("eval", overrides))
    result["wall_seconds"] = time.perf_counter() - start
    return result


def evaluation_dir(out: Path, name: str) -> Path:
    """Where the demo's evaluation ``name`` (a method, or ``vrpsam_<episodes>``) writes."""
    return out / "evaluations" / name


def comparison_rows(
    out: Path, data_root: Path, sam_file: Path, backbone_file: Path, settings: dict,
    checkpoint: Path, untrained: dict, log: Log, *, seed: int = SEED,
) -> list[dict]:  # fmt: skip
    """The trained VRP-SAM, the untrained encoder and every training-free baseline on the same
    stand-in SAM, backbone and fixed novel-class episodes (a baseline on a prefix of the list
    comes with VRP-SAM's figure on that same prefix)."""
    rows = [{"method": "untrained", "episodes": untrained["episodes"], "miou": untrained["miou"],
             "fbiou": untrained["fbiou"], "other_class_share": untrained.get("other_class_share"),
             "seconds_per_episode": None}]  # fmt: skip
    counts = sorted({settings["test_episodes"], *settings["baseline_episodes"].values()},
                    reverse=True)  # fmt: skip
    for n in counts:
        result = evaluate_method(
            out, data_root, sam_file, backbone_file, "vrpsam", n, checkpoint, seed=seed
        )
        rows.append(_row("vrpsam", result))
        log(f"VRP-SAM on {n} episodes: mIoU {result['miou']:.1f}")
    for method, n in settings["baseline_episodes"].items():
        extra = [*settings.get("baseline_overrides", {}).get(method, ())]
        if method.startswith("matcher"):
            extra += MATCHER_FILTERS_OFF
        result = evaluate_method(
            out, data_root, sam_file, backbone_file, method, n, None, tuple(extra), seed=seed
        )
        rows.append(_row(method, result))
        log(f"{NAMES[method]} on {n} episodes: mIoU {result['miou']:.1f} "
            f"({result['seconds_per_episode']:.2f} s per episode)")  # fmt: skip
    return rows


def _row(method: str, result: dict) -> dict:
    keys = ("episodes", "miou", "fbiou", "other_class_share", "seconds_per_episode")
    return {"method": method, **{k: result.get(k) for k in keys}}


def export_and_predict(out: Path, data_root: Path, run: Path, log: Log) -> tuple[Path, Path]:
    """Export the best checkpoint and segment novel-class targets from one reference."""
    from PIL import Image

    from vrpsam.artifacts.exports import export_checkpoint
    from vrpsam.data.sources import build_source
    from vrpsam.predictor import VRPSAMPredictor
    from vrpsam.predictor.folder import overlay

    export_dir = export_checkpoint(run / "checkpoints" / "best.ckpt", out / "export")
    source = build_source("pascal", data_root, 0, "test", lists="generate", min_pixels=400)
    class_id = source.classes[0]
    images = list(source.image_ids_by_class()[class_id])[:5]
    predictor = VRPSAMPredictor.from_export(export_dir)  # frozen files from the record
    reference = source.load_image(images[0])
    predictor.set_reference(reference, mask=source.load_mask(images[0], class_id) == 1)
    folder = out / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    name = source.class_name(class_id)
    Image.fromarray(reference).save(folder / f"reference_{name}_{images[0]}.png")
    for image_id in images[1:]:
        target = source.load_image(image_id)
        mask, _, _ = predictor.predict(target)
        Image.fromarray(overlay(target, mask)).save(folder / f"{image_id}_overlay.png")
    log(f"exported to {export_dir}; segmented {len(images) - 1} '{name}' targets")
    return export_dir, folder


def figures(metrics: dict, rows: list[dict]) -> dict:
    """The figures the demo prints, records and checks: before/after and the comparison."""
    trained = max((r for r in rows if r["method"] == "vrpsam"), key=lambda r: r["episodes"])
    before = metrics["test_before_training"]
    return {
        "before": before["miou"],
        "after": trained["miou"],
        "other_class_share_before": before.get("other_class_share"),
        "other_class_share_after": trained["other_class_share"],
        "episodes": trained["episodes"],
        "methods": {f"{r['method']}@{r['episodes']}": r["miou"] for r in rows},
    }


def save_figures(out: Path, values: dict) -> Path:
    return atomic_write_json(out / "figures.json", values, indent=2)
