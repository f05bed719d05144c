import numpy as np
import pytest
import torch

from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.fusion import StackFuser, plan_tiles
from stackmff.fusion.tiling import plan_budget_tiles
from stackmff.io import read_pages
from stackmff.model import StackMFFV3
from stackmff.model.blocks import PyramidFC
from stackmff.runtime.optimise import OneDNNConv
from stackmff.stack_ops import gather
from stackmff.testing import make_stack, write_stack
from stackmff.weights.checkpoint import load_checkpoint, save_checkpoint


def window_pixels(tile) -> int:
    wy0, wy1, wx0, wx1 = tile.window
    return (wy1 - wy0) * (wx1 - wx0)


@pytest.mark.parametrize("plan", ["square", "budget"])
@pytest.mark.parametrize("shape", [(300, 200), (64, 64), (33, 97), (1500, 1000)])
def test_tiles_cover_the_image_exactly_once(shape, plan):
    height, width = shape
    covered = np.zeros(shape, int)
    tiles = (plan_tiles(height, width, tile=64, margin=16) if plan == "square"
             else plan_budget_tiles(height, width, 40_000, margin=16))
    for tile in tiles:
        y0, y1, x0, x1 = tile.core
        wy0, wy1, wx0, wx1 = tile.window
        assert 0 <= wy0 <= y0 < y1 <= wy1 <= height and 0 <= wx0 <= x0 < x1 <= wx1 <= width
        covered[y0:y1, x0:x1] += 1
    assert np.all(covered == 1)


@pytest.mark.parametrize("shape", [(1536, 2048), (3000, 4000), (4000, 6000), (700, 333)])
@pytest.mark.parametrize("budget", [600_000, 2_500_000])
def test_budget_tiles_fit_the_budget_with_less_work_than_square_ones(shape, budget):
    height, width = shape
    tiles = plan_budget_tiles(height, width, budget, margin=128)
    assert max(window_pixels(t) for t in tiles) <= budget
    if height * width <= budget:
        assert len(tiles) == 1 and tiles[0].window == (0, height, 0, width)
    side = int(budget ** 0.5) - 256  # the largest square core whose window fits
    square = plan_tiles(height, width, side // 32 * 32, margin=128)
    assert sum(map(window_pixels, tiles)) <= sum(map(window_pixels, square))


def test_a_margin_wider_than_the_budget_falls_back_to_the_smallest_tiles():
    tiles = plan_budget_tiles(1000, 1000, 10_000, margin=512)
    assert {t.core[1] - t.core[0] for t in tiles} <= {128, 1000 - 7 * 128}


def test_checkpoint_round_trip_keeps_config_and_weights(tiny_config, checkpoint):
    model, payload = load_checkpoint(checkpoint)
    assert model.config == tiny_config and payload["meta"]["note"] == "random weights for tests"
    torch.manual_seed(0)
    original = StackMFFV3(tiny_config)
    for name, tensor in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor)


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(StackError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(StackError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(StackError, match="not a stackmff checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_predictor_copies_colour_pixels_at_any_size(checkpoint):
    layers, _, _ = make_stack(n_layers=4, height=45, width=70, colour=True)
    fuser = StackFuser(load_checkpoint(checkpoint)[0], tile=None)
    result = fuser.fuse(layers)
    assert result.fused.shape == (45, 70, 3) and result.focus_map.shape == (45, 70)
    np.testing.assert_array_equal(result.fused, gather(layers, result.focus_map))
    assert np.all((result.confidence >= 0.25 - 1e-6) & (result.confidence <= 1.0))


@pytest.mark.parametrize("shape", [(45, 70), (70, 45)])
def test_logits_are_cropped_back_to_the_input_size(checkpoint, shape):
    layers, _, _ = make_stack(n_layers=3, height=shape[0], width=shape[1])
    assert StackFuser(load_checkpoint(checkpoint)[0], tile=None).logits(layers).shape == (3,) + shape


def test_predictor_matches_the_network_on_unpadded_input(checkpoint):
    layers, _, _ = make_stack(n_layers=3, height=64, width=96)
    fuser = StackFuser(load_checkpoint(checkpoint)[0], tile=None)
    with torch.no_grad():
        expected = fuser.model(torch.from_numpy(layers)[None, :, None]).logits[0]
    torch.testing.assert_close(fuser.logits(layers), expected, atol=1e-4, rtol=0)
    agreement = np.mean(fuser.fuse(layers).focus_map == expected.argmax(0).numpy())
    assert agreement > 0.99


@pytest.mark.parametrize("rows", [1, 5, 16, 40])
def test_head_rows_equal_the_whole_map_bit_for_bit(tiny_config, rows):
    from stackmff.runtime.optimise import optimise_for_inference

    torch.manual_seed(0)
    model = optimise_for_inference(StackMFFV3(tiny_config), "cpu")
    x = torch.rand(3, 1, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        whole = model.focus(x)
        quarter = model.focus.quarter(x)
        parts = [model.focus.decoder.full_resolution(quarter, (64, 96), (r, min(r + rows, 64)))
                 for r in range(0, 64, rows)]
    assert torch.equal(torch.cat(parts, dim=2), whole)


def test_logits_strip_by_strip_equal_one_strip(checkpoint, monkeypatch):
    layers, _, _ = make_stack(n_layers=4, height=90, width=70)
    fuser = StackFuser(load_checkpoint(checkpoint)[0], tile=None, workers=2)
    monkeypatch.setattr(StackFuser, "_strip_rows", lambda self, n, height, width: height)
    one_strip = fuser.logits(layers)
    monkeypatch.setattr(StackFuser, "_strip_rows", lambda self, n, height, width: 9)
    assert torch.equal(fuser.logits(layers), one_strip)


def test_tiles_with_whole_image_margin_equal_one_pass(checkpoint):
    layers, _, _ = make_stack(n_layers=3, height=64, width=96)
    one_pass = StackFuser(load_checkpoint(checkpoint)[0], tile=None).fuse(layers)
    tiled = StackFuser(load_checkpoint(checkpoint)[0], tile=32, margin=96).fuse(layers)
    assert np.mean(tiled.focus_map == one_pass.focus_map) > 0.99


def test_image_means_of_one_tile_replay_the_one_pass_logits(checkpoint):
    layers, _, _ = make_stack(n_layers=4, height=64, width=96)
    fuser = StackFuser(load_checkpoint(checkpoint)[0], tile=None, workers=2)
    means = fuser.image_means(layers, plan_tiles(64, 96, None, 0))
    sites = sum(isinstance(m, PyramidFC) for m in fuser.model.modules()) + 1  # + the PSP 1x1 bin
    assert len(means.sums) == sites and all(s.shape[0] == 4 for s in means.sums)
    torch.testing.assert_close(fuser.logits(layers, means), fuser.logits(layers), atol=1e-5, rtol=0)


def test_image_means_summed_over_tile_cores_are_the_whole_image_means(checkpoint):
    # the first global average reads the stem's output, which a 32 px margin reproduces exactly
    layers, _, _ = make_stack(n_layers=3, height=128, width=160)
    fuser = StackFuser(load_checkpoint(checkpoint)[0], tile=None, workers=2)
    whole = fuser.image_means(layers, plan_tiles(128, 160, None, 0))
    tiled = fuser.image_means(layers, plan_tiles(128, 160, 64, 32))
    assert tiled.counts[0] == whole.counts[0] == 64 * 80
    torch.testing.assert_close(tiled.sums[0] / tiled.counts[0], whole.sums[0] / whole.counts[0],
                               atol=1e-5, rtol=0)


def test_cli_fuses_with_a_checkpoint(tmp_path, checkpoint, capsys):
    layers, _, _ = make_stack(n_layers=3, colour=True)
    write_stack(tmp_path / "stack", layers, dtype=np.uint16)
    code = main(["fuse", str(tmp_path / "stack"), "-o", str(tmp_path / "v3.png"), "-m", "v3",
                 "--checkpoint", str(checkpoint), "--tile", "64", "--focus-map",
                 str(tmp_path / "map.png"), "--confidence", str(tmp_path / "conf.png")])
    assert code == 0, capsys.readouterr().err
    fused = read_pages(tmp_path / "v3.png")[0]
    assert fused.dtype == np.uint16 and fused.shape == (90, 124, 3)


def test_cli_v3_without_weights_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import stackmff.weights

    monkeypatch.setattr(stackmff.weights, "SHIPPED_WEIGHTS", tmp_path / "none.pt")
    layers, _, _ = make_stack(n_layers=3)
    write_stack(tmp_path / "stack", layers)
    code = main(["fuse", str(tmp_path / "stack"), "-o", str(tmp_path / "v3.png"), "-m", "v3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "needs trained weights" in err[0]
    assert not (tmp_path / "v3.png").exists()


def test_depth_regression_head_gives_a_valid_map(tiny_config, tmp_path):
    import dataclasses

    config = dataclasses.replace(tiny_config, head="depth_regression")
    save_checkpoint(tmp_path / "v3star.pt", StackMFFV3(config))
    layers, _, _ = make_stack(n_layers=5, height=40, width=40)
    result = StackFuser(load_checkpoint(tmp_path / "v3star.pt")[0], tile=None).fuse(layers)
    assert result.focus_map.max() < 5
    np.testing.assert_array_equal(result.fused, gather(layers, result.focus_map))


@pytest.mark.parametrize("onednn", [True, False])
def test_inference_rewrites_keep_the_function(tiny_config, onednn):
    from stackmff.model.blocks import LearnablePool
    from stackmff.runtime.optimise import optimise_for_inference

    torch.manual_seed(0)
    model = StackMFFV3(tiny_config).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics and affine terms
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    fast = optimise_for_inference(model, "cpu", onednn=onednn)
    assert not any(isinstance(m, (LearnablePool, torch.nn.BatchNorm2d, torch.nn.GELU))
                   for m in fast.modules())
    stack = torch.rand(1, 3, 1, 64, 64)
    with torch.inference_mode():  # the rewritten model's GELUs work in place
        expected = model(stack).logits
        got = fast(stack.contiguous()).logits
    assert torch.allclose(got, expected, atol=1e-4)


def test_convolutions_run_channels_last_on_cpu_only(tiny_config):
    from stackmff.runtime.optimise import convolution_layout, optimise_for_inference

    assert convolution_layout("cpu") == torch.channels_last
    # cuDNN re-plans channels-last convolutions for every new input shape
    assert convolution_layout("cuda") == torch.contiguous_format
    assert convolution_layout(torch.device("cuda", 0)) == torch.contiguous_format
    for onednn in (True, False):
        fast = optimise_for_inference(StackMFFV3(tiny_config), "cpu", onednn=onednn)
        weight = next(m.weight for m in fast.modules()
                      if isinstance(m, (torch.nn.Conv2d, OneDNNConv))
                      and m.weight.shape[-1] != 1)
        assert weight.is_contiguous(memory_format=torch.channels_last)


def test_convolutions_go_to_onednn_with_their_gelus_fused(tiny_config):
    from stackmff.runtime.optimise import optimise_for_inference

    fast = optimise_for_inference(StackMFFV3(tiny_config), "cpu")
    convolutions = [m for m in fast.focus.modules() if isinstance(m, OneDNNConv)]
    assert convolutions and not any(isinstance(m, torch.nn.Conv2d) for m in fast.focus.modules())
    # the stem's, the laterals', each channel MLP's expansion
    assert sum(m.attr == "gelu" for m in convolutions) >= 1 + len(tiny_config.widths)
    plain = optimise_for_inference(StackMFFV3(tiny_config), "cpu", onednn=False)
    assert not any(isinstance(m, OneDNNConv) for m in plain.modules())


@pytest.mark.parametrize("height", [37, 40])
def test_a_banded_downsampling_mlp_equals_the_whole_one(tiny_config, height):
    from stackmff.runtime.optimise import (
        BandedChannelMLP,
        convolutions_through_onednn,
        optimise_for_inference,
    )

    torch.manual_seed(0)
    fast = optimise_for_inference(StackMFFV3(tiny_config), "cpu", onednn=False)
    mlp = fast.focus.encoder.stages[1][0].channel_mlp
    convolutions_through_onednn(mlp)
    channels = mlp.expand.weight.shape[1]
    x = torch.randn(1, channels, height, 29).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        whole = mlp(x.clone())
        banded = BandedChannelMLP(mlp, rows=3)(x.clone())
    torch.testing.assert_close(banded, whole, atol=1e-6, rtol=0)
    assert banded.shape[-2] == (height - 1) // 2 + 1


def test_the_network_runs_its_downsampling_mlps_banded_on_cpu(tiny_config):
    from stackmff.runtime.optimise import BandedChannelMLP, optimise_for_inference

    fast = optimise_for_inference(StackMFFV3(tiny_config), "cpu")
    assert sum(isinstance(m, BandedChannelMLP) for m in fast.modules()) == len(tiny_config.widths)
