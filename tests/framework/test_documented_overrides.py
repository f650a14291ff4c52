"""Every override form the README or an error message shows works as written (no ``+`` needed).

Issue "The paper's rows run, and nothing is silent", item 8: ``model.sam_checkpoint=PATH`` for
vrpsam-eval and ``data.source_options.min_area=400`` were refused by Hydra. The forms the error
messages give are composed here as written; every ``key=value`` form in the README is parsed by
Hydra's grammar and its key found in the config of the command it is shown for.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from vrpsam.conf import CONFIG_DIR

README = Path(__file__).resolve().parents[2] / "README.md"
CONF = Path(CONFIG_DIR)

# (config, the forms, composed together): where in vrpsam each form is given as advice.
MESSAGE_FORMS = {
    # artifacts/exports.py and frozen_weights.py (files that moved), data/datamodule.py and
    # engine/settle.py (no data), baselines/base.py (eval.annotation), frozen_weights.py.
    "eval_checkpoint": (
        "eval",
        [
            "model.sam_checkpoint=PATH",
            "model.backbone_checkpoint=PATH",
            "data.root=/path/to/VOC2012",
            "random_frozen_weights=true",
            "eval.annotation=box",
            "eval.episodes=1000",
            "cache.dir=null",
            "eval.negatives=true",
        ],
    ),
    # baselines/builders.py; data/semantic.py and the issue (min_area without +).
    "eval_baseline": (
        "eval",
        [
            "method=gpsam",
            "model.sam=vit_h",
            "model.sam_checkpoint=sam_vit_h_4b8939.pth",
            "model.backbone=resnet50",
            "data=coco20i",
            "data.source_options.min_area=400",
        ],
    ),
    # engine/semantic.py; data/semantic.py for LVIS-92i's threshold.
    "eval_semantic": (
        "eval",
        [
            "task=semantic",
            "eval.semantic.form=nway",
            "eval.semantic.ways=2",
            "eval.semantic.references_per_class=5",
            "eval.episodes=null",
            "data=lvis92i",
            "data.source_options.min_area=400",
        ],
    ),
    # data/semantic.py, data/datamodule.py, engine/protocol.py, data/dataset.py, cache/,
    # modeling/precision.py, engine/callbacks.py, engine/feature_store.py.
    "train": (
        "train",
        [
            "data.source_options.min_pixels=400",
            "data.root=/path/to/VOC2012",
            "protocol.train_exclude_novel=false",
            "protocol.rank_episodes=same",
            "model.official_compat=true",
            "cache.dir=null",
            "trainer.precision=32-true",
            "trainer.max_steps=3",
            "model.mask_before_high=false",
        ],
    ),
    "export": ("export", ["random_frozen_weights=true"]),
}


def composed(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def plain_value(override: str):
    parsed = OverridesParser.create().parse_override(override)
    return parsed.key_or_group, parsed.value()


@pytest.mark.parametrize("case", MESSAGE_FORMS)
def test_the_forms_error_messages_give_work_as_written(case):
    name, forms = MESSAGE_FORMS[case]
    cfg = composed(name, forms)
    for form in forms:
        key, value = plain_value(form)
        if "." in key:  # a value, not a group choice
            assert OmegaConf.select(cfg, key) == value, form


def test_check_frozen_weights_false_is_a_key_of_eval_and_predict():
    # The form frozen_weights.resolve advises; it reaches the vrpsam method's loader.
    assert composed("eval", ["check_frozen_weights=false"]).method.check_frozen_weights is False
    assert composed("predict", ["check_frozen_weights=false"]).check_frozen_weights is False


def test_check_frozen_weights_false_accepts_a_sam_file_other_than_the_recorded_one(
    demo_run, frozen_files, tmp_path
):
    import torch

    from vrpsam.engine.methods import load_vrpsam
    from vrpsam.modeling.weights import WeightFileError

    state = torch.load(frozen_files[0], map_location="cpu", weights_only=True)
    name = next(iter(state))
    state[name] = state[name] + 1e-3
    other = tmp_path / "other_sam.pth"
    torch.save(state, other)
    asked = dict(name="vrpsam", model={"sam_checkpoint": str(other)},
                 ckpt_path=str(demo_run["ckpt"]))  # fmt: skip
    with pytest.raises(WeightFileError, match="check_frozen_weights=false for vrpsam-eval"):
        load_vrpsam(**asked)
    loaded = load_vrpsam(**asked, check_frozen_weights=False)
    assert loaded.info["sam_checkpoint"] == str(other)


# ---------------------------------------------------------------------------------- README

COMMANDS = {
    "vrpsam-train": ("train",),
    "vrpsam-eval": ("eval",),
    "vrpsam-export": ("export",),
    "vrpsam-predict": ("predict",),
    "vrpsam-cache": ("build_cache",),
    "scripts/run_folds.sh": ("train", "eval"),  # overrides go to both
}
ANY_COMMAND = ("train", "eval", "predict", "export", "build_cache")
# Spans that look like overrides but are not typed on a vrpsam command line.
NOT_OVERRIDES = {
    "torch==2.14.1 torchvision==0.29.1": "pip pins",
    "requires_grad=False": "a PyTorch attribute",
    "scribble=": "a keyword of VRPSAMPredictor.set_reference",
}
PLACEHOLDER = re.compile(r"\.\.\.|[<>|*]")
OVERRIDE = re.compile(r"^\+{0,2}[a-z_][\w./]*=[^=]*$")


def readme_forms() -> list[tuple[tuple[str, ...], str]]:
    """(configs it is for, override) for every override the README shows."""
    text = README.read_text()
    spans = re.findall(r"`([^`\n]+)`", text)
    spans += [line for block in re.findall(r"```bash\n(.*?)```", text, re.S)
              for line in block.replace("\\\n", " ").splitlines()]  # fmt: skip
    forms = []
    for span in spans:
        if span in NOT_OVERRIDES:
            continue
        command = re.search(r"(vrpsam-\w+|scripts/run_folds\.sh)\s+(.*)", span)
        if command and command.group(1) in COMMANDS:
            configs, tokens = COMMANDS[command.group(1)], shlex.split(command.group(2))
        elif all(OVERRIDE.match(t) for t in span.split()) and "=" in span:
            configs, tokens = ANY_COMMAND, span.split()
        else:
            continue
        forms += [(configs, token) for token in tokens if OVERRIDE.match(token)]
    return forms


def found_in_a_group_option(key: str) -> bool:
    """``method.threshold``: a key of some option of the group ``method`` (method=gpsam)."""
    group, _, rest = key.partition(".")
    folder = CONF / group
    return folder.is_dir() and any(
        has_key(OmegaConf.load(option), rest) for option in folder.glob("*.yaml")
    )


def has_key(cfg, key: str) -> bool:
    """``key`` (dotted) is in ``cfg``, whatever its value (unresolved, missing or null)."""
    node = cfg
    for part in key.split("."):
        if not OmegaConf.is_dict(node) or part not in list(node):  # `in` skips ??? values
            return False
        node = node._get_node(part)
    return True


def works(override: str, cfg) -> bool:
    """Hydra would take ``override`` on this config: its grammar parses and its key exists (a
    value) or its option file does (a group choice)."""
    key, _, value = override.lstrip("+").partition("=")
    parsed = OverridesParser.create().parse_override(PLACEHOLDER.sub("X", override))
    if parsed.is_add():
        return True
    if (CONF / key).is_dir():
        return bool(PLACEHOLDER.search(value)) or (CONF / key / f"{value}.yaml").is_file()
    return has_key(cfg, key) or found_in_a_group_option(key)


def test_every_override_the_readme_shows_works_as_written():
    forms = readme_forms()
    assert len(forms) > 60  # the scan finds the README's forms
    bases = {name: composed(name, []) for name in ANY_COMMAND}
    refused = [
        (configs, form)
        for configs, form in forms
        if not any(works(form, bases[name]) for name in configs)
    ]
    assert refused == []


def test_the_readme_check_refuses_what_hydra_refuses():
    cfg = composed("eval", [])
    assert not works("data.source_options.no_such_option=1", cfg)
    assert not works("experiment=no_such_experiment", cfg)
    assert works("+data.source_options.cache_dir=C", cfg)
