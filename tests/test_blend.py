"""The network's blend modes: hard (the gather), soft (probability-weighted), band (exact
where confident)."""

import numpy as np
import pytest
import torch

from stackmff.api import prepare_method
from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.fusion import StackFuser
from stackmff.fusion.blend import Blend, band_mask, check_blend, exact_fraction, smooth
from stackmff.io import read_pages
from stackmff.stack_ops import gather
from stackmff.testing import make_stack, write_stack
from stackmff.weights.checkpoint import load_checkpoint


def fuser(checkpoint, blend: Blend, tile=None, margin=32) -> StackFuser:
    return StackFuser(load_checkpoint(checkpoint)[0], tile=tile, margin=margin, blend=blend)


def test_hard_is_the_gather_of_the_argmax(checkpoint):
    layers, _, _ = make_stack(n_layers=4, height=40, width=56, colour=True)
    plain = fuser(checkpoint, Blend())
    result = plain.fuse(layers)
    probabilities = plain.logits(layers.mean(axis=-1)).softmax(0)
    np.testing.assert_array_equal(result.fused, gather(layers, result.focus_map))
    assert exact_fraction(result.fused, layers, result.focus_map) == 1.0
    assert np.mean(result.focus_map == probabilities.argmax(0).numpy()) > 0.99


def test_soft_without_smoothing_is_the_probability_weighted_mean(checkpoint):
    layers, _, _ = make_stack(n_layers=3, height=40, width=56, colour=True)
    soft = fuser(checkpoint, Blend("soft", sigma=0.0))
    result = soft.fuse(layers)
    from stackmff.stack_ops import luma

    p = soft.logits(luma(layers)).softmax(0).numpy()
    expected = (p[..., None] * layers).sum(axis=0)
    np.testing.assert_allclose(result.fused, expected, atol=1e-5)
    np.testing.assert_array_equal(result.focus_map, p.argmax(0))
    np.testing.assert_allclose(result.confidence, p.max(0), atol=1e-6)
    assert exact_fraction(result.fused, layers, result.focus_map) < 0.5  # it did blend


def test_smoothing_keeps_probabilities_normalised_and_acts_on_layers_alike():
    rng = np.random.default_rng(0)
    p = torch.from_numpy(rng.random((4, 20, 30), dtype=np.float32))
    p /= p.sum(0, keepdim=True)
    smoothed = smooth(p, 1.0)
    torch.testing.assert_close(smoothed.sum(0), torch.ones(20, 30))
    order = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(smooth(p[order], 1.0), smoothed[order])
    assert smoothed.std() < p.std()


def test_band_keeps_confident_pixels_exactly_the_gather(checkpoint):
    layers, _, _ = make_stack(n_layers=4, height=48, width=64)
    # random weights are equally unsure everywhere: blend the less confident half
    confidence = fuser(checkpoint, Blend("band", band_confidence=0.0)).fuse(layers).confidence
    blend = Blend("band", band_confidence=float(np.median(confidence)))
    result = fuser(checkpoint, blend).fuse(layers)
    hard = gather(layers, result.focus_map)
    mask = band_mask(result.focus_map, result.confidence, blend)
    assert 0 < mask.mean() < 1
    np.testing.assert_array_equal(result.fused[~mask], hard[~mask])
    assert not np.array_equal(result.fused[mask], hard[mask])
    assert exact_fraction(result.fused, layers, result.focus_map) >= 1 - mask.mean()


def test_band_mask_marks_boundaries_and_low_confidence():
    focus_map = np.zeros((9, 12), np.uint16)
    focus_map[:, 6:] = 1
    confidence = np.ones((9, 12), np.float32)
    confidence[0, 0] = 0.2
    mask = band_mask(focus_map, confidence, Blend("band", band_radius=2))
    assert mask[:, 4:8].all() and not mask[:, 9:].any() and not mask[1:, :4].any()
    assert mask[0, 0]


@pytest.mark.parametrize("mode", ["soft", "band"])
def test_blends_work_tile_by_tile(checkpoint, mode):
    """With a margin that covers the image, tiles give the one-pass result."""
    layers, _, _ = make_stack(n_layers=3, height=64, width=96, colour=True)
    one = fuser(checkpoint, Blend(mode)).fuse(layers)
    tiled = fuser(checkpoint, Blend(mode), tile=32, margin=96).fuse(layers)
    assert np.mean(tiled.focus_map == one.focus_map) > 0.99
    assert np.abs(tiled.fused - one.fused).mean() < 1e-3


def test_two_scales_average_the_probabilities(checkpoint):
    layers, _, _ = make_stack(n_layers=3, height=64, width=96)
    one = fuser(checkpoint, Blend("soft", sigma=0.0)).fuse(layers)
    two = fuser(checkpoint, Blend("soft", sigma=0.0, scales=(1.0, 0.75))).fuse(layers)
    assert two.fused.shape == one.fused.shape and not np.array_equal(two.fused, one.fused)
    assert np.all((two.confidence > 0) & (two.confidence <= 1))
    hard = fuser(checkpoint, Blend("hard", scales=(1.0, 0.75))).fuse(layers)
    np.testing.assert_array_equal(hard.fused, gather(layers, hard.focus_map))


@pytest.mark.parametrize("options, message", [
    ({"blend": "median"}, "blend must be one of hard, soft, band"),
    ({"blend_sigma": -1.0}, "blend sigma"),
    ({"blend_scales": (1.0, 1.0)}, "blend scales"),
    ({"blend_scales": (2.0,)}, "blend scales"),
])
def test_bad_blend_options_are_refused(options, message):
    with pytest.raises(StackError, match=message):
        check_blend(**options)


def test_blend_is_refused_for_a_classical_method():
    with pytest.raises(StackError, match="does not take the option"):
        prepare_method("depthmap", blend="soft")


def test_cli_refuses_blend_with_a_classical_method_in_one_line(tmp_path, capsys):
    layers, _, _ = make_stack(n_layers=3)
    write_stack(tmp_path / "stack", layers)
    code = main(["fuse", str(tmp_path / "stack"), "-o", str(tmp_path / "out.png"),
                 "-m", "depthmap", "--blend", "soft"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "--blend applies to the network methods" in err[0]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("mode", ["hard", "soft", "band"])
def test_cli_writes_focus_map_and_confidence_in_every_mode(tmp_path, checkpoint, capsys, mode):
    layers, _, _ = make_stack(n_layers=3, colour=True)
    write_stack(tmp_path / "stack", layers, dtype=np.uint16)
    out, focus, conf = tmp_path / "v3.png", tmp_path / "map.png", tmp_path / "conf.png"
    code = main(["fuse", str(tmp_path / "stack"), "-o", str(out), "-m", "v3", "-q",
                 "--checkpoint", str(checkpoint), "--tile", "64", "--blend", mode,
                 "--blend-scales", "1,0.75", "--focus-map", str(focus), "--confidence", str(conf)])
    assert code == 0, capsys.readouterr().err
    fused = read_pages(out)[0]
    indices = read_pages(tmp_path / "map_indices.png")[0]
    assert fused.dtype == np.uint16 and fused.shape == (90, 124, 3)
    assert indices.shape == (90, 124) and indices.max() < 3
    assert read_pages(conf)[0].shape[:2] == (90, 124)


def test_a_dask_array_keeps_the_blend(checkpoint):
    """Blocks as tiles: a soft blend's fused pixels come back from each block, as the
    single-process tiling with the same tiles makes them (not a gather by the focus map)."""
    import dask.array as da

    from stackmff import fuse_stack

    layers, _, _ = make_stack(n_layers=3, height=96, width=96, colour=True)
    lazy = da.from_array(layers, chunks=(1, 48, 48, 3))
    result = fuse_stack(lazy, "v3", checkpoint=checkpoint, margin=16, blend="soft")
    tiled = StackFuser(load_checkpoint(checkpoint)[0], tile=48, margin=16, global_means=False,
                       blend=Blend("soft")).fuse(layers)
    assert result.fused.shape == (96, 96, 3) and result.fused.dtype == np.float32
    np.testing.assert_array_equal(result.focus_map, tiled.focus_map)
    np.testing.assert_allclose(result.fused, tiled.fused, atol=1e-6)
    assert not np.array_equal(result.fused, gather(layers, result.focus_map))


def test_only_the_hard_blend_copies_pixels():
    """Microscopy channels and --halo gather with the focus map only where that is the image."""
    from stackmff.methods import get_method

    network = get_method("v3")
    assert network.copies_pixels() and network.copies_pixels(blend="hard")
    assert not network.copies_pixels(blend="soft") and not network.copies_pixels(blend="band")
    assert get_method("depthmap").copies_pixels() and not get_method("pyramid").copies_pixels()
