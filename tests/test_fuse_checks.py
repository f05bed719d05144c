"""Options are checked before any work: a method refuses what it would ignore, out-of-range
values stop at once, and output problems are found before the stack is read."""

from pathlib import Path

import pytest

from stackmff.cli import main
from stackmff.testing import make_stack, write_stack


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def stack(tmp_path) -> Path:
    layers, _, _ = make_stack(n_layers=3, height=40, width=48)
    write_stack(tmp_path / "stack", layers)
    return tmp_path / "stack"


@pytest.fixture
def corrupt_stack(tmp_path) -> Path:
    """Inputs that fail as soon as they are read: an error about anything else proves that
    it was found before reading."""
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for k in range(2):
        (folder / f"layer_{k}.png").write_bytes(b"not a png")
    return folder


@pytest.mark.parametrize("option, flag", [
    (["--checkpoint", "weights.pt"], "--checkpoint"),
    (["--tile", "256"], "--tile"),
    (["--tile-margin", "16"], "--tile-margin"),
    (["--precision", "bf16"], "--precision"),
    (["--tile-local-means"], "--tile-local-means"),
])
def test_network_options_with_a_classical_method_are_refused(stack, tmp_path, capsys, option,
                                                             flag):
    code, _, stderr = run(capsys, "fuse", stack, "-o", tmp_path / "out.png", "-m", "pyramid",
                          *option)
    assert code == 1
    assert stderr.strip() == (f"stackmff: error: {flag} applies to the network methods only, "
                              "not to --method pyramid")
    assert not (tmp_path / "out.png").exists()


def test_an_unbounded_tile_margin_is_a_usage_error(stack, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["fuse", str(stack), "-o", str(tmp_path / "out.png"), "-m", "v3",
              "--tile-margin", "100000"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "stackmff: error: argument --tile-margin: must be an integer from 0 to 1024, got 100000 "
        "(see 'stackmff fuse --help')"]


@pytest.mark.parametrize("args", [["fuse"], ["bogus"], ["align", "x"], ["fuse", "x", "-o"]])
def test_usage_errors_are_one_line(capsys, args):
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stackmff: error: ")


def test_library_refuses_options_a_method_does_not_take():
    import numpy as np

    import stackmff

    with pytest.raises(stackmff.StackError, match="does not take the option"):
        stackmff.fuse_stack(np.zeros((2, 8, 8), np.float32), "depthmap", tile=64)
    with pytest.raises(stackmff.StackError, match="tile margin"):
        stackmff.prepare_method("v3", margin=100000)


def test_unsupported_output_type_is_found_before_reading(corrupt_stack, tmp_path, capsys):
    code, _, stderr = run(capsys, "fuse", corrupt_stack, "-o", tmp_path / "out.xyz")
    assert code == 1
    assert stderr.startswith("stackmff: error: cannot write ") and "'.xyz'" in stderr
    assert not (tmp_path / "out.xyz").exists()


def test_confidence_from_a_method_without_one_is_found_before_reading(corrupt_stack, tmp_path,
                                                                      capsys):
    code, _, stderr = run(capsys, "fuse", corrupt_stack, "-o", tmp_path / "out.png",
                          "-m", "pyramid", "--confidence", tmp_path / "conf.png")
    assert code == 1
    assert stderr.strip() == "stackmff: error: method 'pyramid' produces no confidence map"
    assert not list(tmp_path.glob("*.png"))
