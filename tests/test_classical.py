import numpy as np
import pytest

import stackmff
from stackmff.metrics import psnr
from stackmff.stack_ops import gather
from stackmff.testing import make_stack

METHODS = [m.name for m in stackmff.list_methods()]
# the maximum intensity projection takes the brightest layer, not the sharpest: a baseline for
# fluorescence, which the focus tests below do not apply to (its own test is further down)
FOCUS_METHODS = [name for name in METHODS if name != "mip"]


def test_registry_lists_every_classical_method():
    assert set(METHODS) >= {"depthmap", "pyramid", "dwt", "dtcwt", "dct"}
    assert all(m.summary for m in stackmff.list_methods())


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
@pytest.mark.parametrize("name", FOCUS_METHODS)
def test_method_recovers_focus_map_and_beats_every_single_layer(name, colour):
    layers, truth, focus_map = make_stack(n_layers=4, colour=colour)
    result = stackmff.fuse_stack(layers, method=name)
    assert result.fused.shape == truth.shape
    assert result.fused.dtype == np.float32
    assert result.method == name
    accuracy = np.mean(result.focus_map == focus_map)
    assert accuracy > 0.9, f"{name}: focus map accuracy {accuracy:.3f}"
    best_single = max(psnr(layer, truth) for layer in layers)
    assert psnr(result.fused, truth) > best_single + 8.0


@pytest.mark.parametrize("name", ["depthmap", "dct", "variance"])
def test_selection_methods_copy_pixels_from_the_stack(name):
    layers, _, _ = make_stack(n_layers=5, colour=True)
    result = stackmff.fuse_stack(layers, method=name)
    np.testing.assert_array_equal(result.fused, gather(layers, result.focus_map))
    assert result.confidence.shape == result.focus_map.shape
    assert 0.0 <= result.confidence.min() and result.confidence.max() <= 1.0


@pytest.mark.parametrize("name", METHODS)
def test_layer_order_does_not_change_the_fusion(name):
    layers, _, _ = make_stack(n_layers=4)
    order = np.array([2, 0, 3, 1])
    straight = stackmff.fuse_stack(layers, method=name)
    shuffled = stackmff.fuse_stack(layers[order], method=name)
    assert np.mean(np.abs(straight.fused - shuffled.fused) < 1e-4) > 0.99


def test_mip_is_the_brightest_layer_per_pixel_and_channel():
    layers, _, _ = make_stack(n_layers=4, colour=True)
    result = stackmff.fuse_stack(layers, method="mip")
    np.testing.assert_array_equal(result.fused, layers.max(axis=0))
    grey = layers.mean(axis=3)
    result = stackmff.fuse_stack(grey, method="mip")
    np.testing.assert_array_equal(result.fused, gather(grey, result.focus_map))


@pytest.mark.parametrize("name", FOCUS_METHODS)
def test_pairs_and_odd_sizes_work(name):
    layers, truth, focus_map = make_stack(n_layers=2, height=37, width=53)
    result = stackmff.fuse_stack(layers, method=name)
    assert result.fused.shape == (37, 53)
    assert np.mean(result.focus_map == focus_map) > 0.8


def test_bad_arguments_raise_value_error():
    layers, _, _ = make_stack(n_layers=3)
    with pytest.raises(ValueError, match="unknown fusion method 'nope'"):
        stackmff.fuse_stack(layers, method="nope")
    with pytest.raises(ValueError, match="at least 2 layers"):
        stackmff.fuse_stack(layers[:1])
    with pytest.raises(ValueError, match="shape"):
        stackmff.fuse_stack(layers[..., None].repeat(2, axis=-1))


def test_dwt_on_an_image_smaller_than_its_wavelet_is_quiet():
    """One level with boundary effects is the method's choice for a tiny image, not news for
    the user: PyWavelets' 'Level value too high' stays off stderr."""
    import warnings

    layers = np.random.default_rng(0).random((3, 4, 48)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stackmff.fuse_stack(layers, "dwt")
    assert result.fused.shape == (4, 48) and np.isfinite(result.fused).all()
