"""What a person reads: overlay rows that say which class and how well, and a quiet, labelled
training log (issue "No silent wrong answers", item 10)."""

import subprocess
import sys

import torch

from vrpsam.reports.figures import overlay_figure


def _episode(class_id, **extra):
    mask = torch.zeros(32, 32)
    mask[8:20, 8:20] = 1
    return {
        "target_image": torch.zeros(3, 32, 32),
        "reference_image": torch.zeros(3, 32, 32),
        "target_mask": mask,
        "reference_mask": mask,
        "prediction": mask > 0,
        "class_id": class_id,
        **extra,
    }


def _texts(fig):
    titles = [ax.get_title() for ax in fig.axes]
    legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    return titles, legend


def test_overlay_rows_name_the_class_and_the_iou_and_a_legend_explains_the_colours():
    episodes = [_episode(3, class_name="striped disc", iou=42.04), _episode(7)]
    fig = overlay_figure(episodes, class_names={7: "cat"})
    titles, legend = _texts(fig)
    assert "reference: striped disc" in titles and "prediction, IoU 42.0%" in titles
    # A row without its own name takes it from class_names; a row without an IoU says none.
    assert "reference: cat" in titles and "prediction" in titles
    assert legend == ["reference annotation", "ground truth (outline)", "prediction"]


def test_a_short_training_run_logs_labelled_test_results_without_library_noise(
    synthetic_voc_root, tmp_path
):
    """The command-line run: train.log holds what was printed; the two test results are named."""
    command = [sys.executable, "-m", "vrpsam.cli.train", "experiment=demo",
               f"data.root={synthetic_voc_root}", f"hydra.run.dir={tmp_path / 'run'}",
               "trainer.max_steps=1", "trainer.limit_val_batches=1", "data.val_episodes=4",
               "data.test_episodes=4", "trainer.enable_progress_bar=false"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    for noise in ("GPU available:", "TPU available:", "💡 Tip:", "LeafSpec", "in eval mode"):
        assert noise not in printed, noise
    log = (tmp_path / "run" / "train.log").read_text()
    assert "test before training: mIoU" in log and "test after training: mIoU" in log
