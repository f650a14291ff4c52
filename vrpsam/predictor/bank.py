"""Many classes at once: a bank of annotated references per class name, saved and reused.

>>> predictor = VRPSAMPredictor.from_export("export/", sam_checkpoint=..., backbone_checkpoint=...)
>>> bank = ReferenceBank(predictor)
>>> bank.add("cat", "cat1.jpg", mask="cat1.png")
>>> bank.add("cat", "cat2.jpg", box=(10, 20, 200, 180))       # a second shot of "cat"
>>> bank.add("dog", "dog.jpg", points=[(120, 80)])
>>> bank.save("bank/")                                         # features computed once, kept
>>> bank = ReferenceBank.load("bank/", predictor)              # refused for other model weights
>>> result = bank.segment("street.jpg")    # result.labels, result.scores, result.present

Each class is one k-shot reference (all its shots together). The target's frozen features are
computed once for all classes, each class gets its own prompts and SAM decode, and the per-class
logits are merged by :func:`vrpsam.baselines.multiclass.merge_labels` (highest positive logit
wins) among the classes whose presence score (:func:`~vrpsam.baselines.multiclass.presence_scores`)
reaches :attr:`ReferenceBank.presence_threshold`. Choose that threshold on labelled *validation*
images with :func:`choose_presence_threshold`, never on the images you report results on.

A bank is tied to the weights it was computed with: ``bank.json`` holds a fingerprint (sha256 of
the loaded SAM, backbone and VRP-encoder weights, plus the architecture and input size) and
loading refuses a bank whose fingerprint differs from the model's, naming what differs. Training-
free baselines get a bank through :class:`MethodBank` (references are kept and re-prepared).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vrpsam import __version__
from vrpsam.artifacts.atomic import atomic_write, atomic_write_json, sha256_file
from vrpsam.baselines.multiclass import choose_threshold, merge_labels, presence_scores
from vrpsam.predictor.bank_models import MethodBank, PredictorModel
from vrpsam.predictor.core import VRPSAMPredictor
from vrpsam.predictor.inputs import ImageLike, MaskLike, Polylines, load_rgb

BANK_FORMAT = 1
TENSORS_FILE = "bank.safetensors"
INFO_FILE = "bank.json"
MAX_CLASSES = 255  # label maps are 8-bit palette PNGs
_KINDS = {"mask": "mask", "box": "box", "points": "point", "scribble": "scribble"}
_REBUILD = "vrpsam-bank build --export EXPORT --refs DIR --out BANK_DIR"


class BankError(ValueError):
    """A bank folder that cannot be used as it is (incomplete, damaged, another format)."""


class BankMismatchError(BankError):
    """A bank built for other model weights (or another method) than the one loading it."""


@dataclass
class BankResult:
    """What :meth:`ReferenceBank.segment` finds in one image.

    Attributes:
        labels: (H, W) int64 at the image's size; 0 = background, i + 1 = ``classes[i]``.
        scores: class name → presence score in [0, 1].
        present: the classes whose score reaches the bank's threshold, in bank order.
    """

    labels: np.ndarray
    scores: dict[str, float]
    present: list[str]


def choose_presence_threshold(
    scores_present: Sequence[float], scores_absent: Sequence[float]
) -> float:
    """The presence threshold that tells labelled validation pairs apart best; see
    :func:`presence_choice` (which also says how well it does)."""
    return presence_choice(scores_present, scores_absent)["threshold"]


def presence_choice(
    scores_present: Sequence[float], scores_absent: Sequence[float]
) -> dict[str, float | int | None]:
    """The rule of ``task=semantic`` (:func:`~vrpsam.baselines.multiclass.choose_threshold`:
    best F1 over the (image, class) pairs, ties by accuracy) with the threshold clipped to
    [0, 1], and the F1, accuracy and AUC of the pairs.

    Score *validation* images (not the test images you report on: a threshold picked there
    inflates the result) with ``bank.segment(image).scores`` and split the (image, class) scores
    by whether the class is really in the image (``vrpsam-bank calibrate`` does all of it).

    Args:
        scores_present: scores of classes that are in their image.
        scores_absent: scores of classes that are not.

    Returns:
        ``threshold`` t in [0, 1] (present iff score >= t; a score of exactly 1 is always
        claimed, as a bank's threshold cannot exceed 1), ``f1``, ``accuracy`` (fractions),
        ``pairs`` and ``auc``.
    """
    present = torch.as_tensor(list(scores_present), dtype=torch.float64)
    absent = torch.as_tensor(list(scores_absent), dtype=torch.float64)
    truth = torch.cat([torch.ones(len(present)), torch.zeros(len(absent))]).bool()
    chosen = choose_threshold(torch.cat([present, absent]), truth)
    return {**chosen, "threshold": min(max(chosen["threshold"], 0.0), 1.0)}


@dataclass
class _Class:
    images: list[torch.Tensor]
    masks: list[torch.Tensor]
    kinds: list[str]
    state: Any = None


class ReferenceBank:
    """Annotated references per class name; segments every class of the bank in an image.

    Args:
        model: a :class:`VRPSAMPredictor` (its model, transform and target-feature cache are
            used; its own reference is left alone) or a :class:`MethodBank`.
        presence_threshold: a class is present in an image when its presence score reaches this
            (choose it on validation images with :func:`choose_presence_threshold`).
        model_files: what the model was loaded from, kept in ``bank.json`` to name it in
            messages (e.g. the export's frozen-file names and sha256s); not compared.
    """

    def __init__(
        self,
        model: VRPSAMPredictor | MethodBank,
        *,
        presence_threshold: float = 0.5,
        model_files: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model if isinstance(model, MethodBank) else PredictorModel(model)
        self.presence_threshold = presence_threshold
        self.model_files = dict(model_files or {})
        self._classes: dict[str, _Class] = {}

    @property
    def presence_threshold(self) -> float:
        return self._threshold

    @presence_threshold.setter
    def presence_threshold(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"presence_threshold must lie in [0, 1], got {value!r}")
        self._threshold = float(value)

    @property
    def classes(self) -> list[str]:
        """Class names in insertion order; class ``classes[i]`` has label ``i + 1``."""
        return list(self._classes)

    @property
    def shots(self) -> dict[str, int]:
        """Class name → number of annotated references."""
        return {name: len(entry.images) for name, entry in self._classes.items()}

    def add(
        self,
        class_name: str,
        image: ImageLike,
        *,
        mask: MaskLike | None = None,
        box: Sequence[float] | None = None,
        points: np.ndarray | Sequence[Sequence[float]] | None = None,
        scribble: MaskLike | Polylines | None = None,
        stroke_width: int = 3,
    ) -> None:
        """Add an annotated reference of ``class_name`` (a new class or another shot of one).

        The image and annotation are those of :meth:`VRPSAMPredictor.add_reference` (exactly one
        of ``mask``, ``box``, ``points``, ``scribble``). A refused call changes nothing.
        """
        if not isinstance(class_name, str) or not class_name.strip():
            raise ValueError(f"a class name is a non-empty string, got {class_name!r}")
        if class_name not in self._classes and len(self._classes) >= MAX_CLASSES:
            raise ValueError(f"a bank holds at most {MAX_CLASSES} classes (8-bit label maps)")
        annotation = dict(mask=mask, box=box, points=points, scribble=scribble)
        kinds = [_KINDS[k] for k, v in annotation.items() if v is not None]
        image_tensor, mask_tensor = self.model.shot(image, **annotation, stroke_width=stroke_width)
        entry = self._classes.get(class_name)
        self.model.check_kinds([*(entry.kinds if entry else []), *kinds])
        if entry is None:
            entry = self._classes[class_name] = _Class([], [], [])
        entry.images.append(image_tensor)
        entry.masks.append(mask_tensor)
        entry.kinds += kinds
        entry.state = None

    def _states(self) -> list:
        if not self._classes:
            raise RuntimeError("the bank is empty: add a class with bank.add(name, image, ...)")
        for entry in self._classes.values():
            if entry.state is None:
                entry.state = self.model.prepare(
                    torch.stack(entry.images), torch.stack(entry.masks), entry.kinds
                )
        return [entry.state for entry in self._classes.values()]

    def segment(self, image: ImageLike) -> BankResult:
        """Every class of the bank in one image; see :meth:`segment_batch`."""
        return self.segment_batch([image])[0]

    def segment_batch(
        self, images: Sequence[ImageLike], progress: Callable[[int, int], None] | None = None
    ) -> list[BankResult]:
        """Every class of the bank in each image, the model's batch size at a time.

        Args:
            images: as :func:`load_rgb` reads them (paths, PIL images or arrays).
            progress: called with (images done, images) after each batch.

        Returns:
            one :class:`BankResult` per image.
        """
        states = self._states()
        shots, names = list(self.shots.values()), self.classes
        images, results = list(images), []
        for start in range(0, len(images), self.model.batch_size):
            chunk = images[start : start + self.model.batch_size]
            rgbs = [load_rgb(image, what="target image") for image in chunk]
            logits = self.model.logits(states, shots, rgbs)  # (C, N, S, S)
            scores = presence_scores(logits).cpu()  # (C, N)
            for n, rgb in enumerate(rgbs):
                full = F.interpolate(
                    logits[:, n : n + 1], size=rgb.shape[:2], mode="bilinear", align_corners=False
                )[:, 0]
                present = scores[:, n] >= self.presence_threshold
                labels = merge_labels(full, range(1, len(names) + 1), present)
                results.append(
                    BankResult(
                        labels=labels.cpu().numpy(),
                        scores={c: float(s) for c, s in zip(names, scores[:, n], strict=True)},
                        present=[c for c, p in zip(names, present, strict=True) if p],
                    )
                )
            if progress is not None:
                progress(len(results), len(images))
        return results

    def save(self, folder: str | Path) -> Path:
        """Write ``bank.safetensors`` and ``bank.json`` into ``folder`` (each atomically).

        The references' features are computed here (once) and stored with the model-size
        reference images and masks (``<i>.images``, ``<i>.masks``, ``<i>.state.<field>`` of
        class i). ``bank.json`` holds ``format``, ``vrpsam_version``, ``classes``, ``shots``,
        ``annotations`` (the kind of each shot), ``presence_threshold``, ``image_size``,
        ``fingerprint`` (compared on load), ``model_files`` (what the model was loaded from, for
        messages) and ``tensors_sha256`` (so a half-replaced bank is detected).
        """
        from safetensors.torch import save_file

        states, folder = self._states(), Path(folder)
        tensors: dict[str, torch.Tensor] = {}
        for i, (entry, state) in enumerate(zip(self._classes.values(), states, strict=True)):
            tensors[f"{i}.images"] = torch.stack(entry.images)
            tensors[f"{i}.masks"] = torch.stack(entry.masks).to(torch.uint8)
            if self.model.saves_state:
                for name, value in self.model.state_tensors(state).items():
                    tensors[f"{i}.state.{name}"] = value
        # Own contiguous CPU copies: safetensors refuses tensors that share memory.
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        atomic_write(folder / TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp)))
        info = {
            "format": BANK_FORMAT,
            "vrpsam_version": __version__,
            "classes": self.classes,
            "shots": list(self.shots.values()),
            "annotations": [entry.kinds for entry in self._classes.values()],
            "presence_threshold": self.presence_threshold,
            "image_size": self.model.image_size,
            "fingerprint": self.model.fingerprint(),
            "model_files": self.model_files,
            "tensors_sha256": sha256_file(folder / TENSORS_FILE),
        }
        atomic_write_json(folder / INFO_FILE, info, indent=2)
        return folder

    @classmethod
    def load(cls, folder: str | Path, model: VRPSAMPredictor | MethodBank) -> ReferenceBank:
        """A saved bank around ``model``, refused when it was built for other weights.

        Raises:
            FileNotFoundError: the folder or one of its two files is missing.
            BankError: a damaged or half-written bank, or another format.
            BankMismatchError: the bank's fingerprint differs from the model's (names the
                differences and how to rebuild).
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        info = read_bank_info(folder)
        bank = cls(model, presence_threshold=info["presence_threshold"],
                   model_files=info.get("model_files"))  # fmt: skip
        check_fingerprint(info, bank.model.fingerprint(), folder)
        path = folder / TENSORS_FILE
        if sha256_file(path) != info.get("tensors_sha256"):
            raise BankError(f"{path} is not the file {folder / INFO_FILE} describes: " + _DAMAGED)
        try:
            tensors = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise BankError(f"cannot read {path} ({err}): {_DAMAGED}") from None
        for i, name in enumerate(info["classes"]):
            entry = _Class(list(tensors[f"{i}.images"]), list(tensors[f"{i}.masks"].float()),
                           list(info["annotations"][i]))  # fmt: skip
            prefix = f"{i}.state."
            saved = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if bank.model.saves_state and saved:
                entry.state = bank.model.state_from_tensors(saved)
            bank._classes[name] = entry
        return bank


_DAMAGED = f"the bank is incomplete or damaged; build it again with `{_REBUILD}`"


def read_bank_info(folder: str | Path) -> dict:
    """``bank.json`` of a bank folder, checked for presence, syntax and format (no model needed,
    so a command can refuse a bad bank before loading a model)."""
    folder = Path(folder)
    for name in (INFO_FILE, TENSORS_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"bank folder {folder} has no {name}; build a bank with `{_REBUILD}`"
            )
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BankError(f"{folder / INFO_FILE} is not valid JSON ({err}): {_DAMAGED}") from None
    if not isinstance(info, dict) or info.get("format") != BANK_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise BankError(
            f"{folder / INFO_FILE}: bank format {found!r} is not {BANK_FORMAT}; build the bank "
            f"again with this vrpsam version: `{_REBUILD}`"
        )
    keys = ("classes", "shots", "annotations", "presence_threshold", "fingerprint")
    if any(key not in info for key in keys):
        raise BankError(f"{folder / INFO_FILE} lacks {[k for k in keys if k not in info]}: "
                        + _DAMAGED)  # fmt: skip
    return info


def store_presence_threshold(folder: str | Path, threshold: float, chosen_on: dict) -> None:
    """Set a saved bank's presence threshold (``bank.json`` rewritten atomically), recording the
    validation it was chosen on (``presence_threshold_chosen_on``)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"presence_threshold must lie in [0, 1], got {threshold!r}")
    folder = Path(folder)
    info = read_bank_info(folder)
    info["presence_threshold"] = float(threshold)
    info["presence_threshold_chosen_on"] = chosen_on
    atomic_write_json(folder / INFO_FILE, info, indent=2)


def check_fingerprint(info: dict, expected: dict, folder: Path) -> None:
    """Refuse a bank built for other weights, naming each differing part and the fix."""
    found = info["fingerprint"]
    keys = sorted(set(found) | set(expected))
    diffs = [f"{k}: {_short(found.get(k))} (bank) vs {_short(expected.get(k))} (this model)"
             for k in keys if found.get(k) != expected.get(k)]  # fmt: skip
    if diffs:
        built = info.get("model_files") or {}
        on = f" It was built on {json.dumps(built, sort_keys=True)}." if built else ""
        raise BankMismatchError(
            f"the bank at {folder} was built for another model: "
            + "; ".join(diffs)
            + "."
            + on
            + " Its features only fit that model: rebuild the bank for this one with "
            f"`{_REBUILD}` (or load it with the model it was built for)."
        )


def export_files(export_dir: str | Path) -> dict:
    """What a bank of an export's model is built on, for ``bank.json`` (``model_files``): the
    export's folder name and the frozen files it records (name and sha256, no paths)."""
    from vrpsam.artifacts.exports import export_frozen_record, read_export_config

    record = export_frozen_record(read_export_config(export_dir))
    files = {kind: None if entry is None else {"file": entry["file"], "sha256": entry["sha256"]}
             for kind, entry in record.items()}  # fmt: skip
    return {"export": Path(export_dir).resolve().name, **files}


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return f"sha256 {value[:12]}…"
    return repr(value)
