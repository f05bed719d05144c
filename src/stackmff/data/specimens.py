"""Rendered microscope z-stacks with ground truth: widefield fluorescence and brightfield.

Fluorescence: cells (a nucleus in channel 0, a membrane ring and filaments in channel 1) lie
at random depths; each plane sums every cell's light blurred by a Gaussian whose width grows
with the distance to the cell's depth (light is conserved: defocus spreads it into a haze),
plus background and shot-like noise. The truth is every cell in focus.

Brightfield: an absorbing specimen (dark nuclei, granular cytoplasm) on a bright background,
on a tilted, curved slide, so defocus lifts dark detail towards the background. A continuous
slide is blurred in each plane by its true distance, as a lens blurs it: where it passes
midway between two planes they are equally sharp. A stepped slide rounds its depth to the
planes first, so each pixel is sharp in exactly one plane and its sharpness jumps at a
one-pixel rim that no lens makes; a method is scored there on placing those rims.
"""

from __future__ import annotations

import cv2
import numpy as np

BLUR_PER_PLANE = 1.3   # Gaussian sigma (pixels) added per plane of defocus
IN_FOCUS_SIGMA = 0.7   # the optics' own blur


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0 else image


def _cells(height: int, width: int, planes: int, rng: np.random.Generator,
           density: float = 1 / 900) -> np.ndarray:
    """Sharp ``(planes, 2, H, W)`` images: per depth plane, its cells' nuclei and rings."""
    sharp = np.zeros((planes, 2, height, width), np.float32)
    count = max(4, int(height * width * density))
    for _ in range(count):
        z = int(rng.integers(planes))
        y, x = int(rng.integers(height)), int(rng.integers(width))
        radius = float(rng.uniform(3.0, 7.0))
        nucleus, ring = sharp[z, 0], sharp[z, 1]
        cv2.ellipse(nucleus, (x, y), (int(radius), int(radius * rng.uniform(0.6, 1.0))),
                    float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.4, 0.8)), -1)
        cv2.circle(ring, (x, y), int(radius * 1.9), float(rng.uniform(0.4, 0.8)), 1)
        for _ in range(2):  # filaments leaving the cell
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(8, 25)
            end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
            cv2.line(ring, (x, y), end, float(rng.uniform(0.3, 0.6)), 1)
    return sharp


def fluorescence_stack(planes: int, height: int, width: int, seed: int = 0,
                       noise: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """``(stack (C=2, Z, H, W), truth (C=2, H, W))``, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    sharp = _cells(height, width, planes, rng)
    background = np.float32(0.03)
    stack = np.full((2, planes, height, width), background, np.float32)
    for k in range(planes):
        for j in range(planes):
            sigma = IN_FOCUS_SIGMA + BLUR_PER_PLANE * abs(k - j)
            for c in range(2):
                if sharp[j, c].any():
                    stack[c, k] += _blur(sharp[j, c], sigma)
    truth = background + np.stack([sum(_blur(sharp[j, c], IN_FOCUS_SIGMA)
                                       for j in range(planes)) for c in range(2)])
    stack += rng.normal(0.0, 1.0, stack.shape).astype(np.float32) * noise * np.sqrt(
        np.maximum(stack, 0) * 20 + 1)
    return np.clip(stack, 0, 1), np.clip(truth, 0, 1).astype(np.float32)


def _slide_depth(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Depth per pixel in [0, 1]: a tilted, gently curved slide."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x / width + np.sin(angle) * y / height
    bump = np.exp(-(((x - width * rng.uniform(0.3, 0.7)) / (0.3 * width)) ** 2
                    + ((y - height * rng.uniform(0.3, 0.7)) / (0.3 * height)) ** 2))
    depth = ramp + 0.6 * bump
    return (depth - depth.min()) / (np.ptp(depth) + 1e-9)


def _stepped_planes(truth: np.ndarray, depth: np.ndarray,
                    planes: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth rounded down to a plane index; each pixel blurred by its whole-plane distance."""
    index = np.minimum((depth * planes).astype(np.int64), planes - 1)
    blurred = [_blur(truth, IN_FOCUS_SIGMA + BLUR_PER_PLANE * d) for d in range(planes)]
    stack = np.empty((planes, *truth.shape), np.float32)
    for k in range(planes):
        distance = np.abs(index - k)
        for d in np.unique(distance):
            stack[k][distance == d] = blurred[d][distance == d]
    return stack, index


SUBSTEPS = 8  # blur levels per plane of defocus for a continuous slide (0.16 px of sigma apart)


def _continuous_planes(truth: np.ndarray, depth: np.ndarray,
                       planes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel blurred by its true distance to each plane (interpolated between blur
    levels 1/SUBSTEPS of a plane apart); the map is the nearest plane. The planes cover the
    slide as the stepped one's do: plane k is in focus at depth (k + 0.5) / planes."""
    z = np.clip(depth * planes - 0.5, 0, planes - 1)
    levels = np.stack([_blur(truth, IN_FOCUS_SIGMA + BLUR_PER_PLANE * s / SUBSTEPS)
                       for s in range((planes - 1) * SUBSTEPS + 2)])
    rows, cols = np.indices(truth.shape)
    stack = np.empty((planes, *truth.shape), np.float32)
    for k in range(planes):
        position = np.abs(z - k) * SUBSTEPS
        below = position.astype(np.int64)
        weight = (position - below).astype(np.float32)
        stack[k] = ((1 - weight) * levels[below, rows, cols]
                    + weight * levels[below + 1, rows, cols])
    return stack, np.rint(z).astype(np.int64)


def brightfield_stack(planes: int, height: int, width: int, seed: int = 0,
                      noise: float = 0.004, continuous: bool = False,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(stack (Z, H, W), truth (H, W), focus map (H, W))``, float32 in [0, 1]; the slide
    continuous or stepped (see the module docstring; the same specimen and slide for a seed)."""
    rng = np.random.default_rng(seed)
    absorbance = np.zeros((height, width), np.float32)
    sharp = _cells(height, width, 1, rng, density=1 / 500)[0]
    absorbance += 1.4 * sharp[0] + 0.5 * sharp[1]
    grain = _blur(rng.random((height, width), dtype=np.float32), 0.8)
    absorbance += 0.5 * (grain - grain.mean()) * (_blur(sharp[1], 4.0) > 0.01)
    truth = np.clip(0.9 * np.exp(-np.maximum(absorbance, 0)), 0, 1).astype(np.float32)
    depth = _slide_depth(height, width, rng)
    planes_of = _continuous_planes if continuous else _stepped_planes
    stack, focus_map = planes_of(truth, depth, planes)
    stack += rng.normal(0.0, noise, stack.shape).astype(np.float32)
    truth_seen = _blur(truth, IN_FOCUS_SIGMA)
    return np.clip(stack, 0, 1), truth_seen, focus_map
