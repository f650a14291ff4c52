"""Every shipped experiment and data config trains, evaluates and exports, at tiny sizes on a
synthetic tree of its format. The configs are read from conf/experiment and conf/data, so a new
file is covered without editing this test; a dataset format without a tree here fails loudly.

Each experiment trains two steps, and so does each data config that no experiment selects (with the
demo experiment); one checkpoint per dataset is evaluated and exported. Video
benchmarks (DAVIS) have no training episodes: training on them must be refused with the message
that says what to do, and a trained checkpoint is evaluated on them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from vrpsam.cli.export import export
from vrpsam.conf import CONFIG_DIR
from vrpsam.data.synthetic_davis import write_davis_tree
from vrpsam.data.synthetic_fss import write_fss_tree
from vrpsam.data.synthetic_lvis import write_lvis_tree
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.training import train

CONF = Path(CONFIG_DIR)


def _is_dataset(path: Path) -> bool:
    """A data config that names a dataset (base.yaml only holds what the others share)."""
    node = OmegaConf.load(path)
    return not ("dataset" in set(node.keys()) and OmegaConf.is_missing(node, "dataset"))


def _data_of(experiment: Path) -> str:
    """The data config an experiment selects (``override /data: NAME``; train.yaml's otherwise)."""
    for entry in OmegaConf.load(experiment).get("defaults") or []:
        if OmegaConf.is_dict(entry) and "override /data" in entry:
            return str(entry["override /data"])
    return str(OmegaConf.load(CONF / "train.yaml").defaults[0]["data"])


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF / "data").glob("*.yaml") if _is_dataset(p))
# A data config trains in the test of an experiment that selects it; the others (video ones
# among them) are run with the demo experiment.
TRAINED_BY_EXPERIMENTS = {_data_of(CONF / "experiment" / f"{e}.yaml") for e in EXPERIMENTS}
OTHER_DATA = [d for d in DATA if d not in TRAINED_BY_EXPERIMENTS]

# The demo's tiny models at 128 px, whatever backbone and SAM the experiment names.
TINY = ["model/backbone=resnet18", "model/sam=tiny", "model.sam_kwargs.image_size=128",
        "++model.sam_kwargs.patch_size=8", "++model.sam_kwargs.window_size=8",
        "data.image_size=128", "data.num_workers=0"]  # fmt: skip
# Two steps of one episode, one validation episode, no tests inside the training run.
SHORT = ["trainer.max_steps=2", "trainer.max_epochs=1", "total_batch_size=1",
         "data.train_episodes_per_epoch=2", "data.val_episodes=1", "trainer.limit_val_batches=1",
         "test_after_training=false", "test_before_training=false", "cache_features=none",
         "trainer.enable_progress_bar=false", "logger=csv"]  # fmt: skip
EVAL = ["eval.episodes=2", "eval.batch_size=1", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def trees(synthetic_voc_root, synthetic_coco_root, tmp_path_factory) -> dict[str, list[str]]:
    """Dataset name → the overrides that point its config at a synthetic tree of its format
    (128-px trees: a class is listed from 400 pixels on, see tests/conftest.py)."""
    out = tmp_path_factory.mktemp("formats")
    voc, coco = synthetic_voc_root, synthetic_coco_root
    fss = write_fss_tree(out / "fss", classes=(4, 2, 2), size=64)
    lvis = write_lvis_tree(out / "lvis", categories=20, images=(60, 40), size=96)
    davis = write_davis_tree(out / "davis", sequences=2, frames=3, size=(48, 64))
    pascal = [f"data.root={voc}", "data.source_options.min_pixels=400"]
    return {
        "pascal": pascal,
        "coco": [f"data.root={coco}", "data.source_options.min_area=400"],
        "coco2pascal": [f"data.root={coco}", f"data.source_options.pascal_root={voc}"],
        "fss1000": [f"data.root={fss}"],
        "lvis92i": [f"data.root={lvis}"],
        "davis2017": [f"data.root={davis}"],
        "davis2016": [f"data.root={davis}"],
    }


def composed(name: str, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name=name,
            overrides=[f"paths.output_dir={out}", f"paths.run_dir={out / 'run'}", *overrides],
        )


def tree_of(cfg, trees) -> list[str]:
    dataset = cfg.data.dataset
    assert dataset in trees, f"no synthetic tree of {dataset}'s format: add one to `trees`"
    return trees[dataset]


# Datasets whose evaluation and export have run in this session: each config trains, and one
# trained checkpoint per dataset is evaluated and exported (the same code for every config of a
# dataset, and about half of each test's time).
EVALUATED: set[str] = set()


def trains_evaluates_and_exports(groups: list[str], trees, tmp_path: Path) -> None:
    cfg = composed("train", tmp_path, *groups, *TINY, *SHORT)
    tree = tree_of(cfg, trees)
    metrics, _ = train(composed("train", tmp_path, *groups, *TINY, *SHORT, *tree))
    assert metrics["steps"] == 2 and metrics["val_last"] is not None
    if cfg.data.dataset in EVALUATED:
        return
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    evaluated = evaluate(composed("eval", tmp_path / "eval", *groups, *TINY, *tree,
                                  f"ckpt_path={ckpt}", *EVAL))  # fmt: skip
    assert evaluated["episodes"] == 2
    out = tmp_path / "export"
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        export(compose("export", overrides=[f"ckpt_path={ckpt}", f"out_dir={out}"]))
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    EVALUATED.add(cfg.data.dataset)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_each_experiment_trains_two_steps_evaluates_and_exports(experiment, trees, tmp_path):
    trains_evaluates_and_exports([f"experiment={experiment}"], trees, tmp_path)


def test_the_experiments_train_the_data_configs_they_select():
    assert set(DATA) >= TRAINED_BY_EXPERIMENTS  # a data config name an experiment misspells


@pytest.mark.parametrize("data", OTHER_DATA)
def test_each_other_data_config_trains_two_steps_evaluates_and_exports(
    data, trees, demo_run, tmp_path
):
    groups = ["experiment=demo", f"data={data}"]
    if not composed("train", tmp_path, *groups).data.get("video"):
        trains_evaluates_and_exports(groups, trees, tmp_path)
        return
    # A video benchmark: training is refused with the way out; a trained checkpoint evaluates.
    with pytest.raises(ValueError, match="is a video benchmark"):
        train(composed("train", tmp_path, *groups, *TINY, *SHORT, *trees[data]))
    ckpt = f"ckpt_path={demo_run['ckpt']}"
    result = evaluate(composed("eval", tmp_path / "eval", *groups, *trees[data], ckpt,
                               "trainer.enable_progress_bar=false"))  # fmt: skip
    assert result["dataset"] == data and 0 <= result["jf_mean"] <= 100
