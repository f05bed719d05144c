"""Scenes to render stacks from: an all-in-focus image with a depth map.

Sources: dead-leaves images with occlusion depth (unlimited, natural image statistics;
Lee, Mumford & Huang, IJCV 41, 2001), photos with procedural depth (segment-wise planes that
follow image edges, plus a smooth ramp), and photos with true depth (the Middlebury 2014
motorcycle bundled in scikit-image, with its disparity).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.segmentation import felzenszwalb


@dataclass
class Scene:
    """``image``: ``(H, W)`` or ``(H, W, 3)`` float32 in [0, 1], sharp everywhere.
    ``depth``: ``(H, W)`` float32, larger = farther (any positive scale)."""

    image: np.ndarray
    depth: np.ndarray


def dead_leaves(size: int, rng: np.random.Generator, colour: bool = True,
                n_shapes: int = 600) -> Scene:
    """Discs with power-law radii, painted back to front; each disc carries its own depth
    (a plane, so that surfaces are not all fronto-parallel) and a fine texture."""
    channels = 3 if colour else 1
    image = np.zeros((size, size, channels), np.float32)
    depth = np.zeros((size, size), np.float32)
    r_min, r_max = size / 80.0, size / 4.0
    # far to near: nearer discs are painted later and occlude
    depths = np.sort(rng.uniform(1.0, 10.0, n_shapes))[::-1]
    image[:] = rng.random(channels)
    depth[:] = 11.0
    for z in depths:
        u = rng.random()
        radius = (r_min ** -2 + u * (r_max ** -2 - r_min ** -2)) ** -0.5
        cy, cx = rng.uniform(-radius, size + radius, 2)
        y0, y1 = max(0, int(cy - radius)), min(size, int(cy + radius) + 1)
        x0, x1 = max(0, int(cx - radius)), min(size, int(cx + radius) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        if not mask.any():
            continue
        base = rng.random(channels).astype(np.float32)
        grain = rng.normal(0, rng.uniform(0.02, 0.12), (int(mask.sum()), 1)).astype(np.float32)
        image[y0:y1, x0:x1][mask] = np.clip(base + grain, 0, 1)
        tilt = rng.normal(0, 0.3, 2) / size
        depth[y0:y1, x0:x1][mask] = z + tilt[0] * (yy[mask] - cy) + tilt[1] * (xx[mask] - cx)
    image = cv2.GaussianBlur(image, (0, 0), 0.6)
    if channels == 1:
        image = image[..., 0] if image.ndim == 3 else image
    return Scene(image=np.clip(image, 0, 1), depth=np.maximum(depth, 0.5))


def procedural_depth(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A depth map for any photo: image segments become random planes, plus a global ramp."""
    height, width = image.shape[:2]
    segments = felzenszwalb(image, scale=rng.uniform(100, 400), sigma=0.8,
                            min_size=max(64, height * width // 400),
                            channel_axis=-1 if image.ndim == 3 else None)
    n = int(segments.max()) + 1
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    offsets = rng.uniform(1.0, 10.0, n).astype(np.float32)
    slopes = rng.normal(0, 2.0 / max(height, width), (n, 2)).astype(np.float32)
    depth = offsets[segments] + slopes[segments, 0] * yy + slopes[segments, 1] * xx
    ramp_angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(ramp_angle) * xx + np.sin(ramp_angle) * yy) / max(height, width)
    depth = depth + rng.uniform(0, 6) * ramp
    return np.maximum(depth - depth.min() + 1.0, 0.5).astype(np.float32)


def skimage_photo(name: str) -> np.ndarray:
    """A photo bundled with scikit-image, as float32 RGB/grey in [0, 1]."""
    from skimage import data

    image = getattr(data, name)()
    image = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else image.max())
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    return image


def motorcycle() -> Scene:
    """Middlebury 2014 motorcycle (scikit-image): left view and depth = 1 / disparity."""
    from skimage import data

    image, _, disparity = data.stereo_motorcycle()
    disparity = np.asarray(disparity, np.float32)
    valid = np.isfinite(disparity) & (disparity > 0)
    fill = cv2.inpaint(np.where(valid, disparity, 0).astype(np.float32),
                       (~valid).astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return Scene(image=image.astype(np.float32) / 255.0, depth=1.0 / np.maximum(fill, 1.0))


def photo_files(folder: str | Path) -> list[Path]:
    """Image files under a folder (for training on one's own photos)."""
    suffixes = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in suffixes)


def random_crop(scene: Scene, size: int, rng: np.random.Generator) -> Scene:
    """A ``size`` x ``size`` crop (scenes smaller than that are padded by reflection)."""
    image, depth = scene.image, scene.depth
    pad_y, pad_x = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if pad_y or pad_x:
        image = cv2.copyMakeBorder(image, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
        depth = cv2.copyMakeBorder(depth, 0, pad_y, 0, pad_x, cv2.BORDER_REFLECT_101)
    y = rng.integers(0, image.shape[0] - size + 1)
    x = rng.integers(0, image.shape[1] - size + 1)
    return Scene(image[y:y + size, x:x + size], depth[y:y + size, x:x + size])
