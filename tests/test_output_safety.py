"""Outputs under hostile paths: an input reached under another name (a hard link, a linked
folder) is never overwritten. Each refusal is one line, exit status 1, nothing written and
nothing deleted."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest

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
