"""A physically motivated focus-stack renderer: thin lens, disc blur, occlusion.

For a thin lens the blur-circle radius is proportional to the distance between a point's
inverse depth and the focused inverse depth. The scene is cut into depth slabs; each layer
is composited back to front, every slab blurred with the disc of its own radius (colour
premultiplied by coverage, so a blurred foreground spreads over the background as a real
lens spreads it). The blur scale grows with N so that neighbouring layers still differ
visibly at any stack size. Optional over-exposed highlights (a share of stacks rendered in
linear light with their brightest parts above the clipping level), flat bright plateaus
below it, or emitted light on a dark ground whose depths add without occlusion
(data.highlights), sensor noise, JPEG and fully defocused "interference" layers.
Ground truth: per pixel the layer closest to the all-in-focus image (the label that serves
the fused image; where layers serve it alike, the one focused at the pixel's depth), or the
layer focused at the pixel's depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from stackmff.data.highlights import develop, emission, overexpose, plateau
from stackmff.data.scenes import Scene


@dataclass(frozen=True)
class PhysicalOptions:
    """``step_blur``: blur radius (px) between neighbouring focus planes, drawn uniformly;
    ``min_max_blur``: the farthest blur radius is at least this (px), so small stacks are
    not nearly sharp everywhere; ``noise``: largest Gaussian sensor-noise sigma (0..1 scale);
    ``jpeg``: probability of JPEG compression (quality 70..95); ``label``: ``"error"`` or
    ``"depth"``; ``slabs_min``: the least number of depth slabs; ``highlights``: probability
    that a stack is rendered in linear light with over-exposed highlights (0: never, and
    nothing is drawn for it, so the stacks of earlier settings stay as they were);
    ``plateaus``: probability that a stack not over-exposed is rendered in linear light with
    its brightest part one flat level below clipping (0: never, nothing drawn);
    ``emission``: probability that a stack with neither is rendered as emitted light on a
    dark ground, every depth's light added without occlusion (0: never, nothing drawn)."""

    step_blur: tuple[float, float] = (0.8, 2.0)
    min_max_blur: tuple[float, float] = (5.0, 14.0)
    noise: float = 0.01
    jpeg: float = 0.0
    label: str = "error"
    slabs_min: int = 16
    highlights: float = 0.0
    plateaus: float = 0.0
    emission: float = 0.0


@lru_cache(maxsize=256)
def disc_kernel(radius: float) -> np.ndarray:
    """Normalised disc point-spread function, anti-aliased at its rim."""
    if radius < 0.5:
        return np.ones((1, 1), np.float32)
    size = int(np.ceil(radius)) * 2 + 1
    c = size // 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - c
    kernel = np.clip(radius + 0.5 - np.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


DOWNSAMPLE_ABOVE = 6.0  # px: larger discs are applied at half resolution (4x cheaper)


def _blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Disc blur; a large disc's result is smooth, so it is computed at half resolution."""
    if radius > DOWNSAMPLE_ABOVE and min(image.shape[:2]) >= 32:
        height, width = image.shape[:2]
        small = cv2.resize(image, ((width + 1) // 2, (height + 1) // 2), interpolation=cv2.INTER_AREA)
        small = _blur(small, radius / 2)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    kernel = disc_kernel(round(radius * 4) / 4)
    if kernel.shape[0] == 1:
        return image
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def render_physical(scene: Scene, n_layers: int, rng: np.random.Generator,
                    options: PhysicalOptions = PhysicalOptions(), shuffle: bool = True,
                    interference: int = 0, return_truth: bool = False):
    """Return ``(stack (N + interference, H, W[, 3]) float32, focus_map (H, W) int64)``, and
    with ``return_truth`` the all-in-focus image the labels were made against (the scene's
    image, or with over-exposed highlights what the sensor records of it in focus).

    Interference layers are the sharp image blurred by a Gaussian of kernel 31 (the paper's
    anti-interference test); they are never the true layer.
    """
    if n_layers < 2:
        raise ValueError(f"a stack needs at least 2 layers, got {n_layers}")
    # linear: radiance, blurred before it is developed; additive: depths add, none occludes
    image, linear, additive = scene.image, True, False
    if options.highlights > 0 and rng.random() < options.highlights:
        image = overexpose(image, rng)
    elif options.plateaus > 0 and rng.random() < options.plateaus:
        image = plateau(image, rng)
    elif options.emission > 0 and rng.random() < options.emission:
        image, additive = emission(image, rng), True
    else:
        linear = False
    truth = develop(image) if linear else scene.image
    colour = image.ndim == 3
    inverse = 1.0 / scene.depth
    span = float(inverse.max() - inverse.min())
    position = (inverse - inverse.min()) / span if span > 0 else np.full_like(inverse, 0.5)

    # focus planes spread over the whole inverse-depth range, nearest and farthest included;
    # slab centres fall on a finer grid that contains every focus plane
    per_slab = max(1, int(np.ceil((options.slabs_min - 1) / (n_layers - 1))))
    n_slabs = (n_layers - 1) * per_slab + 1
    slab = np.rint(position * (n_slabs - 1)).astype(np.int64)
    centres = np.arange(n_slabs) / (n_slabs - 1)
    focus = np.arange(n_layers) / (n_layers - 1)
    max_blur = max(rng.uniform(*options.min_max_blur), rng.uniform(*options.step_blur) * n_layers)

    premultiplied = [np.dstack([image * (slab == s)[..., None] if colour else image * (slab == s),
                                (slab == s).astype(np.float32)])
                     for s in range(n_slabs)]
    present = [s for s in range(n_slabs) if premultiplied[s][..., -1].any()]
    stack = np.empty((n_layers,) + image.shape, np.float32)
    for k in range(n_layers):
        accumulated = np.zeros(image.shape[:2] + (premultiplied[0].shape[2],), np.float32)
        for s in present:  # far (small inverse depth) to near
            layer = _blur(premultiplied[s], max_blur * abs(centres[s] - focus[k]))
            accumulated = accumulated + layer if additive else \
                accumulated * (1.0 - layer[..., -1:]) + layer
        # light adds as it is; occluding slabs are normalised by their blurred coverage
        result = accumulated[..., :-1] if additive else \
            accumulated[..., :-1] / np.maximum(accumulated[..., -1:], 1e-6)
        stack[k] = result if colour else result[..., 0]

    if interference:
        junk = np.stack([cv2.GaussianBlur(image, (31, 31), 0)] * interference)
        stack = np.concatenate([stack, junk])
    if linear:
        stack = develop(stack)
    at_depth = np.rint(position * (n_layers - 1)).astype(np.int64)
    if options.label == "error":
        focus_map = closest_layer(stack[:n_layers], truth, prefer=at_depth)
    elif options.label == "depth":
        focus_map = at_depth
    else:
        raise ValueError(f"label must be 'error' or 'depth', got {options.label!r}")

    stack = degrade(stack, rng, options)
    total = stack.shape[0]
    order = rng.permutation(total) if shuffle else np.arange(total)
    result = stack[order], np.argsort(order)[focus_map]
    return (*result, truth) if return_truth else result


TIE = 0.5 / 255  # mean absolute error (3x3 box) below which two layers serve a pixel alike


def closest_layer(stack: np.ndarray, truth: np.ndarray,
                  prefer: np.ndarray | None = None) -> np.ndarray:
    """Per pixel, the layer with the smallest local (3x3 box) absolute error to the truth.

    Where ``prefer`` (a layer per pixel: the one focused at its depth) is within ``TIE`` of
    the smallest error, it is the label. Why: in a flat or clipped region every layer equals
    the truth, and the first of equal layers (the one focused farthest) would teach a
    network to pick that layer wherever the image is flat and bright.
    """
    errors = np.abs(stack - truth[None])
    if errors.ndim == 4:
        errors = errors.mean(axis=-1)
    errors = np.stack([cv2.blur(e, (3, 3)) for e in errors])
    label = np.argmin(errors, axis=0).astype(np.int64)
    if prefer is None:
        return label
    preferred = np.take_along_axis(errors, prefer[None], axis=0)[0]
    tied = preferred <= errors.min(axis=0) + TIE
    return np.where(tied, prefer, label).astype(np.int64)


def degrade(stack: np.ndarray, rng: np.random.Generator, options: PhysicalOptions) -> np.ndarray:
    """Sensor noise and JPEG as ``options`` draw them, the same for every renderer."""
    if options.noise > 0:
        sigma = rng.uniform(0, options.noise)
        stack = stack + rng.normal(0, sigma, stack.shape).astype(np.float32)
    stack = np.clip(stack, 0.0, 1.0)
    if options.jpeg > 0 and rng.random() < options.jpeg:
        quality = int(rng.integers(70, 96))
        for k in range(stack.shape[0]):
            eight = np.rint(stack[k] * 255).astype(np.uint8)
            ok, data = cv2.imencode(".jpg", eight, [cv2.IMWRITE_JPEG_QUALITY, quality])
            stack[k] = cv2.imdecode(data, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return stack.astype(np.float32)
