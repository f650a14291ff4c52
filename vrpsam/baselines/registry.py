"""Build any evaluated method from the evaluation config (``vrpsam-eval method=<name>``).

The frozen parts come from the same ``model.*`` keys VRP-SAM uses (``model.sam``,
``model.sam_checkpoint``, ``model.backbone``, ...), so a comparison runs every method on the same
SAM; each baseline's own settings live under ``baselines.<name>`` in ``conf/eval.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from vrpsam.baselines.base import FewShotMethod
from vrpsam.modeling.backbones import build_backbone
from vrpsam.modeling.sam import FrozenSam, build_sam
from vrpsam.modeling.switches import ModelSwitches

BASELINES = ("gpsam", "persam", "persam_f", "matcher")


def _required(cfg: DictConfig, key: str, method: str) -> str:
    value = cfg.model.get(key)
    if value is None:
        raise ValueError(
            f"method={method} needs model.{key}: pick the frozen model it runs on, e.g. "
            f"model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth model.backbone=resnet50 "
            f"(or an experiment=... that sets them)"
        )
    return value


def _kwargs(value) -> dict:
    return dict(OmegaConf.to_container(value, resolve=True)) if value else {}


def frozen_sam(cfg: DictConfig, method: str) -> FrozenSam:
    """The SAM every method shares, from ``model.sam*`` and the model's switches."""
    switches = ModelSwitches.resolve(
        official_compat=cfg.model.get("official_compat", False),
        sam_preprocess=cfg.model.get("sam_preprocess"),
        align_corners=cfg.model.get("align_corners"),
    )
    return build_sam(
        _required(cfg, "sam", method),
        checkpoint=cfg.model.get("sam_checkpoint"),
        preprocess=switches.sam_preprocess,
        align_corners=switches.align_corners,
        **_kwargs(cfg.model.get("sam_kwargs")),
    )


def _gpsam(cfg: DictConfig, settings: dict) -> FewShotMethod:
    from vrpsam.baselines.gpsam import GPSAM

    backbone = build_backbone(
        _required(cfg, "backbone", "gpsam"),
        checkpoint=cfg.model.get("backbone_checkpoint"),
        **_kwargs(cfg.model.get("backbone_kwargs")),
    )
    return GPSAM(backbone, frozen_sam(cfg, "gpsam"), **settings)


def _persam(cfg: DictConfig, settings: dict) -> FewShotMethod:
    from vrpsam.baselines.persam import PerSAM

    return PerSAM(frozen_sam(cfg, "persam"), **settings)


def _persam_f(cfg: DictConfig, settings: dict) -> FewShotMethod:
    from vrpsam.baselines.persam import PerSAMF

    return PerSAMF(frozen_sam(cfg, "persam_f"), **settings)


def _matcher(cfg: DictConfig, settings: dict) -> FewShotMethod:
    from vrpsam.baselines.matcher import Matcher

    encoder_name = settings.pop("encoder")
    encoder = build_backbone(
        encoder_name,
        checkpoint=settings.pop("encoder_checkpoint", None),
        **(settings.pop("encoder_kwargs", None) or {}),
    )
    return Matcher(encoder, frozen_sam(cfg, "matcher"), **settings)


_BUILDERS: dict[str, Callable[[DictConfig, dict], FewShotMethod]] = {
    "gpsam": _gpsam,
    "persam": _persam,
    "persam_f": _persam_f,
    "matcher": _matcher,
}


def build_baseline(cfg: DictConfig) -> FewShotMethod:
    """The baseline ``cfg.method`` names, with its ``cfg.baselines.<name>`` settings."""
    name = cfg.method
    if name not in _BUILDERS:
        raise ValueError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    settings = _kwargs(cfg.get("baselines", {}).get(name))
    return _BUILDERS[name](cfg, settings).eval()
