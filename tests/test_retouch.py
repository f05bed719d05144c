"""Retouching by re-gathering: paint and prefer edit the focus map, regather composes the image
again exactly, and `stackmff regather` does it from an edited index PNG."""

from pathlib import Path

import numpy as np
import pytest

from stackmff import StackError, gather
from stackmff.cli import main
from stackmff.io import read_pages, write_image
from stackmff.retouch import Retouch, paint, prefer, regather
from stackmff.testing import make_stack, write_stack

RECT = (slice(8, 30), slice(10, 40))  # rows, columns of the retouched rectangle


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def fused_stack(tmp_path: Path, capsys, colour: bool, dtype, suffix: str, out_suffix: str):
    """Write a tiny stack, fuse it with --focus-map and --confidence; return the paths."""
    layers, _, _ = make_stack(n_layers=3, height=48, width=64, colour=colour)
    paths = write_stack(tmp_path / "stack", layers, dtype=dtype, suffix=suffix)
    out = tmp_path / "out"
    fused = out / f"fused{out_suffix}"
    code, _, stderr = run(capsys, "fuse", tmp_path / "stack", "-o", fused,
                          "--focus-map", out / "map.png", "--confidence", out / "conf.png")
    assert code == 0, stderr
    return paths, fused, out / "map_indices.png", out / "conf.png"


@pytest.mark.parametrize("colour, dtype, suffix", [(True, np.uint8, ".png"),
                                                   (False, np.uint16, ".tif")],
                         ids=["8-bit colour png", "16-bit tiff"])
def test_regather_round_trip_is_exact(tmp_path, capsys, colour, dtype, suffix):
    paths, fused, indices, _ = fused_stack(tmp_path, capsys, colour, dtype, suffix, suffix)
    original = read_pages(indices)[0]
    assert original.dtype == np.uint16 and (original[RECT] != 0).any()  # the edit changes pixels
    edited = original.copy()
    edited[RECT] = 0
    write_image(edited, tmp_path / "edited.png")

    code, stdout, stderr = run(capsys, "regather", tmp_path / "stack", "--focus-map",
                               tmp_path / "edited.png", "-o", tmp_path / f"re{suffix}")
    assert code == 0, stderr
    assert "wrote" in stdout
    before = read_pages(fused)[0]
    after = read_pages(tmp_path / f"re{suffix}")[0]
    layer0 = read_pages(paths[0])[0]
    assert after.dtype == before.dtype == np.dtype(dtype) and after.shape == before.shape
    assert np.array_equal(after[RECT], layer0[RECT])
    outside = np.ones(edited.shape, bool)
    outside[RECT] = False
    assert np.array_equal(after[outside], before[outside])


def test_regather_of_the_unedited_map_is_the_fused_image(tmp_path, capsys):
    _, fused, indices, _ = fused_stack(tmp_path, capsys, True, np.uint8, ".png", ".png")
    code, _, stderr = run(capsys, "regather", tmp_path / "stack", "--focus-map", indices,
                          "-o", tmp_path / "same.png", "-q")
    assert code == 0, stderr
    assert np.array_equal(read_pages(tmp_path / "same.png")[0], read_pages(fused)[0])


def test_regather_carries_the_confidence_over_with_zero_where_edited(tmp_path, capsys):
    _, _, indices, conf = fused_stack(tmp_path, capsys, False, np.uint8, ".png", ".png")
    original = read_pages(indices)[0]
    edited = original.copy()
    edited[RECT] = 0
    write_image(edited, tmp_path / "edited.png")
    code, _, stderr = run(capsys, "regather", tmp_path / "stack", "--focus-map",
                          tmp_path / "edited.png", "-o", tmp_path / "re.png",
                          "--confidence", conf, "--original-map", indices,
                          "--confidence-out", tmp_path / "conf_re.png")
    assert code == 0, stderr
    before, after = read_pages(conf)[0], read_pages(tmp_path / "conf_re.png")[0]
    changed = edited != original
    assert changed.any() and np.all(after[changed] == 0)
    assert np.array_equal(after[~changed], before[~changed])


def bad_regather(tmp_path: Path, capsys, case: str) -> tuple[list, str]:
    paths, _, indices, conf = fused_stack(tmp_path, capsys, True, np.uint8, ".png", ".png")
    out = tmp_path / "re.png"
    edited = read_pages(indices)[0]
    if case == "map of another size":
        write_image(edited[:-4, :-4], tmp_path / "edited.png")
        return ["--focus-map", tmp_path / "edited.png", "-o", out], \
            "is 60x44 but the stack's layers are 64x48"
    if case == "index naming a missing layer":
        edited[5, 7] = 9
        write_image(edited, tmp_path / "edited.png")
        return ["--focus-map", tmp_path / "edited.png", "-o", out], \
            "names layer 9 (first at x=7, y=5), but the stack has 3 layers (0-2)"
    if case == "colour picture":
        return ["--focus-map", tmp_path / "out" / "map.png", "-o", out], \
            "is a colour picture, not raw layer indices: use the map_indices.png"
    if case == "grey picture with colour bar":
        picture = read_pages(tmp_path / "out" / "map.png")[0]
        write_image(picture[..., 1], tmp_path / "map.png")
        return ["--focus-map", tmp_path / "map.png", "-o", out], "colour bar? Use map_indices.png"
    if case == "output is an input layer":
        return ["--focus-map", indices, "-o", paths[0]], "refusing to overwrite input file"
    if case == "output is the map":
        return ["--focus-map", indices, "-o", indices], "refusing to overwrite input file"
    if case == "confidence without the original map":
        return ["--focus-map", indices, "-o", out, "--confidence", conf,
                "--confidence-out", tmp_path / "c.png"], "needs all three"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["map of another size", "index naming a missing layer",
                                  "colour picture", "grey picture with colour bar",
                                  "output is an input layer", "output is the map",
                                  "confidence without the original map"])
def test_bad_regather_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    extra, message = bad_regather(tmp_path, capsys, case)
    before = snapshot(tmp_path)
    code, stdout, stderr = run(capsys, "regather", tmp_path / "stack", *extra)
    assert code == 1
    assert stderr.count("\n") == 1 and stderr.startswith("stackmff: error:"), stderr
    assert message in stderr, stderr
    assert snapshot(tmp_path) == before


# --- the library: paint, prefer, Retouch -------------------------------------------------------

def random_case(seed: int = 0, n_layers: int = 5, shape=(24, 30)):
    rng = np.random.default_rng(seed)
    focus_map = rng.integers(0, n_layers, shape).astype(np.uint16)
    confidence = rng.random(shape).astype(np.float32)
    region = np.zeros(shape, bool)
    region[5:18, 4:22] = True
    return focus_map, confidence, region


def window_reference(focus_map, confidence, region, threshold, window, pick):
    """Brute force: per pixel of the region, pick() of the confident layers in its window."""
    expected = focus_map.copy()
    half = window // 2
    for y, x in zip(*np.nonzero(region)):
        ys = slice(max(y - half, 0), y + half + 1)
        xs = slice(max(x - half, 0), x + half + 1)
        candidates = focus_map[ys, xs][confidence[ys, xs] >= threshold]
        if candidates.size:
            expected[y, x] = pick(candidates)
    return expected


@pytest.mark.parametrize("side, order, pick", [("near", "near-to-far", np.min),
                                               ("far", "near-to-far", np.max),
                                               ("near", "far-to-near", np.max)])
def test_prefer_picks_the_nearest_confident_layer_in_the_window(side, order, pick):
    focus_map, confidence, region = random_case()
    result = prefer(focus_map, confidence, region, side, min_confidence=0.7, window=3,
                    order=order)
    expected = window_reference(focus_map, confidence, region, 0.7, 3, pick)
    assert np.array_equal(result, expected)
    assert np.array_equal(result[~region], focus_map[~region])
    assert (result != focus_map).any()  # the rule did something


def test_prefer_near_removes_a_halo_around_a_near_object():
    focus_map = np.full((30, 30), 4, np.uint16)  # far background
    focus_map[10:20, 10:20] = 0  # near object, confident
    confidence = np.full((30, 30), 0.9, np.float32)
    focus_map[8:22, 8:10] = 3  # a halo of far layers left of the object, unsure
    confidence[8:22, 8:10] = 0.2
    region = np.zeros((30, 30), bool)
    region[6:24, 6:12] = True
    result = prefer(focus_map, confidence, region, "near", window=5)
    assert np.all(result[10:20, 8:10] == 0)  # the halo beside the object takes its layer
    assert np.array_equal(result[~region], focus_map[~region])


def test_prefer_with_probabilities_takes_the_lowest_layer_close_to_the_best():
    rng = np.random.default_rng(3)
    probabilities = rng.random((4, 12, 16)).astype(np.float32)
    focus_map = np.argmax(probabilities, axis=0).astype(np.uint16)
    region = np.zeros((12, 16), bool)
    region[2:9, 3:13] = True
    result = prefer(focus_map, None, region, "near", probabilities=probabilities, min_ratio=0.8)
    candidates = probabilities >= 0.8 * probabilities.max(axis=0)
    lowest = np.argmax(candidates, axis=0)
    assert np.array_equal(result[region], lowest[region])
    assert np.array_equal(result[~region], focus_map[~region])
    assert (result != focus_map).any()


def test_paint_sets_the_layer_in_the_mask_only_and_checks_its_inputs():
    focus_map, _, region = random_case()
    painted = paint(focus_map, region, 2, n_layers=5)
    assert np.all(painted[region] == 2)
    assert np.array_equal(painted[~region], focus_map[~region])
    assert not np.all(focus_map[region] == 2)  # the input is not changed
    with pytest.raises(StackError, match="cannot paint layer 5: the stack has 5 layers"):
        paint(focus_map, region, 5, n_layers=5)
    with pytest.raises(StackError, match="mask is"):
        paint(focus_map, region[:-1], 2)


def test_retouch_keeps_image_map_and_confidence_consistent():
    layers, _, _ = make_stack(n_layers=5, height=24, width=30, colour=True)
    focus_map, confidence, region = random_case()
    start = Retouch.start(layers, focus_map, confidence)
    painted = start.paint(region, 1)
    assert np.array_equal(painted.fused, gather(layers, painted.focus_map))
    assert np.array_equal(painted.fused[region], layers[1][region])
    assert np.all(painted.confidence[region] == 0)
    assert np.array_equal(painted.confidence[~region], confidence[~region])
    assert np.array_equal(start.focus_map, focus_map)  # every edit is a new Retouch

    preferred = start.prefer(region, "far", window=3)
    changed = preferred.focus_map != focus_map
    assert changed.any()
    assert np.all(preferred.confidence[changed] == 0)
    assert np.array_equal(preferred.confidence[~changed], confidence[~changed])
    assert np.array_equal(preferred.fused, regather(layers, preferred.focus_map))


def test_regather_refuses_a_map_that_does_not_fit_the_stack():
    layers, _, _ = make_stack(n_layers=3, height=10, width=12)
    with pytest.raises(StackError, match=r"names layer 3 .* has 3 layers \(0-2\)"):
        regather(layers, np.full((10, 12), 3, np.uint16))
    with pytest.raises(StackError, match="the focus map is 12x9 but the stack's layers are 12x10"):
        regather(layers, np.zeros((9, 12), np.uint16))
    with pytest.raises(StackError, match="integer layer indices"):
        regather(layers, np.zeros((10, 12), np.float32))
