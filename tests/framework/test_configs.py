"""Every config file of every group composes and builds what its ``_target_`` names; paper
experiments select what they say; configs and code agree on the values both know."""

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from vrpsam.conf import CONFIG_DIR

CONF = Path(CONFIG_DIR)
NO_FILES = ["model.sam_checkpoint=null", "model.backbone_checkpoint=null"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def test_the_groups_tested_here_are_all_the_groups():
    groups = {str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF}
    assert groups == {"data", "model", "model/backbone", "model/sam", "method", "protocol",
                      "trainer", "logger", "callbacks", "paths", "cache", "debug",
                      "experiment"}  # fmt: skip


@pytest.mark.parametrize("option", [o for o in options("data") if o != "base"])
def test_every_dataset_config_builds_its_datamodule(option):
    from vrpsam.data.datamodule import FewShotDataModule
    from vrpsam.engine.protocol import configured_protocol

    cfg = compose_with("train", [f"data={option}"])
    protocol = configured_protocol(cfg, CONFIG_DIR)
    if cfg.data.get("video"):  # scored by the video evaluation; no training episodes
        with pytest.raises(Exception, match="is a video benchmark"):
            instantiate(cfg.data, **protocol.data_options())
        return
    datamodule = instantiate(cfg.data, **protocol.data_options())
    assert isinstance(datamodule, FewShotDataModule)
    assert datamodule.test_sampling == protocol.test_sampling


def test_the_data_base_is_not_a_dataset():
    with pytest.raises(Exception, match="dataset"):
        instantiate(compose_with("train", ["data=base"]).data)


@pytest.mark.parametrize("group", ["model/backbone", "model/sam"])
def test_every_backbone_and_sam_config_builds_the_model(group):
    other = {"model/backbone": "model/sam=tiny", "model/sam": "model/backbone=resnet18"}[group]
    for option in options(group):
        cfg = compose_with("train", [f"{group}={option}", other, *NO_FILES])
        # Without SAM's image encoder even vit_h builds in a moment (its decoder is small).
        model = instantiate(cfg.model, sam_image_encoder=False)
        assert model.build_spec["backbone" if group == "model/backbone" else "sam"] == option


@pytest.mark.parametrize("name", ["train", "eval"])
def test_the_model_node_builds_the_model_it_describes(name):
    model = instantiate(compose_with(name, ["experiment=demo", "protocol=default"]).model)
    assert model.build_spec["backbone"] == "resnet18" and model.build_spec["sam"] == "tiny"


def test_eval_leaves_the_architecture_to_the_checkpoint_unless_told():
    assert compose_with("eval", []).model.get("backbone") is None
    assert compose_with("eval", ["experiment=pascal5i_vgg16"]).model.backbone == "vgg16"


@pytest.mark.parametrize("option", options("method"))
def test_every_method_config_builds_its_method(option):
    from vrpsam.baselines.base import FewShotMethod
    from vrpsam.engine.methods import TrainedVRPSAM, build_method

    cfg = compose_with("eval", ["experiment=demo", f"method={option}", "protocol=default"])
    if option == "matcher":  # the released DINOv2 at a CPU-friendly input size
        cfg.method.encoder_kwargs.input_size = 112
    with pytest.warns(UserWarning, match="untrained") if option == "vrpsam" else _nothing():
        built = build_method(cfg.method)
    assert isinstance(built, TrainedVRPSAM if option == "vrpsam" else FewShotMethod)
    assert cfg.method.name == option.removesuffix("_small")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("option", options("protocol"))
def test_every_protocol_config_gives_a_protocol(option):
    from vrpsam.engine.protocol import evaluation_protocol

    cfg = compose_with("eval", [f"protocol={option}"])
    protocol, _ = evaluation_protocol(cfg.protocol, recorded=None, recorded_dataset=None,
                                      dataset="pascal", config_dir=CONFIG_DIR)  # fmt: skip
    assert protocol.name == ("default" if option == "checkpoint" else option)


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_config_builds_a_trainer(option, tmp_path):
    import lightning as L

    cfg = compose_with("train", [f"trainer={option}", f"paths.run_dir={tmp_path}"])
    if cfg.trainer.accelerator == "gpu":  # no GPU here: the same settings on the CPU
        cfg.trainer.accelerator = "cpu"
    assert isinstance(instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("option", options("debug"))
def test_every_debug_config_builds_a_trainer(option, tmp_path):
    import lightning as L

    cfg = compose_with("train", [f"debug={option}", f"paths.run_dir={tmp_path}"])
    assert isinstance(instantiate(cfg.trainer), L.Trainer)


@pytest.mark.parametrize("option", options("logger"))
def test_every_logger_config_builds_its_logger_or_says_what_to_install(option, tmp_path):
    cfg = compose_with("train", [f"logger={option}", f"paths.run_dir={tmp_path}"])
    for node in cfg.logger.values():
        try:
            logger = instantiate(node)
        except Exception as err:  # an optional package missing: the message says what to install
            assert "pip install" in str(err.__cause__ or err), err
        else:
            assert hasattr(logger, "log_metrics")


def test_every_callback_config_builds_its_callbacks(tmp_path):
    import lightning as L

    for option in options("callbacks"):
        cfg = compose_with("train", [f"callbacks={option}", f"paths.run_dir={tmp_path}"])
        built = [instantiate(node) for node in cfg.callbacks.values()]
        assert built and all(isinstance(c, L.Callback) for c in built)


def test_paths_and_cache_configs_compose():
    for group in ("paths", "cache"):
        for option in options(group):
            assert compose_with("train", [f"{group}={option}"])[group]


@pytest.mark.parametrize("experiment", options("experiment"))
@pytest.mark.parametrize("name", ["train", "eval", "build_cache"])
def test_every_experiment_composes_and_builds_its_data_and_model(experiment, name):
    cfg = compose_with(name, [f"experiment={experiment}", *NO_FILES, "protocol=default"])
    assert cfg.model.backbone in ("resnet50_deepstem", "vgg16", "dinov2_vitb14", "resnet18")
    assert cfg.model.sam in ("vit_h", "tiny")
    # An evaluation fills the model-side data settings from the checkpoint (engine.settle).
    filled = {k: v for k, v in {"image_size": 512, "interpolation": "bilinear"}.items()
              if cfg.data.get(k) is None}  # fmt: skip
    instantiate(cfg.data, val_split="val", **filled)
    if name == "train":
        assert instantiate(cfg.model, sam_image_encoder=False).build_spec["sam"] == cfg.model.sam


def test_export_and_predict_configs_compose(tmp_path):
    export = compose_with("export", [f"ckpt_path={tmp_path}/x.ckpt", f"out_dir={tmp_path}"])
    assert export.random_frozen_weights is False
    predict = compose_with("predict", [f"export_dir={tmp_path}", f"targets={tmp_path}",
                                       f"out_dir={tmp_path}", "reference.image=r.jpg"])  # fmt: skip
    assert predict.reference.mask is None


def test_paper_recipes():
    pascal = compose_with("train", ["experiment=pascal5i_resnet50"])
    assert (pascal.optimizer.lr, pascal.trainer.max_epochs, pascal.total_batch_size) == (
        2e-4,
        100,
        8,
    )
    assert pascal.optimizer.weight_decay == 1e-6 and pascal.model.backbone == "resnet50_deepstem"
    assert pascal.model.backbone_checkpoint.endswith("resnet50_v2.pth")
    coco = compose_with("train", ["experiment=coco20i_resnet50"])
    assert (coco.optimizer.lr, coco.trainer.max_epochs, coco.data.dataset) == (1e-4, 50, "coco")
    assert compose_with("train", ["experiment=coco2pascal_resnet50"]).data.dataset == "coco2pascal"


def test_fold_shot_annotation_and_seed_are_overrides():
    cfg = compose_with(
        "eval", ["data.fold=3", "eval.shot=5", "eval.annotation=scribble", "eval.seed=[0,1]"]
    )
    assert (cfg.data.fold, cfg.eval.shot, cfg.eval.annotation, list(cfg.eval.seed)) == (
        3, 5, "scribble", [0, 1])  # fmt: skip


@pytest.mark.parametrize(
    ("option", "target"),
    [
        ("gpsam", "vrpsam.baselines.gpsam.GPSAM"),
        ("persam", "vrpsam.baselines.persam.PerSAM"),
        ("persam_f", "vrpsam.baselines.persam.PerSAMF"),
    ],
)
def test_method_configs_agree_with_the_constructors_defaults(option, target):
    """The method files show the settings; they must be the methods' own defaults."""
    module, name = target.rsplit(".", 1)
    signature = inspect.signature(getattr(__import__(module, fromlist=[name]), name))
    node = OmegaConf.load(CONF / "method" / f"{option}.yaml")
    shown = [key for key in node if key in signature.parameters]
    assert shown, "the method file shows none of the method's settings"
    for key in shown:
        assert signature.parameters[key].default == node[key], key


def test_protocol_configs_agree_with_the_model_switch_defaults():
    from vrpsam.modeling.switches import ModelSwitches
    from vrpsam.modeling.vrp_sam import build_vrp_sam

    signature = inspect.signature(build_vrp_sam)
    model = OmegaConf.load(CONF / "model" / "vrpsam.yaml")
    for key in ("num_queries", "num_heads", "num_layers", "dropout", "mask_before_high",
                "frozen_autocast"):  # fmt: skip
        assert signature.parameters[key].default == model[key], key
    default = OmegaConf.load(CONF / "protocol" / "default.yaml")
    assert {k: default[k] for k in ModelSwitches.names()} == ModelSwitches().as_dict()
