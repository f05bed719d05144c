import cv2
import numpy as np
import pytest

from stackmff.errors import StackError
from stackmff.registration import align_stack

SIZE = (240, 320)  # height, width of every layer


def similarity(angle_deg: float, scale: float, dx: float, dy: float, centre) -> np.ndarray:
    """Reference -> layer coordinates: rotate/scale about the centre, then shift."""
    matrix = np.eye(3)
    matrix[:2] = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    matrix[:2, 2] += (dx, dy)
    return matrix


def scene(seed: int = 0) -> np.ndarray:
    """A large colour texture with structure at several scales (pads every warp)."""
    rng = np.random.default_rng(seed)
    height, width = SIZE[0] + 120, SIZE[1] + 120
    image = np.zeros((height, width, 3), np.float32)
    for cell in (2, 6, 20):
        noise = rng.random((height // cell + 1, width // cell + 1, 3)).astype(np.float32)
        image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) / cell ** 0.5
    return np.clip((image - image.min()) / np.ptp(image), 0, 1)


def make_moving_stack(n: int = 10, blurred=(2, 7), seed: int = 0):
    """Layers warped by known similarities (shift <= 20 px, rotation <= 1 deg, scale
    0.97..1.03), defocused by different amounts, with exposure / white-balance drift."""
    rng = np.random.default_rng(seed)
    big = scene(seed)
    offset = np.array([[1, 0, 60], [0, 1, 60], [0, 0, 1]], np.float64)  # ref -> big
    centre = (SIZE[1] / 2, SIZE[0] / 2)
    reference = n // 2
    truths, layers = [], []
    for k in range(n):
        if k == reference:
            truth = np.eye(3)
        else:
            truth = similarity(rng.uniform(-1, 1), 0.97 + 0.06 * k / (n - 1),
                               rng.uniform(-20, 20), rng.uniform(-20, 20), centre)
        # layer(y) = reference(truth^-1 y): sample big at offset @ truth^-1
        sample = offset @ np.linalg.inv(truth)
        layer = cv2.warpPerspective(big, sample, SIZE[::-1],
                                    flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        sigma = 8.0 if k in blurred else 0.5 + abs(k - reference) * 0.4
        layer = cv2.GaussianBlur(layer, (0, 0), sigma)
        gain = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3)
        layers.append(np.clip(layer * gain + rng.uniform(-0.05, 0.05), 0, 1))
        truths.append(truth)
    return np.stack(layers).astype(np.float32), np.stack(truths), reference


def corner_error(estimated: np.ndarray, truth: np.ndarray) -> float:
    height, width = SIZE
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], float).T
    a, b = estimated @ corners, truth @ corners
    a, b = a[:2] / a[2], b[:2] / b[2]
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=0))))


@pytest.mark.parametrize("model", ["similarity", "affine", "homography"])
def test_recovers_known_transforms_through_defocus(model):
    layers, truths, reference = make_moving_stack()
    result = align_stack(layers, model=model, on_failure="keep", tolerance=0.0)
    assert result.indices == list(range(10))
    errors = [corner_error(result.transforms[k], truths[k]) for k in range(10)]
    textured = [k for k in range(10) if k not in (2, 7)]
    assert max(errors[k] for k in textured) < 0.5, np.round(errors, 2)
    assert max(errors) < 3.0, np.round(errors, 2)  # even the blurred layers land close
    assert result.layers.shape[1] < SIZE[0] and result.layers.shape[2] < SIZE[1]  # cropped
    assert result.valid.all()


def test_translation_model_and_keep_size():
    layers, _, reference = make_moving_stack(n=4, blurred=())
    shifted = np.stack([np.roll(layers[reference], (k * 3, -k * 5), axis=(0, 1))
                        for k in range(4)])
    result = align_stack(shifted, reference=0, model="translation", keep_size=True)
    assert result.layers.shape == shifted.shape
    for k in range(4):
        np.testing.assert_allclose(result.transforms[k][:2, 2], (-k * 5, k * 3), atol=0.1)
    assert not result.valid[1:].all() and result.valid[0].all()


def test_unalignable_layer_is_reported_not_accepted():
    layers, _, reference = make_moving_stack(n=6, blurred=())
    noise = np.random.default_rng(9).random(layers.shape[1:]).astype(np.float32)
    layers[1] = noise
    with pytest.raises(StackError, match=r"could not align layer\(s\) 1 "):
        align_stack(layers)
    dropped = align_stack(layers, on_failure="drop")
    assert dropped.failed == [1] and 1 not in dropped.indices and len(dropped.indices) == 5
    kept = align_stack(layers, on_failure="keep")
    assert kept.failed == [1] and np.allclose(kept.transforms[kept.indices.index(1)], np.eye(3))


def test_bad_arguments():
    layers, _, _ = make_moving_stack(n=3, blurred=())
    with pytest.raises(ValueError, match="model must be one of"):
        align_stack(layers, model="rigid")
    with pytest.raises(ValueError, match="reference layer 5"):
        align_stack(layers, reference=5)


def write_moving_stack(folder, dtype=np.uint16):
    from stackmff.testing import write_stack

    layers, truths, reference = make_moving_stack(n=5, blurred=())
    return write_stack(folder, layers, dtype=dtype), truths, reference


def test_align_command_writes_layers_and_transforms(tmp_path, capsys):
    import json

    from stackmff.cli import main
    from stackmff.io import read_pages

    paths, truths, reference = write_moving_stack(tmp_path / "in")
    assert main(["align", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted([p.name for p in paths] + ["transforms.json"])
    first = read_pages(tmp_path / "out" / paths[0].name)[0]
    assert first.dtype == np.uint16 and first.shape[0] < SIZE[0]  # cropped, 16-bit kept
    record = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert record["reference"] == reference and record["model"] == "similarity"
    for k, layer in enumerate(record["layers"]):
        assert corner_error(np.array(layer["transform"]), truths[k]) < 0.5
    assert "aligned 5 of 5 layers" in capsys.readouterr().out


def test_fuse_with_align_and_the_hint_without_it(tmp_path, capsys):
    from stackmff.cli import main

    write_moving_stack(tmp_path / "in", dtype=np.uint8)
    assert main(["fuse", "--align", "--keep-size", str(tmp_path / "in"), "-o",
                 str(tmp_path / "fused.png"), "-q"]) == 0
    assert (tmp_path / "fused.png").exists()
    small = np.zeros((40, 50, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "z_small.png"), small)
    assert main(["fuse", str(tmp_path / "in"), "-o", str(tmp_path / "x.png")]) == 1
    assert "use --align" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_align_refuses_to_overwrite_inputs(tmp_path, capsys):
    from stackmff.cli import main

    paths, _, _ = write_moving_stack(tmp_path)
    before = paths[0].read_bytes()
    assert main(["align", str(tmp_path), "-o", str(tmp_path)]) == 1
    assert "refusing to overwrite input" in capsys.readouterr().err
    assert paths[0].read_bytes() == before and not (tmp_path / "transforms.json").exists()
