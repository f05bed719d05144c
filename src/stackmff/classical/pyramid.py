"""Laplacian-pyramid fusion (Burt & Adelson 1983; Burt & Kolczynski 1993), whole stack."""

from __future__ import annotations

import cv2
import numpy as np

from stackmff.classical.transform_fusion import Decomposition, fuse_in_transform
from stackmff.methods import register
from stackmff.result import FusionResult


def pyramid_levels(shape: tuple[int, int], wanted: int = 7, smallest: int = 16) -> int:
    levels, size = 0, min(shape)
    while levels < wanted and size // 2 >= smallest:
        size //= 2
        levels += 1
    return levels


def laplacian_pyramid(image: np.ndarray, levels: int) -> Decomposition:
    """Band-pass levels (finest first) and the Gaussian top level."""
    details = []
    current = image
    for _ in range(levels):
        smaller = cv2.pyrDown(current)
        expanded = cv2.pyrUp(smaller, dstsize=(current.shape[1], current.shape[0]))
        details.append(current - expanded)
        current = smaller
    return Decomposition(lowpass=[current], details=details)


def collapse(pyramid: Decomposition) -> np.ndarray:
    image = pyramid.lowpass[0]
    for detail in reversed(pyramid.details):
        image = cv2.pyrUp(image, dstsize=(detail.shape[1], detail.shape[0])) + detail
    return image


@register("pyramid", "Laplacian pyramid: per band keep the sharpest layer's detail, "
          "average the base", confidence=False,
          selects=False)
def fuse_pyramid(layers: np.ndarray) -> FusionResult:
    levels = pyramid_levels(layers.shape[1:3])
    return fuse_in_transform(layers, lambda p: laplacian_pyramid(p, levels), collapse,
                             method="pyramid")
