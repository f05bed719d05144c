"""Outputs under hostile paths: an OME-Zarr output never replaces a folder that holds an input
or is not a previous output of ours, a batch writes only inside OUTDIR, and an input reached
under another name (a hard link, a linked folder) is never overwritten. Each refusal is one
line, exit status 1, nothing written and nothing deleted."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from microscopy_files import hyperstack, write_ome_tiff, write_ome_zarr

from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.io.paths import check_output_paths
from stackmff.testing import make_stack, write_stack


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, str]:
    """Every file, folder and link under ``folder`` (links not followed) with its content."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            state[key] = "dir"
        else:
            state[key] = hashlib.sha1(path.read_bytes()).hexdigest()
    return state


def assert_refused(capsys, root: Path, *args, naming: str = "") -> str:
    """One error line, exit status 1, and nothing under ``root`` written or deleted."""
    before = tree(root)
    code, stdout, stderr = run(capsys, *args)
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("stackmff: error:"), (
        code, stdout, stderr)
    assert naming in lines[0], lines[0]
    assert tree(root) == before
    return lines[0]


@pytest.fixture
def stack(tmp_path) -> Path:
    layers, _, _ = make_stack(n_layers=3, height=32, width=40, seed=3)
    write_stack(tmp_path / "in", layers)
    return tmp_path / "in"


# H8: an input reached under another name is never overwritten


@pytest.mark.parametrize("how", ["hard link", "linked folder"])
def test_an_input_under_another_name_is_not_overwritten(stack, tmp_path, capsys, how):
    view = tmp_path / "view"
    if how == "hard link":
        view.mkdir()
        os.link(stack / "layer_2.png", view / "layer_2.png")
    else:
        view.symlink_to(stack, target_is_directory=True)
    line = assert_refused(capsys, tmp_path, "fuse", stack, "-o", view / "layer_2.png",
                          naming=str(view / "layer_2.png"))
    assert "refusing to overwrite input file" in line


def test_outputs_are_told_apart_by_device_and_inode(tmp_path):
    (tmp_path / "in").mkdir()
    original = tmp_path / "in" / "a.png"
    original.write_bytes(b"layer")
    other = tmp_path / "other.png"
    os.link(original, other)
    with pytest.raises(StackError, match="refusing to overwrite input file"):
        check_output_paths([other], [original])
    (tmp_path / "view").symlink_to(tmp_path / "in", target_is_directory=True)
    with pytest.raises(StackError, match="must differ"):
        check_output_paths([tmp_path / "in" / "new.png", tmp_path / "view" / "new.png"])
    shutil.rmtree(tmp_path / "in")
    check_output_paths([other], [tmp_path / "in" / "a.png"])  # an input gone: no match


def test_align_does_not_overwrite_an_input_under_another_name(stack, tmp_path, capsys):
    view = tmp_path / "view"
    view.mkdir()
    os.link(stack / "layer_2.png", view / "layer_2.png")
    line = assert_refused(capsys, tmp_path, "align", stack, "-o", view,
                          naming=str(view / "layer_2.png"))
    assert "refusing to overwrite input file" in line


# H1: an OME-Zarr output replaces only a previous OME-Zarr image of ours, never its input


@pytest.fixture(scope="module")
def source():
    return hyperstack()[0][:1]  # one time point: a TCZYX uint16 stack


@pytest.mark.parametrize("store", ["a plain folder", "a previous output"])
@pytest.mark.parametrize("kind", ["ome.tif", "ome.zarr"])
def test_an_ome_zarr_output_that_holds_its_input_is_refused(source, tmp_path, capsys, store,
                                                            kind):
    pytest.importorskip("zarr")
    result = tmp_path / "res.ome.zarr"
    if store == "a previous output":
        write_ome_tiff(tmp_path / "first.ome.tif", source)
        assert run(capsys, "fuse", tmp_path / "first.ome.tif", "-o", result)[0] == 0
    else:
        result.mkdir()
    inside = result / f"cells.{kind}"
    (write_ome_tiff if kind == "ome.tif" else write_ome_zarr)(inside, source)
    line = assert_refused(capsys, tmp_path, "fuse", inside, "-o", result, naming=str(result))
    assert "holds the input" in line


@pytest.mark.parametrize("force", [False, True])
def test_batch_refuses_an_ome_zarr_output_that_holds_its_input(source, tmp_path, capsys, force):
    pytest.importorskip("zarr")
    out = tmp_path / "out"
    (out / "cells.ome.zarr").mkdir(parents=True)
    write_ome_tiff(out / "cells.ome.zarr" / "cells.ome.tif", source)
    line = assert_refused(capsys, tmp_path, "batch", out / "cells.ome.zarr" / "cells.ome.tif",
                          "-o", out, "--format", "ome.zarr", *(["--force"] if force else []),
                          naming=str(out / "cells.ome.zarr"))
    assert "holds the input" in line


@pytest.mark.parametrize("command", ["fuse", "batch", "batch --force"])
def test_an_unrelated_folder_is_never_replaced(source, tmp_path, capsys, command):
    pytest.importorskip("zarr")
    write_ome_tiff(tmp_path / "cells.ome.tif", source)
    out = tmp_path / "out.ome.zarr"
    if command != "fuse":
        out = tmp_path / "results" / "cells.ome.zarr"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("someone's files")
    (out / ".zattrs").write_text('{"multiscales": [{"name": "theirs"}]}')
    if command == "fuse":
        args = ["fuse", tmp_path / "cells.ome.tif", "-o", out]
    else:
        args = ["batch", tmp_path / "cells.ome.tif", "-o", out.parent, "--format", "ome.zarr",
                *command.split()[1:]]
    line = assert_refused(capsys, tmp_path, *args, naming=str(out))
    assert "not an OME-Zarr image written by stackmff" in line


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_previous_ome_zarr_output_is_still_replaced(source, tmp_path, capsys, version):
    pytest.importorskip("zarr")
    write_ome_zarr(tmp_path / "in.ome.zarr", source, version)
    out = tmp_path / "fused.ome.zarr"
    for method in ("mip", "depthmap"):
        code, _, stderr = run(capsys, "fuse", tmp_path / "in.ome.zarr", "-o", out, "-m", method)
        assert code == 0, stderr
    for force in ([], ["--force"]):
        code, _, stderr = run(capsys, "batch", tmp_path / "in.ome.zarr", "-o", tmp_path / "b",
                              "--format", "ome.zarr", "--workers", "1", *force)
        assert code == 0, stderr


def test_a_folder_output_that_holds_an_input_under_another_name_is_refused(tmp_path):
    original = tmp_path / "in" / "a.ome.tif"
    original.parent.mkdir()
    original.write_bytes(b"image")
    (tmp_path / "view.ome.zarr").symlink_to(tmp_path / "in", target_is_directory=True)
    for folder in (tmp_path / "in", tmp_path / "view.ome.zarr"):
        with pytest.raises(StackError, match="holds the input"):
            check_output_paths([folder], [original], folders={folder})
    check_output_paths([tmp_path / "new.ome.zarr"], [original], folders={tmp_path / "new.ome.zarr"})


# H2: a batch writes inside OUTDIR only


@pytest.mark.parametrize("force", [False, True])
def test_a_stack_at_the_input_itself_is_named_after_its_folder(stack, tmp_path, capsys,
                                                               monkeypatch, force):
    victim = tmp_path / "results" / "run1.png"
    victim.parent.mkdir()
    victim.write_bytes(b"someone else's file")
    monkeypatch.chdir(stack)
    code, stdout, stderr = run(capsys, "batch", ".", "-o", "../results/run1", "--workers", "1",
                               *(["--force"] if force else []))
    assert code == 0 and "1 fused, 0 skipped" in stdout, (stdout, stderr)
    assert victim.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in (tmp_path / "results" / "run1").iterdir()) == [
        "batch.jsonl", "in.png"]


def test_maps_of_a_stack_at_the_input_itself_stay_in_outdir(stack, capsys, monkeypatch):
    layers = sorted(p.name for p in stack.iterdir())
    monkeypatch.chdir(stack)
    code, _, stderr = run(capsys, "batch", ".", "-o", "fused", "--focus-map", "--workers", "1")
    assert code == 0, stderr
    assert sorted(p.name for p in stack.iterdir()) == sorted(layers + ["fused"])
    assert sorted(p.name for p in (stack / "fused").iterdir()) == [
        "batch.jsonl", "in.png", "in_focus_map.png", "in_focus_map_indices.png"]


@pytest.mark.parametrize("force", [False, True])
def test_an_output_that_leads_out_of_outdir_is_refused(stack, tmp_path, capsys, force):
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"someone else's file")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.png").symlink_to(victim)
    assert_refused(capsys, tmp_path, "batch", stack, "-o", tmp_path / "out",
                   *(["--force"] if force else []), naming="outside the output folder")
