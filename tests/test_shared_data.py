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
