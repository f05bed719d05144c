"""The rendered microscope slides: a stepped slide is sharp in one plane per pixel, a
continuous one is blurred by its true distance, with no rim where the map changes plane."""

import numpy as np

from stackmff.data.specimens import brightfield_stack
from stackmff.stack_ops import gather


def _rim_errors(stack, truth, focus_map):
    """Summed error to the truth, on pixels whose right neighbour's plane is one deeper, of
    the pixel's own plane and of that deeper plane."""
    rim = np.zeros(focus_map.shape, bool)
    rim[:, :-1] = focus_map[:, 1:] == focus_map[:, :-1] + 1
    rows, cols = np.nonzero(rim)
    own = np.abs(stack[focus_map[rows, cols], rows, cols] - truth[rows, cols]).sum()
    deeper = np.abs(stack[focus_map[rows, cols] + 1, rows, cols] - truth[rows, cols]).sum()
    return own, deeper


def test_stepped_and_continuous_slides_blur_the_same_specimen_differently():
    stepped, truth, stepped_map = brightfield_stack(8, 96, 128, seed=3, noise=0.0)
    smooth, smooth_truth, smooth_map = brightfield_stack(8, 96, 128, seed=3, noise=0.0,
                                                         continuous=True)
    assert np.array_equal(truth, smooth_truth)
    assert set(np.unique(smooth_map)) == set(range(8))
    # stepped: each pixel exactly sharp in its plane, and a whole plane off in the next
    assert np.array_equal(gather(stepped, stepped_map), truth)
    own, deeper = _rim_errors(stepped, truth, stepped_map)
    assert own == 0 and deeper > 0
    # continuous: the nearest plane is the sharpest, and where the map changes plane the
    # two planes that meet are about as sharp as each other (no rim)
    error = np.abs(gather(smooth, smooth_map) - truth).mean()
    for offset in (-1, 1):
        other = np.clip(smooth_map + offset, 0, 7)
        assert error < np.abs(gather(smooth, other) - truth).mean()
    own, deeper = _rim_errors(smooth, truth, smooth_map)
    assert 0.5 < own / deeper < 1.0
