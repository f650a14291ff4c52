"""What the predictor accepts: images (arrays, PIL images, files) and reference annotations (a
mask, a box, points or a scribble) turned into binary masks at the image's size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from vrpsam.data.reading import image_to_rgb, read_binary_mask, read_rgb, scale_16_to_8
from vrpsam.modeling.vrp_sam import EmptyReferenceError

ImageLike = np.ndarray | str | Path | Image.Image
MaskLike = np.ndarray | str | Path
Polylines = Sequence[Sequence[Sequence[float]]]

# What the predictor can read; the errors for user files point here rather than at a dataset.
READABLE = "give a JPEG, PNG, BMP, TIFF or WebP image"


def load_rgb(image: ImageLike, *, what: str = "image") -> np.ndarray:
    """An 8-bit RGB array from a file path, a PIL image or a numpy array; never a silent guess.

    Files and PIL images are read by :func:`vrpsam.data.reading.read_rgb` with their EXIF
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
    :func:`vrpsam.data.reading.read_binary_mask`.

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
