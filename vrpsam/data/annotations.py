"""SEEM-style simulation of reference annotations (point, scribble, box, mask) from a GT mask.

VRP-SAM is trained and evaluated with four kinds of reference annotation. Only full masks exist in
the datasets, so the others are simulated from the mask, as SEEM and the official VRP-SAM code do:

- ``point``: ``k`` distinct random foreground pixels; ``k = min(20, area)`` at test time and uniform
  in ``1..min(20, area)`` in training.
- ``scribble``: ``1..min(20, area)`` random free-form strokes (Yu et al., "Free-Form Image
  Inpainting with Gated Convolution"), each started at a distinct foreground pixel and clipped to
  the foreground. One of two stroke presets is chosen with probability 1/2 per annotation
  (:data:`STROKE_PRESETS`).
- ``box``: the filled tight bounding box of the foreground (the only kind that is not a subset of
  it).
- ``mask``: the foreground itself.

All randomness comes from the ``rng`` the caller passes, so an annotation is a pure function of the
mask and the generator state. Callers seed it per episode (see :func:`annotation_rng`) so that
test-time annotations do not depend on iteration order, worker count or rank.

The official code simulates annotations on the 512×512 resized mask, and the stroke presets are in
pixels of that resolution; :class:`vrpsam.data.dataset.EpisodeDataset` therefore calls this on
resized masks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vrpsam.data.base import IGNORE_INDEX

ANNOTATION_KINDS = ("point", "scribble", "box", "mask")
"""The reference annotation kinds, in the order the paper reports them."""

MAX_CLICKS = 20
"""Upper bound on the number of points and of scribble strokes (SEEM / official VRP-SAM)."""


@dataclass(frozen=True)
class StrokePreset:
    """Parameters of the random free-form stroke generator (lengths in pixels at 512×512).

    Attributes:
        vertex_bound: number of control points drawn from ``[low, high)``.
        max_head_speed: upper clip of the step length between control points.
        max_head_acceleration: (speed, angle) bounds of the uniform per-step change of the head
            velocity.
        brush_width_bound: brush width in pixels drawn from ``[low, high)`` (integers).
        move_point_ratio: fraction of control points jittered after the stroke is drawn.
        max_point_move: bound of the integer jitter of those control points.
        max_init_speed: scale of the half-normal speed of the whole-stroke drift.
    """

    vertex_bound: tuple[int, int]
    max_head_speed: float
    max_head_acceleration: tuple[float, float]
    brush_width_bound: tuple[int, int]
    move_point_ratio: float
    max_point_move: int
    max_init_speed: float


STROKE_PRESETS = {
    # Values of SEEM's 'rand_curve' / 'rand_curve_small' presets used by the official VRP-SAM code.
    # The official small preset draws widths with randint(2.5, 5), i.e. integers 2..4, and point
    # jitter with randint(-1.5, 1.5); integer bounds here say the same thing explicitly.
    "rand_curve": StrokePreset(
        vertex_bound=(10, 30),
        max_head_speed=20.0,
        max_head_acceleration=(15.0, 0.5),
        brush_width_bound=(3, 10),
        move_point_ratio=0.5,
        max_point_move=3,
        max_init_speed=6.0,
    ),
    "rand_curve_small": StrokePreset(
        vertex_bound=(6, 22),
        max_head_speed=12.0,
        max_head_acceleration=(8.0, 0.5),
        brush_width_bound=(2, 5),
        move_point_ratio=0.5,
        max_point_move=1,
        max_init_speed=3.0,
    ),
}
"""The two scribble presets, chosen 50/50 for every scribble annotation."""

SCRIBBLE_MODES = ("per_episode", "fixed")
"""``per_episode``: stroke count and preset drawn for every annotation; ``fixed``: the official
code's test-time draw, the same for every episode (see :func:`official_test_scribble`)."""

_OFFICIAL_TEST_SEED = 321


def official_test_scribble(area: int) -> tuple[int, str]:
    """The official code's test-time (stroke count, preset) for a mask of ``area`` pixels.

    It draws both from a fresh ``random.Random(321)`` on every call, so every test episode gets the
    same draw: ``rand_curve`` with ``randint(1, min(20, area))`` strokes, 9 for any mask of 20 or
    more pixels.
    """
    names = ["rand_curve", "rand_curve_small"]
    preset = random.Random(_OFFICIAL_TEST_SEED).choices(names, weights=[0.5, 0.5], k=1)[0]
    count = random.Random(_OFFICIAL_TEST_SEED).randint(1, min(MAX_CLICKS, area))
    return count, preset


def annotation_rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator seeded by ``(seed, *keys)``, independent of any global or worker state.

    Args:
        seed: the run's seed (non-negative).
        *keys: further non-negative integers, e.g.
            ``(stream, epoch, episode_index, reference_index)``.

    Returns:
        A fresh ``numpy.random.Generator``; equal arguments give equal streams.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def simulate_annotation(
    mask: np.ndarray,
    kind: str,
    *,
    rng: np.random.Generator,
    training: bool,
    scribble: str = "per_episode",
) -> np.ndarray:
    """Simulate a reference annotation of ``kind`` from a ground-truth mask.

    Args:
        mask: (H, W) integer or bool mask; 1 = foreground, 0 = background, 255 = ignored (not
            foreground).
        kind: one of :data:`ANNOTATION_KINDS`.
        rng: source of all randomness.
        training: training draws the number of points uniformly; test time uses ``min(20, area)``.
        scribble: one of :data:`SCRIBBLE_MODES`; ``fixed`` applies at test time only (the
            official code draws training scribbles per annotation too).

    Returns:
        (H, W) ``uint8`` mask with values {0, 1}: a subset of the foreground, except for ``box``,
        which is the filled tight bounding box of the foreground.

    Raises:
        ValueError: unknown ``kind``, a mask that is not 2-D or holds values other than 0/1/255, or
            a mask without foreground pixels.
    """
    if kind not in ANNOTATION_KINDS:
        raise ValueError(f"Unknown annotation kind {kind!r}; expected one of {ANNOTATION_KINDS}.")
    if scribble not in SCRIBBLE_MODES:
        raise ValueError(f"scribble must be one of {SCRIBBLE_MODES}, got {scribble!r}.")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"Expected a 2-D (H, W) mask, got shape {mask.shape}.")
    if mask.dtype != np.bool_ and np.any((mask != 0) & (mask != 1) & (mask != IGNORE_INDEX)):
        raise ValueError(
            f"Mask values must be 0, 1 or {IGNORE_INDEX}; got {np.unique(mask)[:10].tolist()}. "
            "Pass the binary mask of one class, not a label map."
        )
    foreground = mask == 1
    if not foreground.any():
        raise ValueError(
            f"Cannot simulate a {kind!r} annotation from a mask with no foreground pixels "
            f"(shape {mask.shape}); the reference image does not show the class."
        )
    if kind == "mask":
        return foreground.astype(np.uint8)
    if kind == "box":
        return _box(foreground)
    if kind == "point":
        return _points(foreground, rng=rng, training=training)
    return _scribble(foreground, rng=rng, fixed=scribble == "fixed" and not training)


def _box(foreground: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(foreground.any(axis=1))
    cols = np.flatnonzero(foreground.any(axis=0))
    out = np.zeros(foreground.shape, dtype=np.uint8)
    out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 1
    return out


def _random_foreground_pixels(
    foreground: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` distinct flat indices of foreground pixels, in random order."""
    candidates = np.flatnonzero(foreground)
    return rng.choice(candidates, size=count, replace=False)


def _max_clicks(foreground: np.ndarray) -> int:
    return min(MAX_CLICKS, int(foreground.sum()))


def _points(foreground: np.ndarray, *, rng: np.random.Generator, training: bool) -> np.ndarray:
    upper = _max_clicks(foreground)
    count = int(rng.integers(1, upper + 1)) if training else upper
    out = np.zeros(foreground.size, dtype=np.uint8)
    out[_random_foreground_pixels(foreground, count, rng)] = 1
    return out.reshape(foreground.shape)


def _scribble(foreground: np.ndarray, *, rng: np.random.Generator, fixed: bool) -> np.ndarray:
    if fixed:
        n_strokes, name = official_test_scribble(int(foreground.sum()))
        preset = STROKE_PRESETS[name]
    else:
        n_strokes = int(rng.integers(1, _max_clicks(foreground) + 1))
        preset = STROKE_PRESETS["rand_curve" if rng.random() < 0.5 else "rand_curve_small"]
    height, width = foreground.shape
    starts = _random_foreground_pixels(foreground, n_strokes, rng)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for start in starts:
        y, x = divmod(int(start), width)
        xs, ys = _stroke_control_points(x, y, preset=preset, rng=rng)
        width_px = int(rng.integers(*preset.brush_width_bound))
        _draw_stroke(draw, xs, ys, width_px)
    strokes = np.asarray(canvas, dtype=np.uint8) > 0
    out = strokes & foreground
    if not out.any():
        # The drift can carry every stroke off a thin object; the start pixels are always
        # foreground.
        out.flat[starts] = True
    return out.astype(np.uint8)


def _stroke_control_points(
    x: int, y: int, *, preset: StrokePreset, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Control points of one free-form stroke starting at (x, y), after the SEEM-style drift.

    Returns:
        (xs, ys): float arrays of shape (V + 1,).
    """
    n_vertex = int(rng.integers(*preset.vertex_bound))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    speed = rng.uniform(0.0, preset.max_head_speed)
    d_speed, d_angle = preset.max_head_acceleration
    speed_steps = rng.uniform(-d_speed, d_speed, size=n_vertex).tolist()
    angles = angle + np.cumsum(rng.uniform(-d_angle, d_angle, size=n_vertex))
    # The speed is clipped after every step, so it is a running recursion, not a cumulative sum.
    speeds = []
    for step in speed_steps:
        speed = min(max(speed + step, 0.0), preset.max_head_speed)
        speeds.append(speed)
    xs_arr = x + np.concatenate(([0.0], np.cumsum(np.asarray(speeds) * np.sin(angles))))
    ys_arr = y + np.concatenate(([0.0], np.cumsum(np.asarray(speeds) * np.cos(angles))))
    # SEEM's generator comes from video inpainting: the drawn stroke is the control polyline after
    # one "frame" of motion (a whole-stroke shift plus jitter of half of the points). Kept for
    # fidelity.
    drift_speed = abs(rng.normal(0.0, preset.max_init_speed / 2.0))
    drift_angle = rng.uniform(0.0, 2.0 * np.pi)
    xs_arr += int(drift_speed * np.cos(drift_angle))
    ys_arr += int(drift_speed * np.sin(drift_angle))
    n_moved = int(len(xs_arr) * preset.move_point_ratio)
    moved = rng.permutation(len(xs_arr))[:n_moved]
    bound = preset.max_point_move
    xs_arr[moved] += rng.integers(-bound, bound + 1, size=n_moved)
    ys_arr[moved] += rng.integers(-bound, bound + 1, size=n_moved)
    return xs_arr, ys_arr


def _draw_stroke(draw: ImageDraw.ImageDraw, xs: np.ndarray, ys: np.ndarray, width: int) -> None:
    points = list(zip(xs.tolist(), ys.tolist(), strict=True))
    draw.line(points, fill=1, width=width)
    # Round joints and caps, as the official generator draws discs at the control points.
    radius = max(width // 2 - 1, 0)
    for px, py in points:
        draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=1)
