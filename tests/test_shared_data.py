"""Checks on real stacks from ../shared/data; skipped where that folder is absent."""

from pathlib import Path

import pytest

from stackmff.cli import main
from stackmff.io import read_pages

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PCB = DATA / "pcb-focus-stack" / "stack"

pytestmark = pytest.mark.skipif(not PCB.is_dir(), reason="../shared/data not available")


def test_real_pcb_stack_fuses_at_input_size(tmp_path):
    out = tmp_path / "pcb.png"
    assert main(["fuse", str(PCB), "-o", str(out), "--focus-map", str(tmp_path / "map.png"),
                 "-q"]) == 0
    size = read_pages(next(PCB.glob("*.jpg")))[0].shape
    assert read_pages(out)[0].shape == size
    assert read_pages(tmp_path / "map_indices.png")[0].shape == size[:2]


def test_the_hci_light_fields_are_stacks_with_truth_and_map():
    """Both scenes at N = 9 and N = 5 (the even planes), the centre view as truth, and the
    true map for that N: the gather by it is close to the truth where no near object veils."""
    import numpy as np

    from stackmff.evaluation.suites import hci_stacks
    from stackmff.metrics import psnr
    from stackmff.stack_ops import gather

    stacks = list(hci_stacks(DATA))
    assert [(s.name, s.variant) for s in stacks] == [
        ("antinous", "N=9"), ("antinous", "N=5"), ("backgammon", "N=9"), ("backgammon", "N=5")]
    for s in stacks:
        n = int(s.variant[2:])
        assert s.layers.shape == (n, 512, 512, 3) and s.truth.shape == (512, 512, 3)
        assert s.focus_map.shape == (512, 512) and 0 <= s.focus_map.min() <= s.focus_map.max() < n
        assert psnr(gather(s.layers, s.focus_map), s.truth) > 25
        assert np.all(np.isfinite(s.layers))
