"""Rendering of synthetic few-shot scenes whose classes can be told apart by appearance.

A class is a fixed combination of a shape family, a two-colour palette and a texture (stripes,
checks, dots or rings) with a class-specific frequency and orientation; it depends on the class
index only, so a class looks the same in every tree and every seed. Each object varies in scale,
aspect, rotation, colour and pattern phase. Scenes hold several objects that occlude each other,
untextured distractor shapes (which are background) and a cluttered textured background, so that a
model must use the reference to know which object is meant.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

SHAPES = ("ellipse", "rectangle", "triangle", "star", "hexagon", "cross", "diamond", "chevron")
TEXTURES = ("stripes", "checks", "dots", "rings")
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class ClassStyle:
    """How objects of one class look.

    Attributes:
        shape: one of :data:`SHAPES`.
        texture: one of :data:`TEXTURES`.
        colors: the two RGB colours the texture alternates between.
        frequency: texture cycles per object radius.
        angle: texture orientation in radians, relative to the object.
        aspect: typical width/height ratio.
    """

    shape: str
    texture: str
    colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    frequency: float
    angle: float
    aspect: float


def class_style(index: int) -> ClassStyle:
    """The style of the class with 0-based ``index`` (deterministic, independent of any seed).

    Shape cycles every 8 classes and texture every 32, so classes that share both (``k``, ``k+32``,
    ``k+64``) differ in hue (golden-ratio spacing puts them ≥ 80° apart) and texture frequency.
    """
    hue = (index * _GOLDEN) % 1.0
    primary = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    secondary = colorsys.hsv_to_rgb((hue + 0.08) % 1.0, 0.6, 0.35 + 0.1 * (index % 3))
    return ClassStyle(
        shape=SHAPES[index % len(SHAPES)],
        texture=TEXTURES[(index // len(SHAPES)) % len(TEXTURES)],
        colors=(
            tuple(int(255 * v) for v in primary),  # type: ignore[misc]
            tuple(int(255 * v) for v in secondary),  # type: ignore[misc]
        ),
        frequency=2.0 + 1.5 * (index // (len(SHAPES) * len(TEXTURES))) + 0.25 * (index % 2),
        angle=(index * 0.7) % math.pi,
        aspect=1.0 + 0.35 * ((index // 3) % 3 - 1),
    )


def _unit_shape(shape: str) -> np.ndarray:
    """Vertices (N, 2) of a shape centred on the origin, scaled to the area of the unit disc.

    Equal areas keep thin shapes (stars, diamonds) as often above the list threshold as round ones.
    """
    pts = _raw_shape(shape)
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    return pts * math.sqrt(math.pi / area)


def _raw_shape(shape: str) -> np.ndarray:
    if shape == "ellipse":
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "rectangle":
        return np.array([[-1, -0.75], [1, -0.75], [1, 0.75], [-1, 0.75]], float)
    if shape in ("triangle", "hexagon", "diamond"):
        n = {"triangle": 3, "hexagon": 6, "diamond": 4}[shape]
        t = np.arange(n) * 2 * np.pi / n - np.pi / 2
        pts = np.stack([np.cos(t), np.sin(t)], 1)
        return pts * ([0.6, 1.0] if shape == "diamond" else [1.0, 1.0])
    if shape == "star":
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if shape == "cross":
        a = 0.35
        return np.array(
            [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a],
             [-1, a], [-1, -a], [-a, -a]], float)  # fmt: skip
    if shape == "chevron":
        return np.array([[-1, -0.9], [0.2, -0.9], [1, 0], [0.2, 0.9], [-1, 0.9], [-0.2, 0]], float)
    raise ValueError(f"unknown shape {shape!r}")


def _pattern(style: ClassStyle, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Binary texture (shape of ``u``) at object-frame coordinates ``u``, ``v`` (radius units)."""
    f = style.frequency
    if style.texture == "stripes":
        return np.sin(2 * np.pi * f * u) > 0
    if style.texture == "checks":
        return (np.floor(f * u) + np.floor(f * v)) % 2 == 0
    if style.texture == "dots":
        return (np.mod(f * u, 1) - 0.5) ** 2 + (np.mod(f * v, 1) - 0.5) ** 2 < 0.09
    return np.sin(2 * np.pi * f * np.hypot(u, v)) > 0


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image: RGB ``uint8`` (S, S, 3).
        instances: ``uint16`` (S, S) visible instance index, 0 = background (distractors included).
        classes: 0-based class index of each instance (instance ``k`` is ``classes[k - 1]``).
        crowd: whether each instance is a crowd region (a cluster of small objects of one class).
    """

    image: np.ndarray
    instances: np.ndarray
    classes: list[int] = field(default_factory=list)
    crowd: list[bool] = field(default_factory=list)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted low-frequency colour field with lines and grain, (S, S, 3) float32 in 0..255."""
    coarse = rng.uniform(70, 190, (5, 5, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(8, 16))):
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        color = tuple(float(c) for c in rng.uniform(60, 200, 3))
        cv2.line(
            image,
            tuple(int(p) for p in p1),
            tuple(int(p) for p in p2),
            color,
            1 + int(rng.integers(0, 3)),
        )
    image += rng.standard_normal((size, size, 1), dtype=np.float32) * 6  # monochrome grain
    return image


def _polygon(
    rng: np.random.Generator, shape: str, aspect: float, center, radius: float
) -> np.ndarray:
    stretch = aspect * rng.uniform(0.85, 1.15)
    pts = _unit_shape(shape) * [math.sqrt(stretch), 1 / math.sqrt(stretch)]  # area-preserving
    theta = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pts = pts @ rot.T
    return np.round(pts * radius + center).astype(np.int32)


def _paint_object(
    rng: np.random.Generator, image: np.ndarray, style: ClassStyle, center, radius: float
) -> np.ndarray:
    """Paint one textured object into ``image`` (in place); return its ``bool`` footprint (S, S)."""
    size = image.shape[0]
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [_polygon(rng, style.shape, style.aspect, center, radius)], 1)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.astype(bool)
    theta = style.angle + rng.uniform(-0.2, 0.2)
    dx, dy = (xs - center[0]) / radius, (ys - center[1]) / radius
    u = dx * np.cos(theta) + dy * np.sin(theta) + rng.uniform(0, 1)
    v = -dx * np.sin(theta) + dy * np.cos(theta) + rng.uniform(0, 1)
    on = _pattern(style, u, v)[:, None]
    jitter = rng.uniform(-12, 12, 3)
    colors = np.array(style.colors, np.float32) + jitter
    pixels = np.where(on, colors[0], colors[1])
    shade = 1.05 - 0.25 * np.clip(np.hypot(dx, dy), 0, 1.2) * rng.uniform(0.5, 1.0)
    image[ys, xs] = pixels * (shade[:, None] * rng.uniform(0.85, 1.1))
    return mask.astype(bool)


def _paint_distractor(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """An untextured irregular blob in a muted colour: clutter that belongs to no class."""
    n = int(rng.integers(5, 9))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.5, 1.0, n) * rng.uniform(0.05, 0.16) * size
    center = rng.uniform(0, size, 2)
    pts = np.round(np.stack([np.cos(t) * r, np.sin(t) * r], 1) + center).astype(np.int32)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [pts], 1)
    image[mask.astype(bool)] = rng.uniform(50, 210, 3)
    return mask.astype(bool)


def render_scene(
    rng: np.random.Generator,
    *,
    size: int,
    classes: list[int],
    duplicate_prob: float = 0.25,
    small_prob: float = 0.15,
    crowd_prob: float = 0.0,
    distractors: tuple[int, int] = (2, 5),
) -> Scene:
    """Render one scene holding objects of ``classes`` (0-based class indices).

    Args:
        rng: the scene's random generator (one per image keeps trees deterministic).
        size: side length S of the square image in pixels.
        classes: class of each main object, drawn in this order below the later ones.
        duplicate_prob: chance of one extra instance of one of ``classes``.
        small_prob: chance that an object is small (often below the 2*32*32 pixel list threshold).
        crowd_prob: chance of a crowd: a cluster of 4-8 small objects of one class, one instance.
        distractors: min and max number of untextured distractor shapes.

    Returns:
        The :class:`Scene`.
    """
    image = _background(rng, size)
    instances = np.zeros((size, size), np.uint16)
    scene = Scene(image=image, instances=instances)
    objects = list(classes)
    if objects and rng.random() < duplicate_prob:
        objects.append(objects[int(rng.integers(len(objects)))])
    n_distractors = int(rng.integers(distractors[0], distractors[1] + 1))
    # Distractors take random places in the drawing order, so they occlude objects too.
    order = [("object", c) for c in objects] + [("distractor", -1)] * n_distractors
    order = [order[i] for i in rng.permutation(len(order))]
    if rng.random() < crowd_prob and objects:
        order.insert(int(rng.integers(len(order) + 1)), ("crowd", objects[0]))
    # Crowded scenes get somewhat smaller objects, so that occlusion leaves each a visible part.
    scale = size * (1.0 if len(objects) <= 3 else 0.85)
    for kind, class_index in order:
        if kind == "distractor":
            instances[_paint_distractor(rng, image, size)] = 0
            continue
        style = class_style(class_index)
        if kind == "crowd":
            hub = rng.uniform(0.2 * size, 0.8 * size, 2)
            footprint = np.zeros((size, size), bool)
            for _ in range(int(rng.integers(4, 9))):
                center = hub + rng.normal(0, 0.08 * size, 2)
                footprint |= _paint_object(
                    rng, image, style, center, rng.uniform(0.04, 0.07) * size
                )
        else:
            small = rng.random() < small_prob
            radius = (rng.uniform(0.05, 0.1) if small else rng.uniform(0.13, 0.3)) * scale
            center = rng.uniform(0.12 * size, 0.88 * size, 2)
            footprint = _paint_object(rng, image, style, center, radius)
        scene.classes.append(class_index)
        scene.crowd.append(kind == "crowd")
        instances[footprint] = len(scene.classes)
    scene.image = np.clip(image, 0, 255).astype(np.uint8)
    return scene


def boundary_ring(instances: np.ndarray, width: int = 5) -> np.ndarray:
    """Pixels within about ``width // 2`` of an object outline, like the VOC/SBD 255 boundary band.

    Args:
        instances: ``uint16`` (H, W) instance ids, 0 = background.
        width: side of the square neighbourhood that decides the band.

    Returns:
        ``bool`` (H, W), true on the band (both sides of each outline, between objects too).
    """
    kernel = np.ones((width, width), np.uint8)
    return cv2.dilate(instances, kernel) != cv2.erode(instances, kernel)


def balanced_classes(
    rng: np.random.Generator, counts: np.ndarray, pool: np.ndarray, k: int
) -> list[int]:
    """Draw ``k`` distinct classes from ``pool``, favouring the least used so far, and count them.

    Balanced draws keep every class's image count close to the mean, so small trees still give every
    class of every fold enough images for 5-shot episodes.
    """
    k = min(k, len(pool))
    order = np.lexsort((rng.random(len(pool)), counts[pool]))
    chosen = [int(c) for c in pool[order[:k]]]
    counts[chosen] += 1
    return chosen
