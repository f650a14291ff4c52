"""Reading dataset files with errors that name the file and the fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


class DatasetError(RuntimeError):
    """A dataset tree is missing files or holds files the loaders cannot use."""


def require(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it exists, else raise ``FileNotFoundError`` naming it and the fix."""
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}: {hint}")
    return path


# Modes whose conversion to 8-bit RGB is exact and needs no guess about the value range.
_EIGHT_BIT_MODES = frozenset(
    {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr"}
)
# 16-bit greyscale (PNG, TIFF); PIL may also open it as 32-bit "I" holding 0..65535.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Mask modes where "non-zero" has one obvious meaning (index, grey level or colour channel).
_MASK_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"}) | _SIXTEEN_BIT_MODES
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ImageReadError(DatasetError, ValueError):
    """An image file (or image) that cannot be read, or whose pixels cannot be read without a guess.

    A ``DatasetError`` for the dataset loaders and a ``ValueError`` for the predictor's callers.
    """


def scale_16_to_8(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit values (0..65535) to 8 bits by value / 257, rounded (65535 → 255).

    Args:
        values: integer array of any shape holding 0..65535.

    Returns:
        ``uint8`` array of the same shape.
    """
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def image_to_rgb(image: Image.Image, source: str) -> np.ndarray:
    """Convert a decoded PIL image to 8-bit RGB, or refuse one whose range would be a guess.

    8-bit modes (grey, 1-bit, palette, RGB, CMYK, YCbCr) convert exactly; alpha is dropped (the
    colour channels are kept as they are, not composited over a background). 16-bit greyscale is
    scaled by 1/257. Float (``F``) and other unusual modes are refused rather than clipped: PIL's
    own conversion would turn a 16-bit or float image into a nearly all-white one.

    Args:
        image: a loaded PIL image.
        source: how to name the image in errors (its path).

    Returns:
        ``uint8`` array of shape (H, W, 3).

    Raises:
        ImageReadError: the mode is not one of the above, or a 32-bit image exceeds 0..65535.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(image)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ImageReadError(
                f"cannot read image {source}: mode {image.mode} with values "
                f"{grey.min()}..{grey.max()}, outside the 16-bit range 0..65535; convert it to an "
                "8-bit image (values 0..255) and save it as PNG or JPEG"
            )
        return np.repeat(scale_16_to_8(grey)[..., None], 3, axis=2)
    if image.mode not in _EIGHT_BIT_MODES:
        kind = "a floating-point image" if image.mode == "F" else "an unusual image mode"
        raise ImageReadError(
            f"cannot read image {source}: PIL mode {image.mode} is {kind} whose value range is "
            "unknown, so it cannot be turned into 8-bit RGB without a guess; convert it to 8-bit "
            "RGB or greyscale (values 0..255) and save it as PNG or JPEG"
        )
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


@contextmanager
def _decoded(
    path: Path, what: str, *, exif_orientation: bool, missing_hint: str, corrupt_hint: str
) -> Iterator[Image.Image]:
    """Open and fully decode ``path`` for the ``with`` block; errors name the file and the hint."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}: {missing_hint}")
    with ExitStack() as stack:
        try:
            image = stack.enter_context(Image.open(path))
            # load() forces a full decode so that truncated files fail here, not in a worker later.
            image.load()
            if exif_orientation:
                # What a viewer shows: phone JPEGs store the sensor's pixels plus a rotation tag.
                image = stack.enter_context(ImageOps.exif_transpose(image))
        except _DECODE_ERRORS as error:
            raise ImageReadError(f"cannot read {what} {path}: {error}; {corrupt_hint}") from error
        # Outside the try: errors of the caller's block are its own, not decoding errors.
        yield image


def read_rgb(
    path: str | Path,
    *,
    exif_orientation: bool = False,
    what: str = "image",
    missing_hint: str = "the tree is incomplete; re-extract it",
    corrupt_hint: str = "the file is corrupt or truncated, re-extract it from the dataset archive",
) -> np.ndarray:
    """Decode an image file to 8-bit RGB, or refuse it by name (never a silently wrong image).

    Read exactly: 8-bit RGB, greyscale, 1-bit, palette (``P``), ``LA``, ``RGBA`` (the alpha
    channel is dropped: transparent pixels keep their stored colour), ``CMYK`` and ``YCbCr``.
    16-bit greyscale (``I;16``, or ``I`` holding 0..65535) is scaled to 8 bits by value / 257.
    Float (``F``) and other modes are refused with the file, the mode and what to do.

    Args:
        path: the image file.
        exif_orientation: apply the EXIF orientation tag (``PIL.ImageOps.exif_transpose``) so the
            array matches what an image viewer shows. Off for the dataset loaders, whose label
            PNGs are drawn on the stored pixels; on for the predictor's user images.
        what: how errors name the file ("image", "reference image", ...).
        missing_hint: what to do when the file does not exist.
        corrupt_hint: what to do when the file cannot be decoded.

    Returns:
        ``uint8`` array of shape (H, W, 3).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file cannot be decoded (truncated, corrupt, not an image), or its
            mode cannot be read as 8-bit RGB. A ``DatasetError`` and a ``ValueError``.
    """
    path = Path(path)
    hints = {"missing_hint": missing_hint, "corrupt_hint": corrupt_hint}
    with _decoded(path, what, exif_orientation=exif_orientation, **hints) as image:
        return image_to_rgb(image, str(path))


def read_binary_mask(path: str | Path, *, exif_orientation: bool = False) -> np.ndarray:
    """Read a mask (or scribble) file: the object is every pixel whose value is non-zero.

    "Value" is the palette index for palette PNGs (so VOC-style label PNGs work: every labelled
    class, and the 255 "void" border too, counts), the grey level for greyscale and 16-bit images,
    and any of the three colour channels for RGB(A) images (alpha is ignored).

    Args:
        path: the mask file.
        exif_orientation: apply the EXIF orientation tag, as for the image it annotates.

    Returns:
        ``bool`` array of shape (H, W).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file cannot be decoded, or its mode (CMYK, YCbCr, float, ...) has no
            single meaning of "non-zero".
    """
    path = Path(path)
    hints = {
        "missing_hint": "check the path",
        "corrupt_hint": "give a PNG mask (non-zero = object)",
    }
    with _decoded(path, "mask", exif_orientation=exif_orientation, **hints) as image:
        mode, values = image.mode, np.asarray(image)
    if mode not in _MASK_MODES:
        raise ImageReadError(
            f"cannot read mask {path}: PIL mode {mode} has no single meaning of "
            '"non-zero = object"; save the mask as a greyscale, palette or RGB PNG whose object '
            "pixels are non-zero"
        )
    if values.ndim == 3:
        # LA/PA: the first channel is the grey level or palette index; RGB(A/X): the colours.
        values = values[..., :1] if mode in ("LA", "PA") else values[..., :3]
        return np.any(values != 0, axis=2)
    return values != 0


def read_grey_mask(
    path: str | Path, *, threshold: int = 128, missing_hint: str, corrupt_hint: str
) -> np.ndarray:
    """Read a mask the way FSS-1000's convention does: converted to grey, object where the grey
    level is at least ``threshold`` (so anti-aliased edges split at mid-grey, and RGB, palette or
    greyscale files all read alike; 16-bit files are scaled to 8 bits first).

    Returns:
        ``bool`` array of shape (H, W).

    Raises:
        FileNotFoundError: the file does not exist (the message ends with ``missing_hint``).
        ImageReadError: the file cannot be decoded (the message ends with ``corrupt_hint``).
    """
    path = Path(path)
    hints = {"missing_hint": missing_hint, "corrupt_hint": corrupt_hint}
    with _decoded(path, "mask", exif_orientation=False, **hints) as image:
        rgb = image_to_rgb(image, str(path)).astype(np.uint32)  # 16-bit scaled, float refused
    # ITU-R 601 luma, as PIL's convert("L") computes it (integer arithmetic, rounded).
    luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return luma >= threshold


def read_label_png(path: Path) -> np.ndarray:
    """Decode a VOC-style label PNG (palette or grey) to its class ids.

    Returns:
        ``uint8`` array of shape (H, W) holding the palette indices / grey values.

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file cannot be decoded or is a colour (RGB) rendering of the labels.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"mask not found: {path}: every listed image needs a SegmentationClassAug PNG; "
            "see data/README.md"
        )
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L"):
                raise DatasetError(
                    f"mask {path} has mode {image.mode}; expected a palette or greyscale PNG whose "
                    "values are class ids (the SegmentationClassAug format), not a colour rendering"
                )
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read mask {path}: {error}; re-extract it") from error


def read_id_list(path: Path, hint: str) -> list[str]:
    """Image ids of a VOC ``ImageSets`` list file (one id per line, blank lines skipped)."""
    require(path, "image list", hint)
    with path.open(encoding="utf-8") as handle:
        return [line.split()[0] for line in handle if line.strip()]
