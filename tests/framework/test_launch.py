"""How the package is launched: Hydra multirun over folds, and the console scripts of a wheel."""

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from vrpsam.cli.train import check_launch
from vrpsam.conf import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["experiment=demo", "trainer.max_steps=1", "trainer.limit_val_batches=1",
         "data.test_episodes=4", "data.val_episodes=4", "test_before_training=false",
         "test_after_training=false", "trainer.enable_progress_bar=false"]  # fmt: skip
# Hydra's submitit launcher (the `cluster` extra; `make setup` installs it with `dev`).
needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install 'vrpsam[cluster]')",
)
# submitit's local executor on a CPU machine: one process per job, no GPU.
SUBMITIT_LOCAL = ["hydra/launcher=submitit_local", "hydra.launcher.gpus_per_node=0",
                  "hydra.launcher.cpus_per_task=1", "hydra.launcher.tasks_per_node=1",
                  "hydra.launcher.nodes=1", "hydra.launcher.timeout_min=20"]  # fmt: skip
# The SLURM form of scripts/launch_ddp.md: 4 folds, each on 2 nodes × 4 GPUs.
SUBMITIT_SLURM = ["hydra/launcher=submitit_slurm", "experiment=coco20i_resnet50",
                  "data.fold=0,1,2,3", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                  "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=4",
                  "hydra.launcher.gpus_per_node=4", "hydra.launcher.cpus_per_task=8",
                  "hydra.launcher.timeout_min=2880", "hydra.launcher.partition=gpu"]  # fmt: skip


def test_multirun_of_multi_process_runs_is_refused_with_the_launcher_to_use(make_cfg):
    with pytest.raises(ValueError, match="hydra/launcher=submitit_slurm"):
        check_launch(make_cfg("train", "trainer=ddp_cpu"), multirun=True)
    check_launch(make_cfg("train", "trainer=ddp_cpu"), multirun=False)
    check_launch(make_cfg("train"), multirun=True)


def _with_launcher(*overrides: str):
    """The train config with its ``hydra`` node, as a multirun job would see it."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


@needs_submitit
def test_submitit_launchers_resolve_and_may_run_multi_process_jobs():
    from hydra.utils import instantiate

    local = _with_launcher("trainer=ddp_cpu", *SUBMITIT_LOCAL)
    # Imported after a compose: Hydra's first plugin scan (once a process) runs the plugin modules
    # again, so classes imported before it are not the ones instantiate returns.
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        LocalLauncher,
        SlurmLauncher,
    )

    assert isinstance(instantiate(local.hydra.launcher), LocalLauncher)
    assert local.hydra.launcher.gpus_per_node == 0 and local.hydra.launcher.cpus_per_task == 1
    check_launch(local, multirun=True, launcher=local.hydra.launcher)  # its own processes
    copies = _with_launcher(*SUBMITIT_LOCAL, "hydra.launcher.tasks_per_node=2")
    with pytest.raises(ValueError, match="tasks_per_node=1"):
        check_launch(copies, multirun=True, launcher=copies.hydra.launcher)
    basic = _with_launcher("trainer=ddp_cpu")
    with pytest.raises(ValueError, match="hydra/launcher=submitit_slurm"):
        check_launch(basic, multirun=True, launcher=basic.hydra.launcher)

    one_job = [o for o in SUBMITIT_SLURM if not o.startswith("data.fold=")]
    slurm = _with_launcher(*one_job)
    assert isinstance(instantiate(slurm.hydra.launcher), SlurmLauncher)
    assert slurm.hydra.launcher.partition == "gpu"
    check_launch(slurm, multirun=True, launcher=slurm.hydra.launcher)
    # Lightning reads the ranks from SLURM: one task per device, one node per trainer node.
    for wrong in ("hydra.launcher.tasks_per_node=1", "hydra.launcher.nodes=1"):
        bad = _with_launcher(*one_job, wrong)
        with pytest.raises(ValueError, match=r"tasks_per_node=4 hydra\.launcher\.nodes=2"):
            check_launch(bad, multirun=True, launcher=bad.hydra.launcher)


# A Python start-up importing the whole package (seconds, slow); the default suite composes the
# same sweep's launcher in this process in
# test_submitit_launchers_resolve_and_may_run_multi_process_jobs above.
@pytest.mark.slow
@needs_submitit
def test_the_console_script_composes_the_documented_slurm_sweep_without_submitting(tmp_path):
    """``--cfg`` takes no ``-m`` nor sweep: it prints one job's config (fold 0) of the sweep."""
    script = Path(sys.executable).parent / "vrpsam-train"
    job = [o if not o.startswith("data.fold=") else "data.fold=0" for o in SUBMITIT_SLURM]
    command = [str(script), *job, "--cfg", "hydra", "--package", "hydra.launcher"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    launcher = yaml.safe_load(done.stdout)  # "# @package hydra.launcher" and its keys
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert (launcher["partition"], launcher["timeout_min"]) == ("gpu", 2880)
    assert not (tmp_path / ".submitit").exists() and not any(tmp_path.rglob("*.pkl"))


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
@needs_submitit
def test_submitit_local_launcher_trains_each_fold_in_a_job_of_its_own(synthetic_voc_root, tmp_path):
    """The real console script, ``-m hydra/launcher=submitit_local``: both jobs run through
    submitit's local executor (its logs and results under ``<sweep>/.submitit/<job id>``) and each
    leaves a complete run folder (``<sweep>/<dataset>_fold<k>_<job>``)."""
    from hydra.core.utils import JobStatus

    sweep = tmp_path / "sweep"
    script = Path(sys.executable).parent / "vrpsam-train"
    command = [str(script), "-m", *SUBMITIT_LOCAL, *SHORT, "data.fold=0,1",
               f"data.root={synthetic_voc_root}", f"paths.output_dir={tmp_path / 'outputs'}",
               f"hydra.sweep.dir={sweep}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two jobs at once on a small CPU machine
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(sweep.glob("pascal_fold*"))
    assert [r.name for r in runs] == ["pascal_fold0_0", "pascal_fold1_1"]
    job_ids = set()
    for run in runs:
        assert (run / "checkpoints" / "best.ckpt").is_file()
        assert (run / "metrics.json").is_file()
        job = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert job["launcher"]["_target_"].endswith("submitit_launcher.LocalLauncher")
        # The job id is submitit's (the plugin's placeholder is "job_id_for_<n>").
        logs = sweep / ".submitit" / str(job["job"]["id"])
        assert list(logs.glob("*_log.out")), logs
        outcome, result = pickle.loads(next(logs.glob("*_result.pkl")).read_bytes())
        assert outcome == "success" and result.status == JobStatus.COMPLETED
        job_ids.add(job["job"]["id"])
    assert len(job_ids) == 2


@pytest.mark.slow
def test_a_wheel_install_runs_every_console_script_from_another_folder(tmp_path, installed_wheel):
    """Not editable: the configs (the top-level ``conf/``) must come with the package as
    ``vrpsam/conf``; tests/test_layout.py composes each of them from a wheel."""
    target, env = installed_wheel.site, installed_wheel.env
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
