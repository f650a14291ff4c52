"""Many classes at once (``task=semantic``): semantic-segmentation mIoU from a reference bank.

    vrpsam-eval task=semantic ckpt_path=RUN/checkpoints/best.ckpt eval.episodes=null
    vrpsam-eval task=semantic method=rim data=coco20i eval.semantic.references_per_class=5
    vrpsam-eval task=semantic eval.semantic.form=nway eval.semantic.ways=2 data.fold=0

Forms (``eval.semantic.form``, :mod:`vrpsam.data.semantic`):

* ``all``: the bank holds ``references_per_class`` annotated references per class from the
  training list (seeded, the same for every method); every class is segmented at once in each
  test image (VOC val / COCO val2014; ``eval.episodes`` caps the images, null: all) and scored
  by standard mIoU over every class plus background (PASCAL 21, COCO 81).
* ``nway``: N of a fold's novel classes per episode (those in the target first), K references
  each from the fold's test pool; ``eval.episodes`` episodes; mIoU over the fold's novel
  classes plus background, from one confusion matrix over all episodes.

A class is claimed in an image when its presence score reaches ``eval.semantic
.presence_threshold``; null chooses it on validation images (best F1 over (image, class) pairs)
— held-out training images of the same classes (``all``), N-way episodes of the fold's held-out
base-class images (``nway``) — never on test images. Scores at each image's original size.

Writes into the run folder ``eval.json`` (``miou``, ``per_class_iou`` by class name,
``pixel_accuracy``, ``presence``, ``seconds_per_image`` and the method/protocol keys of the other
evaluations; percent), ``eval.md``, ``confusion.png``, ``overlays.png`` and ``seed<k>/``
``results.json`` (with the confusion matrix) and ``presence_val.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig

from vrpsam.artifacts.atomic import atomic_write, atomic_write_json, atomic_write_text
from vrpsam.baselines.multiclass import choose_threshold
from vrpsam.data.semantic import (
    FORMS,
    SEMANTIC_DATASETS,
    all_class_episodes,
    draw_references,
    make_nway_episodes,
    semantic_splits,
)
from vrpsam.data.sources import build_source
from vrpsam.engine.methods import TrainedVRPSAM, run_record
from vrpsam.engine.progress import pass_progress
from vrpsam.engine.protocol import Protocol
from vrpsam.engine.seeds import single_seed
from vrpsam.engine.semantic_module import SemanticDataModule, SemanticModule, bank_runner
from vrpsam.engine.video import video_runner
from vrpsam.reports.semantic import plot_confusion, plot_label_overlays, semantic_markdown


class SemanticResults(L.Callback):
    """Writes a pass's results (and the test pass's overlays) on rank 0, where the caller reads
    them, also when the test ran in spawned processes (``strategy=ddp_spawn``)."""

    def __init__(self, *, folder: Path, overlays: Path, class_names: dict[int, str]) -> None:
        self.folder, self.overlays, self.class_names = folder, overlays, class_names

    def on_test_end(self, trainer, pl_module) -> None:
        if trainer.global_rank != 0:
            return
        name = "presence_val.json" if pl_module.phase == "val" else "results.json"
        atomic_write_json(self.folder / name, pl_module.results, indent=2)
        if pl_module.phase == "test" and pl_module.overlays:
            shown, names = pl_module.overlays, self.class_names
            atomic_write(self.overlays, lambda tmp: plot_label_overlays(shown, names, tmp))


def _seed(value: Any) -> int:
    return single_seed(
        value,
        "task=semantic takes one eval.seed: run once per seed (the seed fixes the reference bank)",
    )


def _passes(cfg: DictConfig, protocol: Protocol, seed: int) -> dict[str, Any]:
    """The classes scored and the episodes, targets' and references' splits of both passes."""
    data, settings = cfg.data, cfg.eval.semantic
    form, k = settings.form, int(settings.references_per_class)
    if form not in FORMS:
        raise ValueError(f"eval.semantic.form must be one of {', '.join(FORMS)}, got {form!r}")
    if data.dataset not in SEMANTIC_DATASETS:
        raise ValueError(
            f"task=semantic reads {' or '.join(SEMANTIC_DATASETS)} (data=pascal5i, coco20i or "
            f"synthetic), got data.dataset={data.dataset!r}"
        )
    count = None if cfg.eval.episodes is None else int(cfg.eval.episodes)
    val_count = int(settings.val_images)
    options = dict(data.get("source_options") or {})
    if form == "all":
        splits = semantic_splits(data.dataset, data.root, options=options)
        bank = draw_references(splits.train, splits.classes, k, seed)
        return {
            "classes": splits.classes,
            "test": (all_class_episodes(splits.test, bank, count), splits.test, splits.train),
            "val": (all_class_episodes(splits.val, bank, val_count), splits.val, splits.train),
            "shared_bank": True,
            "reference_split": "train",
        }
    if count is None:
        raise ValueError("the nway form needs a number of episodes: eval.episodes=1000")
    options["exclude_novel"] = bool(protocol.train_exclude_novel)
    test, val = (build_source(data.dataset, data.root, int(data.fold), s, **options)
                 for s in ("test", "val"))  # fmt: skip
    ways = int(settings.ways)
    return {
        "classes": test.classes,
        "test": (make_nway_episodes(test, test.classes, ways, k, seed, count), test, test),
        "val": (make_nway_episodes(val, val.classes, ways, k, seed, val_count), val, val),
        "shared_bank": False,
        "reference_split": "the fold's test pool",
    }


def evaluate_semantic(cfg: DictConfig, method: Any, protocol: Protocol, out: Path) -> dict:
    """Evaluate ``method`` on many classes at once and write the reports.

    Args:
        cfg: a settled evaluation config (:func:`vrpsam.engine.settle.settle`) with
            ``task=semantic`` and an ``eval.semantic`` block (``conf/eval.yaml``).
        method: from :func:`vrpsam.engine.methods.build_method`.
        protocol: the protocol in effect (reported; the nway form reads its BAM filter).
        out: the run folder.

    Returns:
        the ``eval.json`` content.
    """
    if cfg.get("cache") is not None and cfg.cache.get("dir"):
        raise ValueError("the feature cache (cache.dir) holds episodes: run task=semantic without")
    settings, seed = cfg.eval.semantic, _seed(cfg.eval.seed)
    passes = _passes(cfg, protocol, seed)
    test_episodes, test_source, _ = passes["test"]
    classes = tuple(passes["classes"])
    names = {0: "background", **{c: test_source.class_name(c) for c in classes}}
    trained = isinstance(method, TrainedVRPSAM)
    module = SemanticModule(
        runner=bank_runner(video_runner(cfg, method)),
        class_ids=classes,
        image_size=int(cfg.data.image_size),
        interpolation=cfg.data.interpolation,
        annotation=cfg.eval.annotation,
        seed=seed,
        num_overlays=min(int(cfg.eval.overlays), 4),
    )
    folder, overlays = out / f"seed{seed}", out / "overlays.png"
    unit = "images" if settings.form == "all" else "episodes"
    progress, bar = pass_progress(cfg.trainer, cfg.method.name, unit)
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,
        callbacks=[SemanticResults(folder=folder, overlays=overlays, class_names=names), progress],
        enable_checkpointing=False,
        enable_progress_bar=bar,
        # PerSAM-F fits per reference: autograd must stay available inside the test loop.
        inference_mode=trained,
    )

    def run(phase: str) -> float:
        episodes, source, references = passes[phase]
        module.phase = phase
        what = "presence threshold (validation)" if phase == "val" else "test"
        progress.label = f"{cfg.method.name}, {what}"
        datamodule = SemanticDataModule(
            episodes=episodes,
            source=source,
            references=references,
            shared_bank=passes["shared_bank"],
            num_workers=int(cfg.data.get("num_workers", 0)),
        )
        start = time.perf_counter()
        trainer.test(module, datamodule=datamodule, verbose=False)
        return time.perf_counter() - start

    given = settings.get("presence_threshold")
    if given is None:
        run("val")
        pairs = json.loads((folder / "presence_val.json").read_text())
        chosen = choose_threshold(torch.tensor(pairs["scores"]), torch.tensor(pairs["present"]))
        presence = {
            "threshold": chosen["threshold"],
            "chosen_on": "val",
            "how": "best F1 over (image, class) pairs of the validation images (ties: accuracy)",
            "val_images": len(passes["val"][0]),
            "val_pairs": chosen["pairs"],
            "val_f1": 100 * chosen["f1"],
            "val_accuracy": 100 * chosen["accuracy"],
            "val_auc": None if chosen["auc"] is None else 100 * chosen["auc"],
        }
    else:
        presence = {"threshold": float(given), "chosen_on": "config"}
    module.threshold = presence["threshold"]
    seconds = run("test")
    scores = json.loads((folder / "results.json").read_text())
    counts = scores["presence"]
    percent = {k: None if counts[k] is None else 100 * counts[k]
               for k in ("accuracy", "false_positive_rate", "precision", "recall")}  # fmt: skip
    presence.update(percent, pairs=counts["pairs"], false_positives=counts["false_positives"])
    images = len(test_episodes)
    nway = (
        {"fold": int(cfg.data.fold), "ways": int(settings.ways)} if settings.form == "nway" else {}
    )
    result = {
        "method": cfg.method.name,
        "dataset": cfg.data.dataset,
        "task": "semantic",
        "form": settings.form,
        **nway,
        "classes": len(classes) + 1,
        "class_names": [names[0], *(names[c] for c in classes)],
        "references_per_class": int(settings.references_per_class),
        "references_from": passes["reference_split"],
        "annotation": cfg.eval.annotation,
        "image_size": int(cfg.data.image_size),
        "seed": seed,
        "images": images,
        "miou": scores["miou"],
        "per_class_iou": {names[c]: v for c, v in zip((0, *classes), scores["iou"], strict=True)},
        "pixel_accuracy": scores["pixel_accuracy"],
        "presence": presence,
        "scoring": "confusion matrix over every class plus background at each image's original "
        "size, 255 ignored; mIoU over the classes present or predicted",
        "seconds_per_image": seconds / max(images, 1),
        **run_record(cfg, method, protocol),
    }
    atomic_write_json(out / "eval.json", result, indent=2)
    atomic_write_text(out / "eval.md", semantic_markdown(result))
    matrix = scores["matrix"]
    atomic_write(out / "confusion.png",
                 lambda tmp: plot_confusion(matrix, result["class_names"], tmp))  # fmt: skip
    return result
