"""Segment your own images from one (or a few) annotated references, like SAM's ``SamPredictor``.

>>> predictor = VRPSAMPredictor.from_export("export/", sam_checkpoint="sam_vit_h_4b8939.pth",
...                                         backbone_checkpoint="resnet50_v2.pth")
>>> predictor.set_reference(reference_image, box=(40, 60, 200, 220))   # replaces: one shot
>>> predictor.add_reference(other_image, mask="other_mask.png")          # adds: 2-shot
>>> mask, score, logits = predictor.predict(target_image)

Numpy in and out: images are (H, W, 3) uint8 RGB arrays, PIL images or file paths (see
:func:`load_rgb`), masks come back (H, W) bool at the target's own size. The reference side (its
backbone features and the queries after reference attention) is computed once and reused for
every target; targets given together are processed as one batch; and each target's frozen features
(backbone + SAM embedding) are kept in a small cache keyed by the image's content, so segmenting
the same targets again with another reference skips the frozen encoders.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from vrpsam.data.fileio import image_to_rgb, read_binary_mask, read_rgb, scale_16_to_8
from vrpsam.data.transforms import ResizeNormalize
from vrpsam.modeling.vrp_encoder import ReferenceState
from vrpsam.modeling.vrp_sam import VRPSAM, EmptyReferenceError

ImageLike = np.ndarray | str | Path | Image.Image
MaskLike = np.ndarray | str | Path
Polylines = Sequence[Sequence[Sequence[float]]]

# What the predictor can read; the errors for user files point here rather than at a dataset.
READABLE = "give a JPEG, PNG, BMP, TIFF or WebP image"


def load_rgb(image: ImageLike, *, what: str = "image") -> np.ndarray:
    """An 8-bit RGB array from a file path, a PIL image or a numpy array; never a silent guess.

    Files and PIL images are read by :func:`vrpsam.data.fileio.read_rgb` with their EXIF
    orientation applied (the array matches what a viewer shows): 8-bit RGB, grey, 1-bit, palette,
    ``LA``, ``RGBA`` (alpha dropped), ``CMYK`` and 16-bit grey (scaled by 1/257) are read; float
    and other unusual modes are refused. Arrays may be (H, W) grey, (H, W, 1), (H, W, 3) RGB or
    (H, W, 4) RGBA (alpha dropped), as uint8 0..255 or uint16 0..65535 (scaled by 1/257).

    Args:
        image: a path, a PIL image or an array as above.
        what: how errors name the image ("reference image", "target image").

    Returns:
        ``uint8`` array of shape (H, W, 3).

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageReadError: a file that cannot be decoded or has an unsupported mode (a ValueError).
        ValueError: an array of another dtype (float, bool, int64, ...) or shape.
    """
    if isinstance(image, str | Path):
        return read_rgb(
            image,
            exif_orientation=True,
            what=what,
            missing_hint="check the path",
            corrupt_hint=f"it is not a readable image; {READABLE}",
        )
    if isinstance(image, Image.Image):
        return image_to_rgb(ImageOps.exif_transpose(image), f"(the PIL {what})")
    array = np.asarray(image)
    if array.dtype.kind == "f":
        raise ValueError(
            f"the {what} array is {array.dtype} (floating point), whose value range is unknown; "
            "convert it to uint8 0..255, e.g. (image * 255).round().astype(np.uint8) for 0..1"
        )
    if array.dtype == np.uint16:
        array = scale_16_to_8(array)
    elif array.dtype != np.uint8:
        raise ValueError(f"the {what} array has dtype {array.dtype}; convert it to uint8 0..255")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape[:2]:
        raise ValueError(
            f"the {what} array has shape {array.shape}; expected (H, W) grey, (H, W, 3) RGB or "
            "(H, W, 4) RGBA"
        )
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def _size(shape: tuple[int, int]) -> str:
    """'W x H' of an (H, W) shape, the way image viewers and PIL state sizes."""
    return f"{shape[1]}x{shape[0]} (width x height)"


def _binary_map(kind: str, value: MaskLike, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool of a mask or scribble given as an array or a file, checked against ``shape``."""
    if isinstance(value, str | Path):
        binary, source = read_binary_mask(value, exif_orientation=True), f"{kind} file {value}"
    else:
        binary, source = np.asarray(value) != 0, kind
    if binary.ndim != 2:
        raise ValueError(f"the {kind} array has shape {binary.shape}; expected (H, W)")
    if binary.shape != shape:
        raise ValueError(
            f"the {source} is {_size(binary.shape)} but the reference image is {_size(shape)}; "
            f"give a {kind} of the reference image's size"
        )
    return binary


def _box_mask(value: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """Fill a box given by any two opposite corners, clipped to the image."""
    h, w = shape
    try:
        box = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        box = np.empty(0)
    if box.shape != (4,):
        raise ValueError(f"box {value!r} is not 4 numbers; give (x0, y0, x1, y1) in pixels")
    if not np.isfinite(box).all():
        raise ValueError(
            f"box {tuple(box.tolist())} has a non-finite coordinate; give 4 finite pixel "
            "coordinates (x0, y0, x1, y1)"
        )
    # Any two opposite corners describe the same box, whichever order they come in.
    x0, x1 = sorted(round(v) for v in box[[0, 2]])
    y0, y1 = sorted(round(v) for v in box[[1, 3]])
    if x1 < 0 or y1 < 0 or x0 > w - 1 or y0 > h - 1:
        raise EmptyReferenceError(
            f"box {tuple(box.tolist())} lies entirely outside the {_size(shape)} reference image"
        )
    out = np.zeros(shape, dtype=np.uint8)
    out[max(y0, 0) : min(y1, h - 1) + 1, max(x0, 0) : min(x1, w - 1) + 1] = 1
    return out


def _xy_array(value, what: str) -> np.ndarray:
    """(N, 2) float array of (x, y) pixel coordinates, or a ValueError naming ``what``."""
    try:
        xy = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        xy = np.empty((0, 3))
    if xy.shape == (2,):
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        raise ValueError(f"{what} {value!r} is not a list of (x, y) pixel coordinates")
    if not np.isfinite(xy).all():
        raise ValueError(f"{what} {xy.tolist()} has a non-finite coordinate; give finite pixels")
    return xy


def _points_mask(value, shape: tuple[int, int]) -> np.ndarray:
    """One pixel per click; a click outside the image is a mistake, not something to drop."""
    h, w = shape
    xy = np.floor(_xy_array(value, "points"))
    outside = (xy[:, 0] < 0) | (xy[:, 0] >= w) | (xy[:, 1] < 0) | (xy[:, 1] >= h)
    if outside.any():
        shown = [
            tuple(p) for p in np.asarray(value, dtype=float).reshape(-1, 2)[outside][:5].tolist()
        ]
        more = f" and {int(outside.sum()) - 5} more" if outside.sum() > 5 else ""
        raise ValueError(
            f"points {shown}{more} lie outside the {_size(shape)} reference image; give (x, y) "
            f"with 0 <= x < {w} and 0 <= y < {h}"
        )
    out = np.zeros(shape, dtype=np.uint8)
    out[xy[:, 1].astype(int), xy[:, 0].astype(int)] = 1
    return out


def annotation_to_mask(
    shape: tuple[int, int],
    *,
    mask: MaskLike | None = None,
    box: Sequence[float] | None = None,
    points: np.ndarray | Sequence[Sequence[float]] | None = None,
    scribble: MaskLike | Polylines | None = None,
    stroke_width: int = 3,
) -> np.ndarray:
    """Turn one annotation into a binary (H, W) uint8 mask at image resolution.

    A mask (or stroke) file means: the object is every pixel whose value is non-zero — the palette
    index for palette PNGs (VOC-style label PNGs work as they are), the grey level for grey
    images, any colour channel for RGB(A) images (alpha ignored); see
    :func:`vrpsam.data.fileio.read_binary_mask`.

    Args:
        shape: (H, W) of the reference image.
        mask: (H, W) array (non-zero = object) or a mask file of the reference image's size.
        box: two opposite corners (x0, y0, x1, y1) in pixels, in either order; filled, clipped to
            the image.
        points: (N, 2) (x, y) clicks on the object, each inside the image.
        scribble: (H, W) stroke array or file (non-zero = stroke), or a list of polylines
            [[(x, y), ...], ...] drawn ``stroke_width`` pixels wide.
        stroke_width: width used to draw polyline scribbles.

    Returns:
        ``uint8`` array of shape (H, W), 1 = object.

    Raises:
        ValueError: not exactly one annotation; a mask of another size than the image; a box that
            is not 4 finite numbers; points outside the image.
        EmptyReferenceError: the annotation marks no pixel inside the image (a ValueError).
    """
    given = {
        k: v
        for k, v in dict(mask=mask, box=box, points=points, scribble=scribble).items()
        if v is not None
    }
    if len(given) != 1:
        raise ValueError(
            f"give exactly one of mask, box, points, scribble; got {sorted(given) or 'none'}"
        )
    kind, value = next(iter(given.items()))
    h, w = shape
    stroke_map = isinstance(value, str | Path) or (
        isinstance(value, np.ndarray) and value.ndim == 2
    )
    if kind == "mask" or (kind == "scribble" and stroke_map):
        out = _binary_map(kind, value, (h, w)).astype(np.uint8)
    elif kind == "box":
        out = _box_mask(value, (h, w))
    elif kind == "points":
        out = _points_mask(value, (h, w))
    else:
        out = np.zeros((h, w), dtype=np.uint8)
        for line in value:
            pts = np.rint(_xy_array(line, "scribble polyline")).astype(np.int32)
            pts = pts.reshape(-1, 1, 2)
            cv2.polylines(out, [pts], isClosed=False, color=1, thickness=stroke_width)
    if not out.any():
        raise EmptyReferenceError(f"the reference {kind} marks no pixel inside the image")
    return out


class VRPSAMPredictor:
    """Reference once, predict many.

    Args:
        model: a VRP-SAM model (e.g. from :func:`vrpsam.export.load_export`).
        image_size: the square size the model was trained at (512 in the paper).
        device: where to run.
        target_cache_size: how many targets' frozen features to keep (0 disables); about
            38 MiB each for ResNet-50 + SAM at 512 px (fp32 backbone features are large).
        batch_size: targets per forward pass in :meth:`predict_batch`; default 1 on CPU (the
            benchmark measured ResNet-50 at 512 px slower per image in batches of 10 than one by
            one on 2 cores) and 8 on GPU.
    """

    def __init__(
        self,
        model: VRPSAM,
        *,
        image_size: int = 512,
        device: str | torch.device = "cpu",
        target_cache_size: int = 16,
        batch_size: int | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.transform = ResizeNormalize(size=image_size)
        self.image_size = image_size
        self._images: list[torch.Tensor] = []
        self._masks: list[torch.Tensor] = []
        self._state: ReferenceState | None = None
        self.target_cache_size = target_cache_size
        self.protocol: dict | None = None  # the switches an export was trained under
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        self._targets: OrderedDict[str, tuple[torch.Tensor, ...]] = OrderedDict()

    @classmethod
    def from_export(
        cls,
        export_dir: str | Path,
        *,
        sam_checkpoint: str | Path | None = None,
        backbone_checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        random_frozen_weights: bool = False,
        **load_kwargs,
    ) -> VRPSAMPredictor:
        """A predictor around an export (``vrpsam-export``) and its frozen weight files.

        Args:
            export_dir: the export folder.
            sam_checkpoint, backbone_checkpoint: the frozen files the export was trained with;
                None takes the files recorded in the export when they still exist unchanged, and
                refuses (naming the files) when they do not.
            device: where to run.
            random_frozen_weights: random SAM/backbone where a recorded file is missing
                (meaningless masks; for tests of the plumbing).
            **load_kwargs: further :func:`vrpsam.export.load_export` arguments.

        The input size and the model's switches are the ones the export was trained with.
        """
        from vrpsam.export import load_export, read_export_config

        model = load_export(
            export_dir,
            sam_checkpoint=sam_checkpoint,
            backbone_checkpoint=backbone_checkpoint,
            random_frozen_weights=random_frozen_weights,
            **load_kwargs,
        )
        config = read_export_config(export_dir)
        predictor = cls(model, image_size=config.get("training", {}).get("image_size", 512),
                        device=device)  # fmt: skip
        predictor.protocol = config.get("protocol")
        return predictor

    @property
    def shots(self) -> int:
        """How many annotated reference images the next prediction uses."""
        return len(self._images)

    def reset_reference(self) -> None:
        """Forget every reference (predicting then asks for one)."""
        self._images, self._masks, self._state = [], [], None

    def set_reference(
        self,
        image: ImageLike,
        *,
        mask: MaskLike | None = None,
        box: Sequence[float] | None = None,
        points: np.ndarray | Sequence[Sequence[float]] | None = None,
        scribble: MaskLike | Polylines | None = None,
        stroke_width: int = 3,
    ) -> None:
        """Use this one annotated image as the reference, replacing any earlier ones (1-shot).

        The annotation is checked before anything is replaced: a refused call keeps the previous
        reference. Use :meth:`add_reference` for more shots.

        Args:
            image: the reference image, as :func:`load_rgb` reads it (path, PIL image or array).
            mask: (H, W) array or mask file of the image's size; the object is every non-zero
                pixel (palette index, grey level, or any colour channel; alpha ignored).
            box: two opposite corners (x0, y0, x1, y1) in pixels, in either order.
            points: (N, 2) (x, y) clicks on the object, inside the image.
            scribble: (H, W) stroke array or file (non-zero = stroke), or polylines
                [[(x, y), ...], ...].
            stroke_width: width of drawn polyline scribbles.

        Exactly one of ``mask``, ``box``, ``points``, ``scribble``; see :func:`annotation_to_mask`.
        """
        annotation = dict(mask=mask, box=box, points=points, scribble=scribble)
        shot = self._shot(image, annotation, stroke_width)
        self._images, self._masks, self._state = [shot[0]], [shot[1]], None

    def add_reference(
        self,
        image: ImageLike,
        *,
        mask: MaskLike | None = None,
        box: Sequence[float] | None = None,
        points: np.ndarray | Sequence[Sequence[float]] | None = None,
        scribble: MaskLike | Polylines | None = None,
        stroke_width: int = 3,
    ) -> None:
        """Add another annotated reference image (k-shot); same arguments as :meth:`set_reference`.

        A refused call leaves the references as they were.
        """
        annotation = dict(mask=mask, box=box, points=points, scribble=scribble)
        image_tensor, mask_tensor = self._shot(image, annotation, stroke_width)
        self._images.append(image_tensor)
        self._masks.append(mask_tensor)
        self._state = None

    def _shot(
        self, image: ImageLike, annotation: dict, stroke_width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model-size (3, S, S) image and (S, S) mask of one annotated reference."""
        rgb = load_rgb(image, what="reference image")
        binary = annotation_to_mask(rgb.shape[:2], **annotation, stroke_width=stroke_width)
        # Area resizing then "> 0" keeps every annotated pixel, so single clicks survive 512 px.
        size = (self.image_size, self.image_size)
        small = cv2.resize(binary.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        return self.transform.image(rgb), torch.from_numpy(small.astype(np.float32))

    @torch.no_grad()
    def _reference_state(self) -> ReferenceState:
        if not self._images:
            raise RuntimeError(
                "call set_reference(image, mask=/box=/points=/scribble=) before predict"
            )
        if self._state is None:
            images = torch.stack(self._images)[None].to(self.device)
            masks = torch.stack(self._masks)[None].to(self.device)
            self._state = self.model.reference_state(images, masks)
        return self._state

    @torch.no_grad()
    def _target_features(
        self, rgbs: list[np.ndarray], batch: torch.Tensor, sizes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mid, high, SAM embeddings) of the targets, computing only those not cached."""
        keys = [_content_key(rgb) for rgb in rgbs]
        missing = [i for i, key in enumerate(keys) if key not in self._targets]
        computed: dict[str, tuple[torch.Tensor, ...]] = {}
        if missing:
            mid, high = self.model.target_features(batch[missing])
            embeddings = self.model.sam.encode(batch[missing], sizes[missing])
            for j, i in enumerate(missing):
                computed[keys[i]] = (mid[j], high[j], embeddings[j])
        rows = [computed.get(key) or self._targets[key] for key in keys]
        for key, row in computed.items():
            self._remember(key, row)
        for key in keys:
            if key in self._targets:
                self._targets.move_to_end(key)
        return tuple(torch.stack(parts) for parts in zip(*rows, strict=True))

    def _remember(self, key: str, row: tuple[torch.Tensor, ...]) -> None:
        if self.target_cache_size <= 0:
            return
        self._targets[key] = row
        while len(self._targets) > self.target_cache_size:
            self._targets.popitem(last=False)

    def predict_batch(
        self, images: Sequence[ImageLike]
    ) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """Segment several targets with the current references (computed once), ``batch_size``
        targets per forward pass.

        Args:
            images: targets as :func:`load_rgb` reads them (paths, PIL images or arrays); a target
                that cannot be read raises before any of its chunk is predicted.

        Returns:
            per target: mask (H, W) bool, SAM's predicted IoU, logits (H, W) float32.
        """
        images = list(images)
        results = []
        for start in range(0, len(images), self.batch_size):
            results += self._predict_chunk(images[start : start + self.batch_size])
        return results

    @torch.no_grad()
    def _predict_chunk(
        self, images: Sequence[ImageLike]
    ) -> list[tuple[np.ndarray, float, np.ndarray]]:
        state = self._reference_state()
        rgbs = [load_rgb(image, what="target image") for image in images]
        batch = torch.stack([self.transform.image(rgb) for rgb in rgbs]).to(self.device)
        sizes = torch.tensor([rgb.shape[:2] for rgb in rgbs])
        mid, high, embeddings = self._target_features(rgbs, batch, sizes)
        prompts = self.model.prompts_from_reference(
            state.tile(len(rgbs)), None, self.shots, features=(mid, high)
        )
        logits, iou = self.model.decode(
            prompts, batch, target_sizes=sizes, image_embeddings=embeddings, return_iou=True
        )
        results = []
        for i, rgb in enumerate(rgbs):
            full = F.interpolate(
                logits[i : i + 1].float(), size=rgb.shape[:2], mode="bilinear", align_corners=False
            )
            full = full[0, 0].cpu().numpy()
            results.append((full > 0, float(iou[i, 0]), full))
        return results

    def predict(self, image: ImageLike) -> tuple[np.ndarray, float, np.ndarray]:
        """Segment one target: mask (H, W) bool, SAM's predicted IoU, logits (H, W) float32."""
        return self.predict_batch([image])[0]


def _content_key(rgb: np.ndarray) -> str:
    """A key for an image's content (same pixels → same frozen features)."""
    digest = hashlib.blake2b(rgb.tobytes(), digest_size=16)
    digest.update(repr(rgb.shape).encode())
    return digest.hexdigest()
