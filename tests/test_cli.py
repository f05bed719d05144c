import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stackmff.cli import main
from stackmff.io import read_pages
from stackmff.testing import make_stack, write_stack


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


def test_fuse_writes_image_focus_map_and_confidence(tmp_path, capsys):
    layers, _, focus_map = make_stack(n_layers=4, colour=True)
    write_stack(tmp_path / "stack", layers)
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "fuse", tmp_path / "stack", "-o", out / "fused.png",
                               "--focus-map", out / "map.png", "--confidence", out / "conf.png")
    assert code == 0, stderr
    assert files_in(out) == {"fused.png", "map.png", "map_indices.png", "conf.png"}
    assert read_pages(out / "fused.png")[0].shape == (90, 124, 3)
    indices = read_pages(out / "map_indices.png")[0]
    assert indices.dtype == np.uint16 and np.mean(indices == focus_map) > 0.9
    picture = read_pages(out / "map.png")[0]
    assert picture.shape[0] == 90 and picture.shape[1] > 124  # map plus colour bar
    assert read_pages(out / "conf.png")[0].dtype == np.uint16
    assert "wrote" in stdout


def test_sixteen_bit_tiff_stack_gives_sixteen_bit_output(tmp_path, capsys):
    layers, _, _ = make_stack(n_layers=3)
    write_stack(tmp_path / "stack", layers, dtype=np.uint16, suffix=".tif")
    code, _, stderr = run(capsys, "fuse", tmp_path / "stack", "-o", tmp_path / "fused.tif",
                          "--method", "pyramid")
    assert code == 0, stderr
    assert read_pages(tmp_path / "fused.tif")[0].dtype == np.uint16


def test_methods_lists_one_line_each(capsys):
    code, stdout, _ = run(capsys, "methods")
    assert code == 0
    names = [line.split()[0] for line in stdout.splitlines()]
    assert names and set(names) >= {"depthmap", "pyramid", "dwt", "dtcwt", "dct"}


def bad_case(tmp_path: Path, case: str) -> tuple[list, str]:
    layers, _, _ = make_stack(n_layers=2)
    folder = tmp_path / "stack"
    folder.mkdir()
    if case == "empty folder":
        return [folder], "no images found"
    if case == "one image":
        write_stack(folder, layers[:1])
        return [folder], "at least 2 images"
    if case == "different sizes":
        small, _, _ = make_stack(n_layers=1, height=40, width=50)
        write_stack(folder, layers)
        write_stack(folder, small, names=["small.png"])
        return [folder], "differ in size (124x90"
    if case == "corrupt file":
        paths = write_stack(folder, layers)
        paths[0].write_bytes(b"not a png at all")
        return [folder], "cannot decode"
    if case == "unknown method":
        write_stack(folder, layers)
        return [folder, "--method", "magic"], "unknown fusion method 'magic'"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["empty folder", "one image", "different sizes",
                                  "corrupt file", "unknown method"])
def test_bad_input_one_line_error_and_nothing_written(tmp_path, capsys, case):
    args, message = bad_case(tmp_path, case)
    before = files_in(tmp_path)
    code, stdout, stderr = run(capsys, "fuse", *args, "-o", tmp_path / "out" / "fused.png",
                               "--focus-map", tmp_path / "out" / "map.png")
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stackmff: error:"), stderr
    assert message in lines[0]
    assert files_in(tmp_path) == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["output", "focus map", "index map"])
def test_refuses_to_overwrite_an_input(tmp_path, capsys, target):
    layers, _, _ = make_stack(n_layers=3)
    paths = write_stack(tmp_path, layers)
    original = paths[1].read_bytes()
    if target == "index map":  # map.png -> map_indices.png collides with an input
        paths[1] = paths[1].rename(tmp_path / "map_indices.png")
        args = ["-o", tmp_path / "fused.png", "--focus-map", tmp_path / "map.png"]
    elif target == "focus map":
        args = ["-o", tmp_path / "fused.png", "--focus-map", paths[1]]
    else:
        args = ["-o", paths[1]]
    code, _, stderr = run(capsys, "fuse", *paths, *args)
    assert code == 1 and "refusing to overwrite input" in stderr
    assert paths[1].read_bytes() == original
    assert not (tmp_path / "fused.png").exists()


def test_module_entry_point_has_no_traceback(tmp_path):
    process = subprocess.run([sys.executable, "-m", "stackmff", "fuse", str(tmp_path), "-o",
                              str(tmp_path / "x.png")], capture_output=True, text=True)
    assert process.returncode == 1
    assert process.stderr.strip().splitlines() == [f"stackmff: error: no images found in {tmp_path}"]
    assert not (tmp_path / "x.png").exists()
