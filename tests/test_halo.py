"""Halo suppression: exact re-gather, edits only suspect pixels, moves them to the near layer."""

import numpy as np
import pytest

from stackmff.errors import StackError
from stackmff.result import FusionResult
from stackmff.retouch import suppress_halos
from stackmff.stack_ops import gather


def _halo_case(order: str = "near-to-far") -> tuple[np.ndarray, FusionResult]:
    """Three layers 16x16: the left half confidently near (layer 0), a two-column unsure band
    beside it chosen far (layer 2), the rest confidently far."""
    rng = np.random.default_rng(0)
    layers = rng.random((3, 16, 16)).astype(np.float32)
    focus_map = np.full((16, 16), 2, np.int64)
    focus_map[:, :8] = 0
    confidence = np.full((16, 16), 0.9, np.float32)
    confidence[:, 8:10] = 0.1
    if order == "far-to-near":
        layers, focus_map = layers[::-1].copy(), 2 - focus_map
    return layers, FusionResult(gather(layers, focus_map), focus_map, confidence, "depthmap")


def test_suppression_moves_unsure_band_to_the_near_layer():
    layers, result = _halo_case()
    out = suppress_halos(layers, result, reach=3, window=5)
    assert (out.focus_map[:, 8:10] == 0).all()
    assert out.method == "depthmap+halo"


def test_suppression_keeps_the_result_exact_and_the_confidence():
    layers, result = _halo_case()
    out = suppress_halos(layers, result, reach=3, window=5)
    np.testing.assert_array_equal(out.fused, gather(layers, out.focus_map))
    np.testing.assert_array_equal(out.confidence, result.confidence)


def test_suppression_changes_nothing_outside_its_region():
    layers, result = _halo_case()
    out = suppress_halos(layers, result, reach=3, window=5)
    outside = np.ones((16, 16), bool)
    outside[:, 8:10] = False  # the only unsure pixels with a nearer confident choice nearby
    np.testing.assert_array_equal(out.focus_map[outside], result.focus_map[outside])
    np.testing.assert_array_equal(out.fused[outside], result.fused[outside])


def test_suppression_out_of_reach_changes_nothing():
    layers, result = _halo_case()
    result.confidence[:, 4:8] = 0.1  # the confident near pixels are now 3+ px from the band
    result.focus_map[:, 4:8] = 1
    result.fused = gather(layers, result.focus_map)
    out = suppress_halos(layers, result, reach=1, window=3)
    np.testing.assert_array_equal(out.focus_map[:, 8:], result.focus_map[:, 8:])
    assert (out.focus_map[:, 4] == 0).all()  # within reach of the near layer: moved


def test_suppression_follows_far_to_near_order():
    layers, result = _halo_case("far-to-near")
    out = suppress_halos(layers, result, reach=3, window=5, order="far-to-near")
    assert (out.focus_map[:, 8:10] == 2).all()
    np.testing.assert_array_equal(out.fused, gather(layers, out.focus_map))


def test_suppression_needs_a_confidence():
    layers, result = _halo_case()
    with pytest.raises(StackError, match="needs both"):
        suppress_halos(layers, FusionResult(result.fused, result.focus_map, None, "dwt"))
