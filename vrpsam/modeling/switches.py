"""The behaviours of the model itself in which vrpsam differs from the official VRP-SAM code.

Each difference is a named switch (DESIGN §3); :meth:`ModelSwitches.official` restores the official
code's behaviour in all of them at once, which is what ``build_vrp_sam(official_compat=True)``
selects. The default is the fixed behaviour. The switches of the loss, the episode sampling, the
scoring and the model selection belong to the run, not to the model: see
:mod:`vrpsam.engine.protocol`, which holds every switch (these four included) and stores them in
checkpoints and exports.

=========================  ======================  ===========================  ==================
switch                     default (fixed)         official code                read by
=========================  ======================  ===========================  ==================
``mask_downsample``        ``"max"``: point        ``"nearest"``: 20 points     VRP encoder
                           references survive      mostly vanish at 64×64
``sam_preprocess``         ``"longest_side"``      ``"squash"`` to 1024         SAM wrapper
                           + pad (SAM's own)       (aspect distorted)
``align_corners``          False                   True (resizes into/out of    SAM wrapper
                                                   SAM)
``pseudo_mask_minmax``     False                   False                        VRP encoder
=========================  ======================  ===========================  ==================

``pseudo_mask_minmax`` is not a defect switch: the official code does not min-max normalise the
pseudo-mask although the paper's appendix says it does. The official behaviour (False) is the
default because the published numbers were produced with it; True follows the appendix/PFENet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from vrpsam.modeling.sam import PREPROCESS_MODES as SAM_PREPROCESS_MODES
from vrpsam.modeling.vrp_encoder import MASK_DOWNSAMPLE_MODES


@dataclass(frozen=True)
class ModelSwitches:
    """The model's behaviour switches (see the module docstring)."""

    mask_downsample: str = "max"
    sam_preprocess: str = "longest_side"
    align_corners: bool = False
    pseudo_mask_minmax: bool = False

    def __post_init__(self) -> None:
        if self.mask_downsample not in MASK_DOWNSAMPLE_MODES:
            raise ValueError(
                f"mask_downsample must be one of {MASK_DOWNSAMPLE_MODES}, got "
                f"{self.mask_downsample!r}"
            )
        if self.sam_preprocess not in SAM_PREPROCESS_MODES:
            raise ValueError(
                f"sam_preprocess must be one of {SAM_PREPROCESS_MODES}, got {self.sam_preprocess!r}"
            )

    @classmethod
    def official(cls) -> ModelSwitches:
        """The official code's behaviour in every model switch."""
        return cls(
            mask_downsample="nearest",
            sam_preprocess="squash",
            align_corners=True,
            pseudo_mask_minmax=False,
        )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def resolve(cls, *, official_compat: bool = False, **overrides) -> ModelSwitches:
        """Defaults (or the official set), then any explicit non-None override on top."""
        base = cls.official() if official_compat else cls()
        unknown = set(overrides) - set(cls.names())
        if unknown:
            raise ValueError(f"unknown model switches {sorted(unknown)}; known: {cls.names()}")
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict:
        return asdict(self)
