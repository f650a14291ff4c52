"""Builders of the training-free methods, the ``_target_`` of ``conf/method/<name>.yaml``.

Every method runs on the frozen parts the run's ``model.*`` config names (``model.sam``,
``model.sam_checkpoint``, ``model.backbone``, ...), so a comparison runs every method on the same
SAM; the SAM's input switches come from the protocol through the model config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vrpsam.baselines.base import FewShotMethod
from vrpsam.conf import as_dict
from vrpsam.modeling.backbones import build_backbone
from vrpsam.modeling.sam import FrozenSam, build_sam
from vrpsam.modeling.switches import ModelSwitches


def _required(frozen: Mapping, key: str, method: str) -> str:
    value = frozen.get(key)
    if value is None:
        raise ValueError(
            f"method={method} needs model.{key}: pick the frozen model it runs on, e.g. "
            f"model.sam=vit_h model.sam_checkpoint=sam_vit_h_4b8939.pth model.backbone=resnet50 "
            f"(or an experiment=... that sets them)"
        )
    return value


def frozen_sam(frozen: Mapping, method: str) -> FrozenSam:
    """The SAM every method shares, from the model config and its switches."""
    switches = ModelSwitches.resolve(
        official_compat=bool(frozen.get("official_compat")),
        sam_preprocess=frozen.get("sam_preprocess"),
        align_corners=frozen.get("align_corners"),
    )
    return build_sam(
        _required(frozen, "sam", method),
        checkpoint=frozen.get("sam_checkpoint"),
        preprocess=switches.sam_preprocess,
        align_corners=switches.align_corners,
        **as_dict(frozen.get("sam_kwargs")),
    ).eval()


def build_gpsam(*, name: str, frozen: Mapping, **settings: Any) -> FewShotMethod:
    """GP-SAM on the run's frozen backbone and SAM; ``settings``: :class:`GPSAM` arguments."""
    from vrpsam.baselines.gpsam import GPSAM

    backbone = build_backbone(
        _required(frozen, "backbone", name),
        checkpoint=frozen.get("backbone_checkpoint"),
        **as_dict(frozen.get("backbone_kwargs")),
    )
    return GPSAM(backbone=backbone, sam=frozen_sam(frozen, name), **settings).eval()


def build_persam(*, name: str, frozen: Mapping, **settings: Any) -> FewShotMethod:
    """PerSAM on the run's frozen SAM; ``settings``: :class:`PerSAM` arguments."""
    from vrpsam.baselines.persam import PerSAM

    return PerSAM(sam=frozen_sam(frozen, name), **settings).eval()


def build_persam_f(*, name: str, frozen: Mapping, **settings: Any) -> FewShotMethod:
    """PerSAM-F on the run's frozen SAM; ``settings``: :class:`PerSAMF` arguments."""
    from vrpsam.baselines.persam import PerSAMF

    return PerSAMF(sam=frozen_sam(frozen, name), **settings).eval()


def build_matcher(
    *,
    name: str,
    frozen: Mapping,
    encoder: str,
    encoder_checkpoint: str | None = None,
    encoder_kwargs: Mapping | None = None,
    settings: Mapping | None = None,
) -> FewShotMethod:
    """Matcher: its patch encoder (a DINOv2, or any backbone of the model builders) and the run's
    frozen SAM; ``settings``: :class:`~vrpsam.baselines.matcher.Matcher` arguments."""
    from vrpsam.baselines.matcher import Matcher

    return Matcher(
        encoder=_encoder(encoder, encoder_checkpoint, encoder_kwargs),
        sam=frozen_sam(frozen, name),
        **as_dict(settings),
    ).eval()


def build_rim(
    *,
    name: str,
    frozen: Mapping,
    encoder: str,
    encoder_checkpoint: str | None = None,
    encoder_kwargs: Mapping | None = None,
    settings: Mapping | None = None,
) -> FewShotMethod:
    """RIM: its feature extractor (a DINOv2, or any backbone of the model builders) and the run's
    frozen SAM; ``settings``: :class:`~vrpsam.baselines.rim.RIM` arguments."""
    from vrpsam.baselines.rim import RIM

    return RIM(
        encoder=_encoder(encoder, encoder_checkpoint, encoder_kwargs),
        sam=frozen_sam(frozen, name),
        **as_dict(settings),
    ).eval()


def _encoder(name: str, checkpoint: str | None, kwargs: Mapping | None):
    """The patch-feature extractor of Matcher and RIM (``encoder*`` keys of their configs)."""
    return build_backbone(name, checkpoint=checkpoint, **as_dict(kwargs))
