"""The demo run (``make demo``, ``vrpsam-demo``): the whole framework end to end on one CPU.

1. write a synthetic VOC-format tree (20 classes, each a look of its own);
2. fit stand-ins for the released weights on fold 0's *base-class* training images — a tiny SAM
   and a ResNet-18 (:mod:`vrpsam.demo.standins`) — saved as SAM-format and timm-format files;
3. meta-train VRP-SAM on fold 0 with ``vrpsam-train``'s own
   :func:`~vrpsam.engine.training.train`, testing the untrained encoder on the fixed novel-class
   episodes first;
4. evaluate the trained model and the training-free baselines (GP-SAM, PerSAM, PerSAM-F, Matcher)
   on the same stand-ins and episodes with ``vrpsam-eval``'s
   :func:`~vrpsam.engine.evaluation.evaluate`;
5. export the model, segment a few novel-class images from one reference, write ``report.md``.

Everything here is a toy: stand-in models fitted on synthetic data. Its numbers show that the
machinery learns, and are not comparable to the paper's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vrpsam.demo import pipeline
from vrpsam.demo.keys import environment
from vrpsam.demo.report import comparison_table, write_report
from vrpsam.demo.settings import SEED, SETTINGS, THREADS


def run_demo(argv: list[str] | None = None) -> dict:
    """Run the demo; returns its figures (also written to ``figures.json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="full",
                        help="'quick' is a seconds-long smoke run with the same steps")  # fmt: skip
    parser.add_argument("--seed", type=int, default=SEED,
                        help="seeds everything the demo draws: the synthetic tree, the "
                        "stand-ins, training and the test episodes (recorded: seed 0)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="CPU threads; the figures depend on it (recorded: "
                        f"{THREADS}, whatever the machine's core count)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:  # a caller in the same process (the tests) keeps its own thread count
        torch.set_num_threads(previous)


def _run(args: argparse.Namespace) -> dict:
    settings = SETTINGS[args.setting]
    out = args.out.resolve()
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f}s] {message}", flush=True)

    seed = args.seed
    torch.manual_seed(seed)
    np.random.seed(seed)
    pipeline.clear_run_products(out)
    data_root, data_key = pipeline.ensure_data(out, settings, log, seed=seed)
    sam_file, backbone_file = pipeline.ensure_standins(
        out, data_root, data_key, settings, log, seed=seed
    )

    from vrpsam.engine.training import train

    log("meta-training VRP-SAM on fold 0 (base classes); the untrained encoder is tested first")
    metrics, objects = train(
        pipeline.train_config(out, data_root, sam_file, backbone_file, settings, seed=seed)
    )
    run = objects["run_dir"]
    checkpoint = run / "checkpoints" / "best.ckpt"
    log("testing the trained model and the training-free baselines on the same episodes")
    rows = pipeline.comparison_rows(out, data_root, sam_file, backbone_file, settings,
                                    checkpoint, metrics["test_before_training"], log,
                                    seed=seed)  # fmt: skip
    export_dir, predictions = pipeline.export_and_predict(out, data_root, run, log)
    values = pipeline.figures(metrics, rows)
    seconds = time.perf_counter() - start
    values["seconds"] = round(seconds)
    values["seed"] = seed
    values["environment"] = environment()
    pipeline.save_figures(out, values)
    report = write_report(out, figures=values, rows=rows, run=run, predictions=predictions,
                          seconds=seconds, setting=args.setting)  # fmt: skip
    log("done")
    print()
    print("Stand-in models on synthetic data: these numbers show learning, not paper results.")
    print(f"novel-class mIoU on {values['episodes']} fixed fold-0 test episodes: "
          f"before training {values['before']:.1f}, after {values['after']:.1f} "
          f"({values['after'] - values['before']:+.1f})")  # fmt: skip
    share = values["other_class_share_before"], values["other_class_share_after"]
    if None not in share:
        print(f"predicted foreground on objects of other classes: {share[0]:.1f}% before, "
              f"{share[1]:.1f}% after")  # fmt: skip
    print()
    print(comparison_table(rows))
    print(f"report:      {report}")
    print(f"run folder:  {run}")
    print(f"export:      {export_dir}")
    print(f"predictions: {predictions}")
    print(f"took {seconds / 60:.1f} minutes")
    return values
