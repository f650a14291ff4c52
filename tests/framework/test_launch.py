"""How the package is launched: Hydra multirun over folds, and the console scripts of a wheel."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vrpsam.cli.train import check_launch

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["experiment=demo", "trainer.max_steps=1", "trainer.limit_val_batches=1",
         "data.test_episodes=4", "data.val_episodes=4", "test_before_training=false",
         "test_after_training=false", "trainer.enable_progress_bar=false"]  # fmt: skip


def test_multirun_of_multi_process_runs_is_refused_with_the_launcher_to_use(make_cfg):
    with pytest.raises(ValueError, match="hydra/launcher=submitit_slurm"):
        check_launch(make_cfg("train", "trainer=ddp_cpu"), multirun=True)
    check_launch(make_cfg("train", "trainer=ddp_cpu"), multirun=False)
    check_launch(make_cfg("train"), multirun=True)


@pytest.mark.slow
def test_multirun_trains_the_folds_one_after_another_each_in_its_own_folder(
    synthetic_voc_root, tmp_path
):
    command = [sys.executable, "-m", "vrpsam.cli.train", "-m", *SHORT,
               f"data.root={synthetic_voc_root}", f"paths.output_dir={tmp_path}",
               "data.fold=0,1"]  # fmt: skip
    subprocess.run(command, check=True, cwd=tmp_path, timeout=600)
    runs = sorted((tmp_path / "train").glob("multirun_*/pascal_fold*"))
    assert [r.name.split("_")[1] for r in runs] == ["fold0", "fold1"]
    for run in runs:
        assert (run / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.slow
def test_a_wheel_install_runs_every_console_script_from_another_folder(tmp_path):
    """Not editable: the configs must come with the package (``vrpsam/conf``)."""
    wheels = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, timeout=600)  # fmt: skip
    target = tmp_path / "site"
    wheel = next(wheels.glob("vrpsam-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, timeout=600)  # fmt: skip
    # The wheel's package comes first on the path; its dependencies from this environment.
    env = {**os.environ, "PYTHONPATH": str(target)}
    work = tmp_path / "elsewhere"
    work.mkdir()
    probe = "import vrpsam.conf as c; print(c.CONFIG_DIR)"
    where = subprocess.run([sys.executable, "-c", probe], cwd=work, env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.strip().startswith(str(target)), where.stdout
    scripts = ["vrpsam-train", "vrpsam-eval", "vrpsam-export", "vrpsam-predict", "vrpsam-cache",
               "vrpsam-data", "vrpsam-bench", "vrpsam-demo", "vrpsam-bank"]  # fmt: skip
    for script in scripts:
        done = subprocess.run([str(target / "bin" / script), "--help"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, f"{script} --help: {done.stderr[-2000:]}"
    demo = subprocess.run([str(target / "bin" / "vrpsam-demo"), "--setting", "quick"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (work / "outputs" / "demo" / "report.md").is_file()
