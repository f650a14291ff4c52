"""Every config group composes, and paper experiments select what they say."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from vrpsam.train import CONFIG_PATH

CONF = Path(CONFIG_PATH)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize(
    "group", ["data", "trainer", "logger", "callbacks", "paths", "model/backbone", "model/sam"]
)
def test_every_option_of_every_group_composes(group):
    assert options(group), f"conf/{group} is empty"
    for option in options(group):
        cfg = compose_with("train", [f"{group}={option}"])
        assert cfg.data.dataset in ("pascal", "coco", "coco2pascal")


@pytest.mark.parametrize("experiment", options("experiment"))
@pytest.mark.parametrize("name", ["train", "eval"])
def test_every_experiment_composes_for_training_and_evaluation(experiment, name):
    cfg = compose_with(name, [f"experiment={experiment}"])
    assert cfg.model.backbone in ("resnet50_deepstem", "vgg16", "dinov2_vitb14", "resnet18")
    assert cfg.model.sam in ("vit_h", "tiny")


def test_paper_recipes():
    pascal = compose_with("train", ["experiment=pascal5i_resnet50"])
    assert (pascal.optimizer.lr, pascal.trainer.max_epochs, pascal.total_batch_size) == (
        2e-4,
        100,
        8,
    )
    assert pascal.optimizer.weight_decay == 1e-6 and pascal.model.backbone == "resnet50_deepstem"
    coco = compose_with("train", ["experiment=coco20i_resnet50"])
    assert (coco.optimizer.lr, coco.trainer.max_epochs, coco.data.dataset) == (1e-4, 50, "coco")
    assert compose_with("train", ["experiment=coco2pascal_resnet50"]).data.dataset == "coco2pascal"


def test_eval_takes_the_architecture_from_the_checkpoint_unless_told():
    assert compose_with("eval", []).model.backbone is None
    assert compose_with("eval", ["experiment=pascal5i_vgg16"]).model.backbone == "vgg16"


def test_fold_shot_annotation_and_seed_are_overrides():
    cfg = compose_with(
        "eval", ["data.fold=3", "eval.shot=5", "eval.annotation=scribble", "eval.seed=[0,1]"]
    )
    assert (cfg.data.fold, cfg.eval.shot, cfg.eval.annotation, list(cfg.eval.seed)) == (
        3,
        5,
        "scribble",
        [0, 1],
    )


def test_the_model_node_builds_the_model_it_describes():
    cfg = compose_with("train", ["experiment=demo"])
    model = instantiate(cfg.model)
    assert model.build_spec["backbone"] == "resnet18" and model.build_spec["sam"] == "tiny"
