"""The protocol: every switch settable on its own, `protocol=official` sets all of them, and the
switches a checkpoint was trained under come back in evaluation (and in eval.json)."""

import json

import pytest
from omegaconf import OmegaConf

from vrpsam.conf import CONFIG_DIR
from vrpsam.engine.evaluation import evaluate
from vrpsam.engine.protocol import Protocol, configured_protocol, named_protocol
from vrpsam.engine.training import train
from vrpsam.modeling.switches import ModelSwitches

SHORT = ["test_after_training=false", "test_before_training=false"]


@pytest.fixture(scope="module")
def runs(compose_cfg, frozen_files, demo_run, tmp_path_factory):
    """A short run per protocol, frozen parts from files (as real runs): {name: run folder}.

    The default protocol's run is the session's ``demo_run`` (framework/conftest.py); the
    official one is trained here.
    """
    out = tmp_path_factory.mktemp("protocols")
    sam_file, backbone_file = frozen_files
    files = [f"model.sam_checkpoint={sam_file}", f"model.backbone_checkpoint={backbone_file}"]
    train(compose_cfg("train", out, "protocol=official", "data.train_episodes_per_epoch=8", *files,
                      *SHORT, run="official"))  # fmt: skip
    return {"default": demo_run["run"], "official": out / "official"}


def test_protocol_files_agree_with_the_model_switch_presets():
    for dataset in ("pascal", "coco", "coco2pascal"):
        default = named_protocol("default", dataset, CONFIG_DIR)
        official = named_protocol("official", dataset, CONFIG_DIR)
        assert default.model_switches() == ModelSwitches()
        assert official.model_switches() == ModelSwitches.official()
        assert official.select_on == "test" and not official.score_original_size
        assert official.test_scribble == "fixed" and official.loss_ignore_index is None
        assert default.select_on == "val" and default.loss_ignore_index == 255
    assert named_protocol("official", "coco", CONFIG_DIR).rank_episodes == "same"
    assert named_protocol("default", "coco", CONFIG_DIR).rank_episodes == "unique"
    assert named_protocol("official", "pascal", CONFIG_DIR).test_sampling == "images"
    assert named_protocol("default", "pascal", CONFIG_DIR).test_sampling == "pairs"


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("protocol.score_original_size=false", "score_original_size", False),
        ("protocol.loss_ignore_index=null", "loss_ignore_index", None),
        ("protocol.select_on=test", "select_on", "test"),
        ("protocol.test_scribble=fixed", "test_scribble", "fixed"),
        ("protocol.test_sampling=balanced", "test_sampling", "balanced"),
        ("protocol.train_sampling=class", "train_sampling", "class"),
        ("protocol.mask_downsample=nearest", "mask_downsample", "nearest"),
    ],
)
def test_every_switch_can_be_set_on_its_own(make_cfg, override, key, value):
    cfg = make_cfg("train", override)
    protocol = configured_protocol(cfg, CONFIG_DIR)
    assert getattr(protocol, key) == value
    default = configured_protocol(make_cfg("train"), CONFIG_DIR)
    assert protocol.differences(default) == {key: (value, getattr(default, key))}


def test_a_model_switch_reaches_the_model_through_the_protocol(make_cfg):
    import hydra

    cfg = make_cfg("train", "protocol.mask_downsample=nearest")
    model = hydra.utils.instantiate(cfg.model)
    assert model.switches.mask_downsample == "nearest"
    assert model.build_spec["mask_downsample"] == "nearest"


def test_a_bad_switch_value_is_refused_naming_the_switch(make_cfg):
    with pytest.raises(ValueError, match=r"protocol\.test_sampling must be one of"):
        configured_protocol(make_cfg("train", "protocol.test_sampling=random"), CONFIG_DIR)


def test_official_compat_is_an_alias_of_protocol_official(make_cfg):
    cfg = make_cfg("train", "model.official_compat=true")
    with pytest.warns(UserWarning, match="alias of protocol=official"):
        protocol = configured_protocol(cfg, CONFIG_DIR)
    assert protocol == named_protocol("official", "pascal", CONFIG_DIR)
    assert cfg.model.mask_downsample == "nearest"  # what the model is built from follows


def test_official_run_selects_on_test_episodes_and_records_its_protocol(runs):
    metrics = json.loads((runs["official"] / "metrics.json").read_text())
    assert metrics["val_history"], "validation (on the test episodes) ran"
    import torch

    saved = torch.load(runs["official"] / "checkpoints/best.ckpt", weights_only=True)["vrpsam"]
    assert saved["protocol"]["name"] == "official"
    assert saved["build_spec"]["sam_preprocess"] == "squash"


def test_selecting_on_test_episodes_trains_on_every_training_image(synthetic_voc_root):
    from vrpsam.data.datamodule import build_datamodule

    def images(split, **kwargs):
        data = build_datamodule(dataset="pascal", root=synthetic_voc_root, fold=0,
                                source_options={"min_pixels": 400}, **kwargs)  # fmt: skip
        return set(data.source(split).image_ids())

    held_out = images("val", val_split="val")
    assert held_out, "the default protocol holds images out for model selection"
    everything = images("train", val_split="val") | held_out
    assert images("train", val_split="test") == everything


@pytest.mark.parametrize("name", ["default", "official"])
def test_evaluation_restores_and_reports_the_trained_protocol(runs, compose_cfg, name, tmp_path):
    ckpt = runs[name] / "checkpoints" / "best.ckpt"
    result = evaluate(compose_cfg("eval", tmp_path, f"ckpt_path={ckpt}", "eval.episodes=4",
                                  run=f"eval_{name}"))  # fmt: skip
    expected = named_protocol(name, "pascal", CONFIG_DIR)
    assert result["protocol"] == name
    assert result["switches"] == expected.switches()
    assert result["protocol_changes"] == {}
    written = json.loads((tmp_path / f"eval_{name}" / "eval.json").read_text())
    assert written["switches"]["score_original_size"] is (name == "default")
    assert written["protocol"] == name


def test_an_override_that_contradicts_the_checkpoint_wins_with_one_warning(
    runs, compose_cfg, tmp_path
):
    ckpt = runs["official"] / "checkpoints" / "best.ckpt"
    cfg = compose_cfg("eval", tmp_path, f"ckpt_path={ckpt}", "eval.episodes=4",
                      "protocol.score_original_size=true", run="eval_override")  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        result = evaluate(cfg)
    messages = [str(w.message) for w in caught if "differ from the checkpoint" in str(w.message)]
    assert len(messages) == 1
    assert "protocol.score_original_size: checkpoint False, this run True" in messages[0]
    assert result["switches"]["score_original_size"] is True
    assert result["protocol"] == "official"
    assert result["protocol_changes"] == {"score_original_size": True}


def test_resuming_under_other_switches_is_refused(runs, compose_cfg):
    official = runs["official"]
    cfg = compose_cfg("train", official.parent, "protocol=default", "ckpt_path=last", *SHORT,
                      run=official.name)  # fmt: skip
    cfg.model.sam_checkpoint = None  # not reached: the protocol check comes first
    OmegaConf.set_struct(cfg, True)
    with pytest.raises(ValueError, match="other protocol switches"):
        train(cfg)


def test_protocol_round_trips_through_its_dict():
    protocol = named_protocol("official", "coco", CONFIG_DIR)
    assert Protocol.from_mapping(protocol.as_dict()) == protocol
    with pytest.raises(ValueError, match="missing"):
        Protocol.from_mapping({"name": "default"})
