"""A stack kept in the files' integers (what `stackmff fuse` loads) fuses exactly as the same
stack in float32: the same focus map, and the same output pixels."""

import cv2
import numpy as np
import pytest
import torch

from stackmff.api import fuse_stack
from stackmff.fusion import StackFuser
from stackmff.io import load_stack
from stackmff.io.pixels import from_float, to_float
from stackmff.model import StackMFFV3
from stackmff.stack_ops import check_layers, luma, window_luma
from stackmff.testing import make_stack, write_stack


@pytest.fixture
def files(tmp_path):
    """Three stacks: 8-bit colour, 16-bit grey, and 16-bit colour with one 8-bit grey file."""
    stacks = {}
    layers, _, _ = make_stack(4, 48, 70, colour=True, seed=1)
    write_stack(tmp_path / "rgb8", layers, np.uint8)
    stacks["rgb8"] = tmp_path / "rgb8"
    layers, _, _ = make_stack(3, 40, 52, colour=False, seed=2)
    write_stack(tmp_path / "grey16", layers, np.uint16)
    stacks["grey16"] = tmp_path / "grey16"
    layers, _, _ = make_stack(3, 40, 52, colour=True, seed=3)
    paths = write_stack(tmp_path / "mixed", layers, np.uint16)
    cv2.imwrite(str(paths[1]), cv2.imread(str(paths[1]), cv2.IMREAD_GRAYSCALE))  # 8-bit grey
    stacks["mixed"] = tmp_path / "mixed"
    return stacks


@pytest.mark.parametrize("name", ["rgb8", "grey16", "mixed"])
def test_integer_stack_holds_the_values_the_float_stack_holds(files, name):
    floats = load_stack(files[name])
    integers = load_stack(files[name], floats=False)
    assert integers.layers.dtype == integers.dtype == floats.dtype
    np.testing.assert_array_equal(to_float(integers.layers), floats.layers)
    np.testing.assert_array_equal(from_float(floats.layers, floats.dtype), integers.layers)


@pytest.mark.parametrize("method", ["depthmap", "pyramid"])
@pytest.mark.parametrize("name", ["rgb8", "mixed"])
def test_classical_methods_fuse_integers_as_floats(files, name, method):
    floats = load_stack(files[name])
    integers = load_stack(files[name], floats=False)
    expected = fuse_stack(floats, method)
    result = fuse_stack(integers, method)
    np.testing.assert_array_equal(result.focus_map, expected.focus_map)
    np.testing.assert_array_equal(integers.to_output(result.fused),
                                  floats.to_output(expected.fused))


@pytest.mark.parametrize("tile", [None, 32])
def test_the_network_fuses_integers_as_floats(files, tiny_config, tile):
    floats = load_stack(files["rgb8"])
    integers = load_stack(files["rgb8"], floats=False)
    torch.manual_seed(0)
    fuser = StackFuser(StackMFFV3(tiny_config), tile=tile, margin=16, workers=2)
    expected, result = fuser(floats.layers), fuser(integers.layers)
    np.testing.assert_array_equal(result.focus_map, expected.focus_map)
    np.testing.assert_array_equal(result.confidence, expected.confidence)
    assert result.fused.dtype == np.uint8
    np.testing.assert_array_equal(result.fused, floats.to_output(expected.fused))


def test_window_luma_converts_each_layer_as_the_whole_stack_would():
    pixels = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), np.uint8)
    np.testing.assert_array_equal(window_luma(pixels), luma(to_float(pixels)))
    window = window_luma(pixels, slice(2, 9), slice(5, 25))
    assert window.shape == (3, 7, 20) and window.dtype == np.float32
    np.testing.assert_allclose(window, luma(to_float(pixels))[:, 2:9, 5:25], atol=1e-6)


def test_check_layers_scales_integers_unless_asked_to_keep_them():
    pixels = np.full((2, 4, 4), 65535, np.uint16)
    assert check_layers(pixels, keep_integers=True) is pixels
    np.testing.assert_array_equal(check_layers(pixels), np.ones((2, 4, 4), np.float32))


@pytest.mark.parametrize("floats", [False, True])
def test_a_later_colour_16_bit_layer_widens_the_layers_before_it(tmp_path, floats):
    layers, _, _ = make_stack(3, 40, 52, colour=True, seed=4)
    paths = write_stack(tmp_path, layers, np.uint16)
    grey8 = (layers[0, ..., 1] * 255).round().astype(np.uint8)
    cv2.imwrite(str(paths[0]), grey8)  # the first file: 8-bit grey
    stack = load_stack(paths, floats=floats)
    assert stack.dtype == np.uint16 and stack.layers.shape == (3, 40, 52, 3)
    expected = grey8.astype(np.float32) / 255 if floats else grey8.astype(np.uint16) * 257
    for channel in range(3):
        np.testing.assert_array_equal(stack.layers[0, ..., channel], expected)
    later = load_stack(paths[1:], floats=floats).layers
    np.testing.assert_array_equal(stack.layers[1:], later)
