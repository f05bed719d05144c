"""Registration refuses what it cannot do with one line: layers too small, a tolerance out of
range, and a reference layer that nothing aligns to."""

from pathlib import Path

import cv2
import numpy as np
import pytest

import stackmff.registration.align as align_module
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.registration import align_stack
from stackmff.testing import write_stack


def smooth_texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Grey float32 texture in [0, 1] with detail at a few pixels' scale."""
    noise = np.random.default_rng(seed).random((height, width)).astype(np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return (image - image.min()) / np.ptp(image)


def shifted_stack(height: int = 96, width: int = 128, n: int = 5) -> np.ndarray:
    base = smooth_texture(height + 20, width + 20)
    return np.stack([base[10 + k: 10 + k + height, 10 - k: 10 - k + width]
                     for k in range(-(n // 2), n - n // 2)])


@pytest.fixture
def no_estimation(monkeypatch):
    """Fail the test if any registration work starts."""
    def refuse(*args, **kwargs):
        raise AssertionError("estimation ran before the arguments were checked")

    monkeypatch.setattr(align_module, "estimate_transforms", refuse)


@pytest.mark.parametrize("shape", [(3, 40, 1), (3, 1, 40), (3, 3, 3), (3, 15, 64),
                                   (2, 64, 15, 3)])
def test_too_small_layers_are_refused_before_any_work(shape, no_estimation):
    layers = np.random.default_rng(0).random(shape).astype(np.float32)
    with pytest.raises(StackError, match="at least 16 pixels") as caught:
        align_stack(layers)
    assert "\n" not in str(caught.value)
    assert f"{shape[2]}x{shape[1]}" in str(caught.value)


def test_smallest_allowed_layers_align():
    layers = shifted_stack(16, 16, n=3)
    result = align_stack(layers, model="translation", on_failure="keep", tolerance=0.0)
    assert result.indices == [0, 1, 2]


def test_thin_layers_keep_a_working_copy_wide_enough():
    """A long, narrow image is not shrunk below the minimum for estimation (shrunk to fit
    work_size it would be 5 pixels high, and its vertical shift would be lost)."""
    layers = shifted_stack(18, 4000, n=3)
    result = align_stack(layers, model="translation")
    assert result.indices == [0, 1, 2] and not result.failed
    for k, expected in ((0, (-1.0, 1.0)), (2, (1.0, -1.0))):  # reference -> layer shift
        assert np.allclose(result.transforms[k][:2, 2], expected, atol=0.25)


@pytest.mark.parametrize("tolerance", [float("nan"), -1.0, 1.5, float("inf"), "0.5", True])
def test_tolerance_out_of_range_is_refused(tolerance, no_estimation):
    with pytest.raises(StackError, match=r"tolerance must be a number in 0\.\.1"):
        align_stack(shifted_stack(), tolerance=tolerance)


@pytest.mark.parametrize("work_size", [0, 8, 2.5])
def test_work_size_below_the_minimum_is_refused(work_size, no_estimation):
    with pytest.raises(StackError, match="work_size"):
        align_stack(shifted_stack(), work_size=work_size)


@pytest.mark.parametrize("blank", ["flat", "noise"])
@pytest.mark.parametrize("on_failure", ["error", "drop"])
def test_reference_that_nothing_aligns_to_is_named(blank, on_failure):
    layers = shifted_stack()
    layers[2] = (np.full(layers.shape[1:], 0.5, np.float32) if blank == "flat"
                 else np.random.default_rng(5).random(layers.shape[1:]).astype(np.float32))
    with pytest.raises(StackError) as caught:
        align_stack(layers, on_failure=on_failure)
    message = str(caught.value)
    assert "reference layer 2" in message and "--reference K" in message
    assert "fewer than 2" not in message and "\n" not in message


def test_a_single_failing_layer_is_still_named_by_itself():
    layers = shifted_stack()
    layers[0] = np.random.default_rng(5).random(layers.shape[1:]).astype(np.float32)
    with pytest.raises(StackError, match=r"could not align layer\(s\) 0 "):
        align_stack(layers)
    assert align_stack(layers, on_failure="drop").indices == [1, 2, 3, 4]


def write_layers(folder: Path, layers: np.ndarray) -> None:
    write_stack(folder, layers)


def test_align_command_on_one_pixel_wide_layers_gives_one_line(tmp_path, capsys):
    layers = np.random.default_rng(0).random((3, 40, 1)).astype(np.float32)
    write_layers(tmp_path / "in", layers)
    code = main(["align", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "at least 16 pixels" in err
    assert not (tmp_path / "out").exists()


def test_fuse_align_on_tiny_layers_gives_one_line(tmp_path, capsys):
    layers = np.random.default_rng(0).random((3, 3, 3)).astype(np.float32)
    write_layers(tmp_path / "in", layers)
    out = tmp_path / "fused.png"
    code = main(["fuse", "--align", str(tmp_path / "in"), "-o", str(out), "-m", "pyramid"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "at least 16 pixels" in err
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "-1", "2"])
def test_align_command_refuses_a_bad_tolerance(tmp_path, capsys, value):
    write_layers(tmp_path / "in", shifted_stack(32, 32, n=3))
    code = main(["align", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "--tolerance", value])
    err = capsys.readouterr().err
    assert code != 0 and "tolerance" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
