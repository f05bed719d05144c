"""Dual-tree complex wavelet transform (Kingsbury) in 2-D, written for whole-stack fusion.

Source: N. Kingsbury, "Complex wavelets for shift invariant analysis and filtering of
signals", ACHA 10(3), 2001, and "Design of Q-shift complex wavelets for image processing
using frequency domain energy minimization", ICIP 2003.

Four real separable DWTs run side by side (trees a/b along each axis). Level 1 uses one
orthonormal filter in both trees with a one-sample offset; deeper levels use a Q-shift
pair, ``h0b = reversed(h0a)``, whose group delays differ by half a sample. Summing and
differencing the four trees' subbands gives six complex, oriented subbands per level.

Every tree is an orthonormal filter bank with periodic extension, so the inverse is the
exact adjoint: perfect reconstruction to rounding error. The Q-shift filter is designed
here (stop-band energy minimisation under orthonormality) rather than copied from a table.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

QSHIFT_LENGTH = 14
# design_qshift_filter() as run once with two BLAS threads. Stored, because the optimiser's
# result depends on the BLAS thread count (one thread lands in another local optimum), and the
# method's output must not depend on the machine it runs on.
QSHIFT_H0A = np.array([
    0.0013900264242007836, -0.0016700666770596126, 0.026138331852636823,
    -0.028622716434515586, -0.10974410041435152, 0.2596537519789131,
    0.7695168004787813, 0.5633573567997987, 0.00371122229200832,
    -0.09468864901389366, 0.01920983982276047, 0.011670053671971884,
    -0.003115337324077047, -0.0025929510840789934])


def qshift_filter() -> np.ndarray:
    """The tree-a Q-shift lowpass filter ``h0a``: orthonormal, delay ~ 1/4 sample."""
    return QSHIFT_H0A.copy()


def design_qshift_filter(length: int = QSHIFT_LENGTH) -> np.ndarray:
    """Design the tree-a Q-shift lowpass filter ``h0a`` (orthonormal, delay ~ 1/4 sample).

    ``h0a`` and its reverse are the odd and even samples of one smooth, symmetric lowpass
    filter ``h2`` at twice the rate; minimising ``h2``'s stop-band energy under
    orthonormality gives the quarter-sample delay (Kingsbury 2003).
    """
    n = length
    taps = np.arange(2 * n) - (2 * n - 1) / 2.0
    start = np.sinc(taps / 4.0) * np.hamming(2 * n)
    h0a = start[1::2] * np.sqrt(2) / start[1::2].sum()

    omega = np.linspace(0.45 * np.pi, np.pi, 400)
    positions = np.arange(2 * n)
    basis = np.exp(-1j * np.outer(omega, positions))

    def interleave(h: np.ndarray) -> np.ndarray:
        h2 = np.empty(2 * n)
        h2[1::2] = h
        h2[0::2] = h[::-1]
        return h2

    def stopband_energy(h: np.ndarray) -> float:
        return float(np.sum(np.abs(basis @ interleave(h)) ** 2))

    constraints = [{"type": "eq", "fun": lambda h: h.sum() - np.sqrt(2)}]
    for shift in range(n // 2):
        constraints.append({
            "type": "eq",
            "fun": lambda h, m=shift: float(h[: n - 2 * m] @ h[2 * m:]) - (1.0 if m == 0 else 0.0),
        })
    from scipy.optimize import minimize  # imported here: slow, and only for this design

    result = minimize(stopband_energy, h0a, method="SLSQP", constraints=constraints,
                      options={"ftol": 1e-14, "maxiter": 500})
    return np.asarray(result.x, np.float64)


def _highpass(h0: np.ndarray) -> np.ndarray:
    """Alternating flip: the orthonormal highpass partner of ``h0``."""
    return h0[::-1] * (-1.0) ** np.arange(len(h0))


def _correlate_valid(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """``out[i] = sum_t kernel[t] * x[i + t]`` along ``axis`` over the valid range (2-D x)."""
    k = kernel.astype(np.float32)
    k = k[None, :] if axis == 1 else k[:, None]
    full = cv2.filter2D(x, cv2.CV_32F, k, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = x.shape[axis] - len(kernel) + 1
    return full[:, :valid] if axis == 1 else full[:valid]


def _wrap(x: np.ndarray, before: int, after: int, axis: int) -> np.ndarray:
    size = x.shape[axis]
    index = np.arange(-before, size + after) % size
    return np.ascontiguousarray(np.take(x, index, axis=axis))


def _analyse(x: np.ndarray, h0: np.ndarray, offset: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Periodic, decimated filtering: ``y[k] = sum_t h[t] x[(2k + t + offset) mod M]``."""
    n = len(h0)
    padded = _wrap(x, -offset, n - 1 + offset, axis)
    keep = (slice(None), slice(0, None, 2)) if axis == 1 else (slice(0, None, 2), slice(None))
    lo = _correlate_valid(padded, h0, axis)[keep]
    hi = _correlate_valid(padded, _highpass(h0), axis)[keep]
    return lo, hi


def _synthesise(lo: np.ndarray, hi: np.ndarray, h0: np.ndarray, offset: int, axis: int) -> np.ndarray:
    """Exact adjoint of :func:`_analyse` (and so its inverse: the bank is orthonormal)."""
    n = len(h0)
    shape = list(lo.shape)
    shape[axis] *= 2
    up_lo, up_hi = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    every_other = (slice(None), slice(0, None, 2)) if axis == 1 else (slice(0, None, 2), slice(None))
    up_lo[every_other], up_hi[every_other] = lo, hi
    out = (_correlate_valid(_wrap(up_lo, n - 1, 0, axis), h0[::-1], axis)
           + _correlate_valid(_wrap(up_hi, n - 1, 0, axis), _highpass(h0)[::-1], axis))
    return np.roll(out, offset, axis=axis)


@dataclass
class DTCWTCoefficients:
    """``lowpass``: 4 real tree lowpass images (aa, ab, ba, bb) at the coarsest level.
    ``highpass[level]``: 6 complex oriented subbands, finest level first."""

    lowpass: list[np.ndarray]
    highpass: list[list[np.ndarray]]
    padded_shape: tuple[int, int]
    shape: tuple[int, int]


_TREES = ("a", "b")


def _level_filter(tree: str, level: int) -> tuple[np.ndarray, int]:
    h0a = qshift_filter()
    if level == 0:
        return h0a, 0 if tree == "a" else 1
    return (h0a, 0) if tree == "a" else (h0a[::-1].copy(), 0)


def max_levels(shape: tuple[int, int], wanted: int = 6, smallest: int = 8) -> int:
    """Levels such that the coarsest band keeps at least ``smallest`` samples."""
    levels = 0
    size = min(shape)
    while levels < wanted and size // 2 >= smallest:
        size //= 2
        levels += 1
    return max(levels, 1)


def forward(image: np.ndarray, levels: int) -> DTCWTCoefficients:
    """2-D DTCWT of a single-channel float image."""
    height, width = image.shape
    block = 2 ** levels
    pad_y, pad_x = (-height) % block, (-width) % block
    padded = cv2.copyMakeBorder(np.asarray(image, np.float32), 0, pad_y, 0, pad_x,
                                cv2.BORDER_REFLECT_101)
    lows = {(ty, tx): padded for ty in _TREES for tx in _TREES}
    highpass = []
    for level in range(levels):
        bands = {}
        for (ty, tx), low in lows.items():
            fy, oy = _level_filter(ty, level)
            fx, ox = _level_filter(tx, level)
            l_rows, h_rows = _analyse(low, fy, oy, axis=0)
            ll, lh = _analyse(l_rows, fx, ox, axis=1)
            hl, hh = _analyse(h_rows, fx, ox, axis=1)
            lows[(ty, tx)] = ll
            bands[(ty, tx)] = (lh, hl, hh)
        highpass.append([z for k in range(3) for z in _to_complex(bands, k)])
    return DTCWTCoefficients(lowpass=[lows[t] for t in sorted(lows)], highpass=highpass,
                             padded_shape=padded.shape, shape=(height, width))


def inverse(coeffs: DTCWTCoefficients) -> np.ndarray:
    """Reconstruct the image; exact inverse of :func:`forward` up to rounding."""
    keys = sorted((ty, tx) for ty in _TREES for tx in _TREES)
    lows = dict(zip(keys, coeffs.lowpass))
    for level in reversed(range(len(coeffs.highpass))):
        subbands = [_from_complex(*coeffs.highpass[level][2 * k: 2 * k + 2]) for k in range(3)]
        for key in keys:
            ty, tx = key
            fy, oy = _level_filter(ty, level)
            fx, ox = _level_filter(tx, level)
            lh, hl, hh = (subbands[k][key] for k in range(3))
            l_rows = _synthesise(lows[key], lh, fx, ox, axis=1)
            h_rows = _synthesise(hl, hh, fx, ox, axis=1)
            lows[key] = _synthesise(l_rows, h_rows, fy, oy, axis=0)
    image = sum(lows.values()) / 4.0
    height, width = coeffs.shape
    return image[:height, :width].astype(np.float32)


def _to_complex(bands: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    aa, ab, ba, bb = (bands[key][k] for key in (("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")))
    scale = np.sqrt(0.5)
    return (aa - bb + 1j * (ab + ba)) * scale, (aa + bb + 1j * (ab - ba)) * scale


def _from_complex(z1: np.ndarray, z2: np.ndarray) -> dict:
    scale = np.sqrt(0.5)
    return {
        ("a", "a"): (z1.real + z2.real) * scale,
        ("b", "b"): (z2.real - z1.real) * scale,
        ("a", "b"): (z1.imag + z2.imag) * scale,
        ("b", "a"): (z1.imag - z2.imag) * scale,
    }
