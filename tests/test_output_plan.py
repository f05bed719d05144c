"""The one output plan: every product named by one rule, checked before any pixel is read,
and written as the fuse wrote it."""

from pathlib import Path

import numpy as np
import pytest

from stackmff import StackError
from stackmff.cli import main
from stackmff.io import read_pages
from stackmff.outputs import OutputPlan, Target, indices_path
from stackmff.testing import make_stack, write_stack


@pytest.mark.parametrize(("picture", "indices"), [
    ("map.png", "map_indices.png"), ("map.tif", "map_indices.tif"),
    ("map.TIFF", "map_indices.tif"), ("map.jpg", "map_indices.png"),
    ("map.webp", "map_indices.png")])
def test_the_raw_indices_are_lossless_beside_any_picture(picture, indices):
    """16-bit indices beside the picture: a TIFF beside a TIFF (pages per stack), otherwise a
    PNG, never a lossy or 8-bit file."""
    assert indices_path(Path("out") / picture) == Path("out") / indices


def test_products_named_after_an_image_and_after_a_stem_agree():
    """napari names products after the saved image, batch after the stack: one rule."""
    beside = OutputPlan.beside(Path("out/B3.ome.tif"), focus_map=True, confidence=True,
                               height_map=True, pictures=".tif")
    named = OutputPlan.named(Path("out/B3"), ".ome.tif", focus_map=True, confidence=True,
                             height_map=True, pictures=".tif")
    assert beside == named
    assert [p.name for p in named.paths()] == [
        "B3.ome.tif", "B3_focus_map.tif", "B3_focus_map_indices.tif", "B3_confidence.tif",
        "B3_height_map.tif"]


@pytest.mark.parametrize(("plan", "target", "message"), [
    (OutputPlan.of("f.ome.tif", focus_map="m.png"), Target(True, stacks=4, where="x.ome.tif"),
     "holds 4 stacks"),
    (OutputPlan.of("f.ome.tif", height_map="h.png"), Target(True), "write them to a .tif"),
    (OutputPlan.of("f.png", focus_map="f.png"), Target(), "must differ"),
    (OutputPlan.of("f.png", confidence="c.png"), Target(), "produces no confidence"),
    (OutputPlan.of("f.xyz"), Target(), "unsupported file type"),
    (OutputPlan.of("a.png"), Target(inputs=(Path("a.png"),)), "overwrite input"),
])
def test_the_plan_refuses_before_any_pixel_is_read(tmp_path, monkeypatch, plan, target,
                                                   message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StackError, match=message):
        plan.check(target, has_confidence="confidence" not in message, method="pyramid")
    assert not any(tmp_path.iterdir())


def test_a_tiff_focus_map_gets_its_indices_as_a_tiff(tmp_path):
    layers, _, truth = make_stack(4, 48, 64, seed=3)
    write_stack(tmp_path / "stack", layers)
    out = tmp_path / "out"
    assert main(["fuse", str(tmp_path / "stack"), "-q", "-o", str(out / "fused.png"),
                 "--focus-map", str(out / "map.tif")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fused.png", "map.tif", "map_indices.tif"]
    indices = read_pages(out / "map_indices.tif")[0]
    assert indices.dtype == np.uint16 and np.mean(indices == truth) > 0.9
