"""Every class at once on the demo's data: VRP-SAM (trained without and with negative episodes),
RIM, PerSAM, Matcher and GP-SAM through ``vrpsam-eval task=semantic``, in one table with a
confusion-matrix figure per run.

    python scripts/bench_negatives.py --out outputs/negatives    # data, stand-ins, two checkpoints
    python scripts/bench_semantic.py --negatives outputs/negatives --out outputs/semantic

Two forms: ``all`` (the 20 synthetic VOC classes + background in each of the first ``--images``
test images; the presence threshold chosen on ``--val-images`` held-out training images) and
``nway`` (``--ways``-way 1-shot episodes of fold 0's novel classes). The baselines prompt SAM
class by class, so 20 classes cost them about 20 episodes per image: Matcher, the slowest (about
40 s per image here), takes ``--slow-images`` test and threshold images in the all form.

Writes OUT/<form>/<run>/ (each run's eval.json, eval.md, confusion.png), OUT/semantic.md and
OUT/confusion_<form>_<run>.png. Figures come from stand-in weights on synthetic data: they
compare methods on the same references and images, not what any method does on real data.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from compare_semantic import semantic_table
from eval_runs import run_eval

from vrpsam.demo.settings import MATCHER_FILTERS_OFF, RIM_FILTERS_OFF

RUNS = {
    "vrpsam": ("vrpsam", "negative_share_0.0"),
    "vrpsam_negatives": ("vrpsam", None),  # the bench's non-zero share
    "rim_small": ("rim_small", None),
    "persam": ("persam", None),
    "matcher_small": ("matcher_small", None),
    "gpsam": ("gpsam", None),
}
"""Run name → (method, checkpoint folder in the negatives bench's output, or None)."""

EXTRA = {"matcher_small": MATCHER_FILTERS_OFF, "rim_small": RIM_FILTERS_OFF}
"""The stand-in SAM's IoU head is not calibrated like SAM's: mask-quality filters off."""


def bench_files(folder: Path) -> dict[str, Path]:
    """The data root, stand-in files and checkpoints ``bench_negatives.py`` wrote into
    ``folder``."""
    roots = sorted(folder.glob("synthetic_voc_*"))
    sams = sorted(folder.glob("standins/*/sam_tiny.pth"))
    plain = folder / "negative_share_0.0" / "run" / "checkpoints" / "best.ckpt"
    others = sorted(p for p in folder.glob("negative_share_*/run/checkpoints/best.ckpt")
                    if p != plain)  # fmt: skip
    if len(roots) != 1 or len(sams) != 1 or not plain.is_file() or len(others) != 1:
        raise SystemExit(
            f"{folder} is not the output of one `python scripts/bench_negatives.py --out "
            f"{folder}` run (one synthetic tree, one stand-in pair, the 0.0 and one other share)"
        )
    return {"root": roots[0], "sam": sams[0], "backbone": sams[0].with_name("resnet18.pth"),
            "vrpsam": plain, "vrpsam_negatives": others[0]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--negatives", type=Path, required=True, help="bench_negatives.py --out")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=40, help="test images (all form)")
    parser.add_argument("--val-images", type=int, default=30, help="threshold images (all form)")
    parser.add_argument("--episodes", type=int, default=40, help="test episodes (nway form)")
    parser.add_argument("--val-episodes", type=int, default=20, help="threshold episodes (nway)")
    parser.add_argument("--slow-images", type=int, default=10,
                        help="test and threshold images of Matcher (all form)")  # fmt: skip
    parser.add_argument("--ways", type=int, default=2)
    parser.add_argument("--all-form", nargs="+", default=list(RUNS), choices=tuple(RUNS))
    parser.add_argument("--nway-form", nargs="+", default=list(RUNS), choices=tuple(RUNS))
    args = parser.parse_args()
    files = bench_files(args.negatives.resolve())
    out = args.out.resolve()
    common = ["task=semantic", "experiment=demo", f"data.root={files['root']}",
              f"model.sam_checkpoint={files['sam']}",
              f"model.backbone_checkpoint={files['backbone']}",
              "trainer.enable_progress_bar=false", "data.num_workers=0"]  # fmt: skip
    forms = {
        "all": (args.all_form, ["eval.semantic.form=all", f"eval.episodes={args.images}",
                                f"eval.semantic.val_images={args.val_images}"]),
        "nway": (args.nway_form, ["eval.semantic.form=nway", f"eval.semantic.ways={args.ways}",
                                  f"eval.episodes={args.episodes}",
                                  f"eval.semantic.val_images={args.val_episodes}"]),
    }  # fmt: skip
    results = []
    for form, (names, form_overrides) in forms.items():
        for name in names:
            method = RUNS[name][0]
            overrides = [*common, *form_overrides, f"method={method}", *EXTRA.get(name, ())]
            if form == "all" and name == "matcher_small":  # later overrides win
                overrides += [f"eval.episodes={args.slow_images}",
                              f"eval.semantic.val_images={args.slow_images}"]  # fmt: skip
            if name in ("vrpsam", "vrpsam_negatives"):
                overrides.append(f"ckpt_path={files[name]}")
            path = run_eval(out / form / name, overrides)
            results.append({**json.loads(path.read_text()), "run": name})
            shutil.copy(path.parent / "confusion.png", out / f"confusion_{form}_{name}.png")
    share = files["vrpsam_negatives"].parents[2].name.removeprefix("negative_share_")
    note = (f"\nStand-in weights on the demo's synthetic VOC tree. `vrpsam_negatives`: the demo's "
            f"VRP-SAM trained with data.negative_share={share}; `vrpsam`: without. All form: the "
            f"first {args.images} test images, threshold on {args.val_images} held-out training "
            f"images (Matcher: {args.slow_images} each). N-way form: {args.episodes} episodes "
            f"of fold 0, threshold on {args.val_episodes} episodes of its validation "
            "pool.")  # fmt: skip
    nway = [r for r in results if r["form"] == "nway"]
    if nway and all(r["presence"].get("false_positive_rate") is None for r in nway):
        note += (" Every N-way episode's classes were all in its target, so that form has no "
                 "false-positive figure.")  # fmt: skip
    note += "\n"
    table = semantic_table(results) + note
    (out / "semantic.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
