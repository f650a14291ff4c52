"""The demo's report for a person: ``report.md`` with the comparison table, the learning curve and
the overlays (copied next to it, so the folder can be moved or zipped as it is)."""

from __future__ import annotations

import shutil
from pathlib import Path

from vrpsam.artifacts.atomic import atomic_write_text
from vrpsam.demo.pipeline import NAMES, evaluation_dir


def _cell(value, pattern: str = "{:.1f}") -> str:
    return "—" if value is None else pattern.format(value)


def comparison_table(rows: list[dict]) -> str:
    """Markdown: method, episodes, mIoU, FB-IoU, foreground on other classes, s per episode."""
    lines = [
        "| method | episodes | mIoU | FB-IoU | predicted foreground on other classes (%) "
        "| seconds per episode |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {NAMES[row['method']]} | {row['episodes']} | {_cell(row['miou'])} | "
            f"{_cell(row['fbiou'])} | {_cell(row['other_class_share'])} | "
            f"{_cell(row['seconds_per_episode'], '{:.2f}')} |"
        )
    return "\n".join(lines) + "\n"


def write_report(
    out: Path, *, figures: dict, rows: list[dict], run: Path, predictions: Path, seconds: float,
    setting: str,
) -> Path:  # fmt: skip
    """Write ``out/report.md`` (and copy the figures it shows next to it)."""
    evaluation = evaluation_dir(out, f"vrpsam_{figures['episodes']}")
    for source, name in ((run / "training_curve.png", "training_curve.png"),
                         (evaluation / "overlays.png", "overlays.png")):  # fmt: skip
        if source.is_file():
            shutil.copy(source, out / name)
    examples = sorted(p.name for p in predictions.glob("*.png"))
    before, after = figures["before"], figures["after"]
    text = f"""# vrpsam demo ({setting} setting)

**Toy models on synthetic data.** A tiny SAM and a ResNet-18 fitted here as stand-ins for the
released weights, on fold 0's base classes of a synthetic VOC-format tree: these numbers show
that the machinery learns and which way the comparison goes. They are not paper results.

Run time: {seconds / 60:.1f} minutes (data, stand-ins, training, evaluations, export).

## Novel classes, before and after training

On {figures["episodes"]} fixed fold-0 test episodes (novel classes, mask references):
mIoU **{before:.1f} → {after:.1f}** ({after - before:+.1f}).
Share of the predicted foreground that lies on objects of *other* classes:
{_cell(figures["other_class_share_before"])}% before, {_cell(figures["other_class_share_after"])}%
after training (a model that segments every object whatever the reference shows scores high).

## VRP-SAM against training-free prompting of the same SAM

Every method runs on the same stand-in SAM (and backbone, for GP-SAM and Matcher), on the first
episodes of the same fixed list, scored by the same metric. PerSAM-F and Matcher take seconds per
episode on a CPU, so they run on fewer episodes; VRP-SAM's figure on the same number of episodes
is in the table too. Matcher runs with its mask filters off: its thresholds on SAM's predicted
IoU and stability reject every mask of the stand-in SAM, whose IoU head is not calibrated like
the released SAM's.

{comparison_table(rows)}
## Learning curve

![training loss and validation mIoU](training_curve.png)

## Episodes

Reference with its annotation (green), target with the ground truth outlined (blue), VRP-SAM's
prediction tinted and outlined (red), with the class name and the episode's IoU.

![overlays](overlays.png)

## Predictions on your own images

`predictions/` holds a reference and the predictor's masks on further images of its class
({len(examples)} files), made with the exported model (`export/`) through
`VRPSAMPredictor.from_export`.
"""
    return atomic_write_text(out / "report.md", text)
