"""Which frozen SAM and backbone files a trained VRP encoder belongs to, and finding them again.

A VRP encoder only works on the frozen weights it was trained with. Training records, for each
frozen part, the file's path, name and SHA-256 (``None`` for random weights); checkpoints and
exports carry that record. Loading then takes, in this order: a file the caller names (its hash
must match), the recorded path when it still exists and its hash matches; otherwise it refuses,
naming the file and the argument or config key that gives it. Random frozen weights replace a
recorded file only when the caller asks for them by name (``random_frozen_weights``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from vrpsam.artifacts.atomic import sha256_file
from vrpsam.modeling.weights import WeightFileError

logger = logging.getLogger(__name__)

KINDS = ("sam", "backbone")
_WHAT = {"sam": "SAM", "backbone": "backbone"}


class FrozenWeightsError(FileNotFoundError):
    """A recorded frozen weight file is neither given nor found where it was."""


def fingerprint(path: str | Path | None) -> dict[str, str] | None:
    """``{"path", "file", "sha256"}`` of a frozen weight file; None for random weights."""
    if path is None:
        return None
    path = Path(path).expanduser().resolve()
    return {"path": str(path), "file": path.name, "sha256": sha256_file(path)}


def record(sam_checkpoint: str | Path | None, backbone_checkpoint: str | Path | None) -> dict:
    """The record a training run stores: ``{"sam": fingerprint, "backbone": fingerprint}``."""
    return {"sam": fingerprint(sam_checkpoint), "backbone": fingerprint(backbone_checkpoint)}


def resolve(
    kind: str,
    *,
    given: str | Path | None,
    recorded: dict[str, Any] | None,
    source: str,
    keys: str,
    random_frozen_weights: bool = False,
    check_hash: bool = True,
) -> str | None:
    """The frozen weight file to build ``kind`` ("sam" or "backbone") from, or None for random.

    Args:
        kind: ``"sam"`` or ``"backbone"``.
        given: a file the caller names (None: not given).
        recorded: the training record of this part (None: trained on random weights).
        source: what is being loaded, for messages ("export exports/fold0").
        keys: how a user passes the file, for messages ("sam_checkpoint=... (vrpsam-predict)").
        random_frozen_weights: use random weights instead of a recorded file that is missing.
        check_hash: refuse a given file whose SHA-256 differs from the recorded one.

    Raises:
        FrozenWeightsError: the record names a file that is neither given nor found.
        WeightFileError: the given file is not the recorded one.
    """
    what = _WHAT[kind]
    if recorded is None:
        if given is not None:
            warnings.warn(
                f"{source} was trained on a random-weight {what}; loading it onto {given} gives a "
                "model that was never trained for it",
                stacklevel=2,
            )
        return None if given is None else str(given)
    if given is not None:
        if check_hash and recorded.get("sha256"):
            actual = sha256_file(given)
            if actual != recorded["sha256"]:
                raise WeightFileError(
                    f"{source} was trained on {what} weights {recorded['file']} (sha256 "
                    f"{recorded['sha256'][:12]}…), but {given} differs (sha256 {actual[:12]}…). "
                    "The VRP encoder only works with the frozen weights it was trained with: pass "
                    "that file (or override: check_frozen_weights=false for vrpsam-eval and "
                    "vrpsam-predict, check_frozen_weights=False in Python)."
                )
        return str(given)
    path = recorded.get("path")
    expected = recorded.get("sha256")
    if path and Path(path).is_file() and expected in (None, sha256_file(path)):
        logger.info("%s: %s weights from the recorded file %s", source, what, path)
        return str(path)
    if random_frozen_weights:
        warnings.warn(
            f"{source}: random {what} weights instead of {recorded['file']}, as asked "
            "(random_frozen_weights): its masks mean nothing",
            stacklevel=2,
        )
        return None
    where = f"it was at {path}, which " + ("differs now" if path and Path(path).is_file() else
                                           "no longer exists")  # fmt: skip
    digest = f" (sha256 {expected[:12]}…)" if expected else ""
    raise FrozenWeightsError(
        f"{source} was trained on the {what} weight file {recorded['file']}{digest}; {where}. "
        f"Give that file with {keys}. Running on random {what} weights would give meaningless "
        "masks; ask for it by name with random_frozen_weights=true if that is what you want."
    )


def record_from_paths(info: dict) -> dict:
    """The record of run info written before records existed: the paths, without hashes."""
    out: dict[str, dict | None] = {}
    for kind in KINDS:
        path = info.get(f"{kind}_checkpoint")
        out[kind] = {"path": str(path), "file": Path(path).name, "sha256": None} if path else None
    return out
