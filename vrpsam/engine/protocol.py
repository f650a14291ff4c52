"""The evaluation protocol: every behaviour switch of a run, in one object.

VRP-SAM numbers can only be set beside the literature's when the whole protocol is known: the
model's switches (:mod:`vrpsam.modeling.switches`), the loss, how episodes are sampled, how
predictions are scored and how the checkpoint is selected. A :class:`Protocol` holds all of them;
the config group ``protocol=default|official`` (``conf/protocol/*.yaml``) sets them at once and
each can be overridden on its own (``protocol.score_original_size=false``). The protocol in effect
is stored in checkpoints and exports, restored by ``vrpsam-eval`` and written to ``eval.json``.
``docs/protocol.md`` has one row per switch: the paper, the official code, hsnet, our default.

Episode sampling rules (values of ``train_sampling`` / ``test_sampling``):

* training: ``image`` walks the shuffled training images and draws one of the image's listed
  classes; ``image_present`` does the same over every class *present* in the image at any size (the
  official PASCAL loader); ``class`` draws the class uniformly, then an image of it (the official
  and hsnet COCO loaders).
* test: ``balanced`` gives every class an equal share of the episodes; ``pairs`` cycles through the
  fold's (image, class) test pairs in list order, any object size (hsnet); ``images`` cycles through
  the test images in list order and draws one of the novel classes present (the official PASCAL
  loader); ``uniform`` draws the class uniformly, then the target (official and hsnet COCO).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from vrpsam.conf import as_dict
from vrpsam.modeling.switches import ModelSwitches

PROTOCOL_NAMES = ("default", "official")
TRAIN_SAMPLING = ("image", "image_present", "class")
TEST_SAMPLING = ("balanced", "pairs", "images", "uniform")
TEST_SCRIBBLES = ("per_episode", "fixed")
RANK_EPISODES = ("unique", "same")
SELECT_ON = ("val", "test")

# Switches whose value is an episode rule of the dataset's literature: a checkpoint evaluated on
# another dataset takes that dataset's rule under the recorded protocol name.
DATASET_RULES = ("train_sampling", "test_sampling", "rank_episodes")


@dataclass(frozen=True)
class Protocol:
    """Every behaviour switch of a run (see the module docstring and ``docs/protocol.md``).

    Attributes:
        name: ``default``, ``official``, or ``custom`` when switches were changed after loading.
        mask_downsample, sam_preprocess, align_corners, pseudo_mask_minmax: model switches.
        loss_ignore_index: label the loss ignores (None: 255 boundaries count as background).
        train_sampling: training episode rule.
        train_exclude_novel: leave out training images that hold a novel class (BAM's lists).
        test_sampling: test episode rule.
        test_scribble: ``per_episode`` draws the stroke count and preset per test episode;
            ``fixed`` uses the official code's ``Random(321)`` draw for every episode.
        rank_episodes: ``unique`` shards training episodes across processes; ``same`` gives every
            process the same episodes (the official COCO multi-GPU run).
        score_original_size: score at each target's original size (else at the network size).
        select_on: ``val`` selects the checkpoint on held-out base-class episodes; ``test`` trains
            on every training image and selects on the test episodes (the official code).
    """

    name: str
    mask_downsample: str
    sam_preprocess: str
    align_corners: bool
    pseudo_mask_minmax: bool
    loss_ignore_index: int | None
    train_sampling: str
    train_exclude_novel: bool
    test_sampling: str
    test_scribble: str
    rank_episodes: str
    score_original_size: bool
    select_on: str

    def __post_init__(self) -> None:
        choices = {
            "train_sampling": TRAIN_SAMPLING,
            "test_sampling": TEST_SAMPLING,
            "test_scribble": TEST_SCRIBBLES,
            "rank_episodes": RANK_EPISODES,
            "select_on": SELECT_ON,
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                value, options = getattr(self, key), ", ".join(allowed)
                raise ValueError(f"protocol.{key} must be one of {options}; got {value!r}")
        if self.loss_ignore_index is not None and not 0 <= int(self.loss_ignore_index) <= 255:
            raise ValueError(
                f"protocol.loss_ignore_index must be a label 0..255 or null, got "
                f"{self.loss_ignore_index!r}"
            )
        self.model_switches()  # validates the model switches

    @classmethod
    def switch_names(cls) -> tuple[str, ...]:
        """Every switch, without the name."""
        return tuple(f.name for f in fields(cls) if f.name != "name")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Protocol:
        """A protocol from a config node or a stored dict; extra keys (helper tables) are ignored.

        Raises:
            ValueError: a switch is missing or has a value outside its choices.
        """
        plain = as_dict(values)
        missing = [k for k in ("name", *cls.switch_names()) if plain.get(k) is None]
        missing = [k for k in missing if k != "loss_ignore_index"]
        if missing:
            raise ValueError(
                f"protocol is missing {missing}: choose protocol=default or protocol=official"
            )
        return cls(**{k: plain.get(k) for k in ("name", *cls.switch_names())})

    def model_switches(self) -> ModelSwitches:
        """The switches the model reads (``build_vrp_sam`` arguments)."""
        return ModelSwitches(**{k: getattr(self, k) for k in ModelSwitches.names()})

    def switches(self) -> dict[str, Any]:
        """Every switch value by name (what ``eval.json`` reports under ``"switches"``)."""
        return {k: v for k, v in asdict(self).items() if k != "name"}

    def as_dict(self) -> dict[str, Any]:
        """Name and switches, as stored in checkpoints and exports."""
        return asdict(self)

    def data_options(self) -> dict[str, Any]:
        """The switches the DataModule reads (:func:`vrpsam.data.datamodule.build_datamodule`)."""
        return {
            "val_split": self.select_on,
            "train_sampling": self.train_sampling,
            "train_exclude_novel": self.train_exclude_novel,
            "test_sampling": self.test_sampling,
            "test_scribble": self.test_scribble,
            "rank_episodes": self.rank_episodes,
        }

    def differences(self, other: Protocol) -> dict[str, tuple[Any, Any]]:
        """``{switch: (this value, other value)}`` for every switch that differs."""
        mine, theirs = self.switches(), other.switches()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


def protocol_file(name: str, config_dir: str | Path) -> Path:
    """The config file of a named protocol (``conf/protocol/<name>.yaml``)."""
    if name not in PROTOCOL_NAMES:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOL_NAMES)}, got {name!r}")
    return Path(config_dir) / "protocol" / f"{name}.yaml"


def named_protocol(name: str, dataset: str, config_dir: str | Path) -> Protocol:
    """The ``default`` or ``official`` protocol as its config file sets it for ``dataset``."""
    from omegaconf import OmegaConf

    node = OmegaConf.create({"protocol": OmegaConf.load(protocol_file(name, config_dir)),
                             "data": {"dataset": dataset}})  # fmt: skip
    return Protocol.from_mapping(node.protocol)


def preset_changes(protocol: Protocol, dataset: str, config_dir: str | Path) -> dict[str, Any]:
    """The switches in which ``protocol`` departs from its named preset (``{switch: value}``)."""
    if protocol.name not in PROTOCOL_NAMES:
        return protocol.switches()
    preset = named_protocol(protocol.name, dataset, config_dir)
    return {k: mine for k, (mine, _) in protocol.differences(preset).items()}


def configured_protocol(cfg: Any, config_dir: str | Path) -> Protocol:
    """The protocol a training or caching config sets (``cfg.protocol``).

    ``model.official_compat=true`` is kept as an alias of ``protocol=official``: the config's
    protocol node is replaced by the official one (in place, so that everything interpolated from
    it, the model switches among them, follows).

    Raises:
        ValueError: ``protocol=checkpoint`` (an evaluation setting) or an invalid switch value.
    """
    from omegaconf import OmegaConf, open_dict

    if cfg.model.get("official_compat") and cfg.protocol.get("name") != "official":
        warnings.warn(
            "model.official_compat=true is an alias of protocol=official: every switch takes its "
            "official value; to change one, use protocol=official protocol.<switch>=<value>",
            stacklevel=2,
        )
        with open_dict(cfg):
            cfg.protocol = OmegaConf.load(protocol_file("official", config_dir))
    if cfg.protocol.get("name") is None:
        raise ValueError(
            "protocol=checkpoint takes the switches of a trained checkpoint and is for "
            "vrpsam-eval; train with protocol=default or protocol=official"
        )
    return Protocol.from_mapping(cfg.protocol)


def evaluation_protocol(
    requested: Mapping[str, Any],
    *,
    recorded: Mapping[str, Any] | None,
    recorded_dataset: str | None,
    dataset: str,
    config_dir: str | Path,
) -> tuple[Protocol, dict[str, tuple[Any, Any]]]:
    """The protocol an evaluation runs with, and the overrides that contradict the checkpoint.

    Every switch the evaluation config leaves null (``protocol=checkpoint``, vrpsam-eval's default)
    takes the checkpoint's value; switches it sets win. The episode rules of the dataset's
    literature (:data:`DATASET_RULES`) are re-read for ``dataset`` under the recorded protocol's
    name when the checkpoint was trained on another dataset. Without a recorded protocol (a
    baseline, an untrained model) the base is the default protocol.

    Args:
        requested: the evaluation config's protocol node (values may be None).
        recorded: the protocol stored with the checkpoint or export (``Protocol.as_dict``).
        recorded_dataset: the dataset the checkpoint was trained on.
        dataset: the dataset evaluated.
        config_dir: the package's config folder (for the named presets).

    Returns:
        ``(protocol, contradictions)`` with ``{switch: (checkpoint value, evaluation value)}``.
    """
    keys = ("name", *Protocol.switch_names())
    wanted = {k: v for k, v in as_dict(requested).items() if k in keys}
    if recorded is None:
        base = named_protocol("default", dataset, config_dir).as_dict()
    else:
        base = Protocol.from_mapping(recorded).as_dict()
        if recorded_dataset != dataset and base["name"] in PROTOCOL_NAMES:
            rules = named_protocol(base["name"], dataset, config_dir)
            base.update({k: getattr(rules, k) for k in DATASET_RULES})
    values = {**base, **{k: v for k, v in wanted.items() if v is not None}}
    if wanted.get("loss_ignore_index") is None and wanted.get("name") is not None:
        values["loss_ignore_index"] = None  # a named protocol's null is a value, not "unset"
    protocol = Protocol.from_mapping(values)
    contradictions = {}
    if recorded is not None:
        contradictions = {
            k: (old, new)
            for k, (old, new) in Protocol.from_mapping(base).differences(protocol).items()
        }
    return protocol, contradictions
