"""Over-exposed highlights, flat bright plateaus and emitted light for the physical renderer,
all blurred in linear light.

Over-exposed: the brightest parts of a scene raised above the sensor's clipping level, so
that they are blurred before they clip.

Why: a lens spreads a window's, a lamp's or a sunlit patch's light before the sensor clips
it, so out of focus such a highlight becomes a wider, flat, clipped area whose rim is as hard
as an edge in focus, and the layer that shows it looks sharp to a focus measure. Blurring
values that were clipped already (the renderer without this) never spreads it.
On Devernay's ray-traced office, every bit of the network's error beyond `depthmap`'s lies
within 4 px of clipped pixels (`benchmarks/where_it_loses.py`).

Plateaus: the brightest part of a scene made one flat level below the clipping level, as a
brightfield slide's illuminated background or a lit backdrop is. Out of focus, dark detail
beside it dents the plateau instead of the plateau spreading over the detail: the opposite
of a clipped highlight, which a network trained on highlights alone takes it for.

Emission: the brightest part of a scene as light sources on a dark ground, none of it clipped,
composited by adding the light of every depth (a transparent, glowing specimen, as under a
fluorescence microscope, has no occlusion). Out of focus, a bright structure spreads a haze
over the dark ground around it; the layer that shows the ground sharp is the one where the
haze is faintest, not the one with the most contrast.
"""

from __future__ import annotations

import numpy as np

from stackmff.io.colour import linear_from_perceptual, perceptual

GAIN = (1.5, 12.0)       # the brightest pixel's radiance, in units of the clipping level
QUANTILE = (0.6, 0.95)   # the ramp of extra light starts at this quantile of brightness
PLATEAU_SHARE = (0.2, 0.6)  # share of the scene's pixels that the plateau covers
PLATEAU_LEVEL = (0.6, 0.97)  # the plateau's sRGB value
EMISSION_SHARE = (0.05, 0.3)  # share of the scene's pixels that emit light
EMISSION_PEAK = (0.3, 0.95)   # the brightest emitter's linear radiance (below clipping)
EMISSION_GROUND = (0.0, 0.02)  # the dark ground's linear radiance


def overexpose(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance of an sRGB ``image`` in [0, 1] whose brightest parts exceed 1.

    Each pixel's radiance is multiplied by ``1 + (gain / top - 1) * ramp``, the ramp rising
    from 0 at a drawn quantile of brightness (the channels' maximum) to 1 at the brightest
    pixel (``top``), whose radiance becomes ``gain``: a monotone tone curve, so it adds no
    edge that the scene does not have."""
    linear = linear_from_perceptual(image)
    bright = linear.max(axis=-1) if linear.ndim == 3 else linear
    top = float(bright.max())
    start = min(float(np.quantile(bright, rng.uniform(*QUANTILE))), 0.9 * top)
    gain = float(np.exp(rng.uniform(np.log(GAIN[0]), np.log(GAIN[1]))))
    ramp = np.clip((bright - start) / max(top - start, 1e-6), 0.0, 1.0)
    factor = 1.0 + (gain / max(top, 1e-6) - 1.0) * ramp
    return (linear * (factor[..., None] if linear.ndim == 3 else factor)).astype(np.float32)


def plateau(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance of an sRGB ``image`` in [0, 1] whose brightest pixels (a drawn share)
    are one flat grey, a drawn sRGB value below 1: every channel limited to a level (the
    scene itself saturated, before any blur) and scaled to that grey, so nothing clips."""
    linear = linear_from_perceptual(image)
    dimmest = linear.min(axis=-1) if linear.ndim == 3 else linear
    level = max(float(np.quantile(dimmest, 1.0 - rng.uniform(*PLATEAU_SHARE))), 1e-6)
    white = float(linear_from_perceptual(np.float32(rng.uniform(*PLATEAU_LEVEL))))
    return (np.minimum(linear, level) * (white / level)).astype(np.float32)


def emission(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance of an sRGB ``image`` in [0, 1] as emitted light: every channel's
    excess over the brightness of a drawn quantile (the emitters, a drawn share of the
    pixels, their texture kept), scaled so the brightest reaches a drawn peak below
    clipping, on a faint uniform ground."""
    linear = linear_from_perceptual(image)
    bright = linear.max(axis=-1) if linear.ndim == 3 else linear
    start = float(np.quantile(bright, 1.0 - rng.uniform(*EMISSION_SHARE)))
    light = np.maximum(linear - start, 0.0)
    peak, ground = rng.uniform(*EMISSION_PEAK), rng.uniform(*EMISSION_GROUND)
    return (ground + light * (peak / max(float(light.max()), 1e-6))).astype(np.float32)


def develop(radiance: np.ndarray) -> np.ndarray:
    """What the sensor records of linear radiance: clipped at 1, sRGB-encoded."""
    return perceptual(np.clip(radiance, 0.0, 1.0))
