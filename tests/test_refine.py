"""The v3+ refinement head: equivariant over layers, any N and size, a gather in hard mode,
and trainable on a small cache of the network's logits."""

import numpy as np
import pytest
import torch

from stackmff.data.sources import SourceWeights
from stackmff.errors import StackError
from stackmff.fusion.blend import Blend
from stackmff.fusion.predictor import StackFuser
from stackmff.fusion.refined import RefinedFuser
from stackmff.model.refine import HeadConfig, RefineHead
from stackmff.stack_ops import gather, window_luma
from stackmff.testing import make_stack
from stackmff.training.refine import _load, build_cache, export, stack_loss, train
from stackmff.weights.checkpoint import load_checkpoint
from stackmff.weights.head import load_head, save_head


def random_head(seed: int = 0, dilated: int = 1) -> RefineHead:
    """A head whose correction is not zero (a fresh head starts as the identity)."""
    torch.manual_seed(seed)
    head = RefineHead(HeadConfig(width=6, dilated=dilated))
    torch.nn.init.normal_(head.out.weight, std=0.5)
    return head.eval()


@pytest.mark.parametrize("n, height, width, dilated", [(2, 17, 23, 0), (5, 31, 20, 2)])
def test_head_is_equivariant_over_layers_for_any_n_and_size(n, height, width, dilated):
    rng = np.random.default_rng(n)
    logits = torch.from_numpy(rng.normal(size=(n, height, width)).astype(np.float32))
    grey = torch.from_numpy(rng.random((n, height, width)).astype(np.float32))
    head = random_head(dilated=dilated)
    with torch.no_grad():
        out = head(logits, grey)
        order = torch.from_numpy(rng.permutation(n))
        permuted = head(logits[order], grey[order])
    assert out.shape == (n, height, width)
    assert not torch.allclose(out, logits.log_softmax(0), atol=1e-3)  # the head acts
    torch.testing.assert_close(permuted, out[order], rtol=1e-5, atol=1e-5)


def test_a_fresh_head_keeps_the_networks_decision():
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(4, 12, 12)).astype(np.float32))
    grey = torch.from_numpy(rng.random((4, 12, 12)).astype(np.float32))
    with torch.no_grad():
        out = RefineHead()(logits, grey)
    torch.testing.assert_close(out, logits.log_softmax(0), rtol=1e-5, atol=1e-5)


def refined(checkpoint, blend: Blend, tile=None) -> RefinedFuser:
    return RefinedFuser(load_checkpoint(checkpoint)[0], random_head(), tile=tile, margin=32,
                        blend=blend)


@pytest.mark.parametrize("n, height, width", [(2, 33, 45), (3, 40, 56)])
def test_hard_mode_is_a_gather_of_the_input(checkpoint, n, height, width):
    layers, _, _ = make_stack(n_layers=n, height=height, width=width, colour=True)
    fuser = refined(checkpoint, Blend())
    result = fuser(layers)
    assert result.method == "v3+"
    np.testing.assert_array_equal(result.fused, gather(layers, result.focus_map))
    assert result.focus_map.max() < n
    # the map is the argmax of the head applied to the network's own logits
    grey = window_luma(layers)
    network = StackFuser(load_checkpoint(checkpoint)[0], tile=None, margin=32)
    with torch.no_grad():
        expected = fuser.head(network.logits(grey), torch.from_numpy(grey)).argmax(0)
    np.testing.assert_array_equal(result.focus_map, expected.numpy())


@pytest.mark.parametrize("mode", ["soft", "band"])
def test_blends_define_focus_map_and_confidence(checkpoint, mode):
    layers, _, _ = make_stack(n_layers=3, height=40, width=56)
    result = refined(checkpoint, Blend(mode))(layers)
    assert result.fused.shape == layers.shape[1:]
    assert result.focus_map.shape == result.confidence.shape == layers.shape[1:]
    assert np.all((result.confidence > 1 / 3 - 1e-6) & (result.confidence <= 1 + 1e-6))
    low, high = layers.min(axis=0), layers.max(axis=0)
    assert np.all((result.fused >= low - 1e-6) & (result.fused <= high + 1e-6))


def test_tiles_match_one_pass(checkpoint):
    layers, _, _ = make_stack(n_layers=3, height=96, width=100)
    whole = refined(checkpoint, Blend())(layers)
    tiled = RefinedFuser(load_checkpoint(checkpoint)[0], random_head(), tile=64, margin=32,
                         global_means=True)(layers)
    assert np.mean(whole.focus_map == tiled.focus_map) > 0.99


@pytest.mark.parametrize("dilated", [0, 2])
def test_head_strips_with_its_reach_equal_the_whole_image(checkpoint, monkeypatch, dilated):
    import stackmff.fusion.refined as refined_module

    layers, _, _ = make_stack(n_layers=3, height=120, width=40)
    fuser = RefinedFuser(load_checkpoint(checkpoint)[0], random_head(dilated=dilated), tile=None)
    monkeypatch.setattr(refined_module, "HEAD_STRIP_BYTES", 2**40)
    whole = fuser.logits(layers)
    monkeypatch.setattr(refined_module, "HEAD_STRIP_BYTES", 0)
    monkeypatch.setattr(refined_module, "HEAD_MIN_ROWS", 7)
    torch.testing.assert_close(fuser.logits(layers), whole, atol=1e-5, rtol=0)
    monkeypatch.setattr(RefineHead, "reach", lambda self: 2)  # too little context
    assert not torch.allclose(fuser.logits(layers), whole, atol=1e-5, rtol=0)


def test_head_file_round_trip_and_refusals(tmp_path, checkpoint):
    head = random_head()
    save_head(tmp_path / "head.pt", head, {"note": "test"})
    loaded, payload = load_head(tmp_path / "head.pt")
    assert payload["meta"]["note"] == "test"
    for name, value in head.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    with pytest.raises(StackError, match="not a v3\\+ refinement head"):
        load_head(checkpoint)


def test_training_on_a_tiny_cache_lowers_the_loss(tmp_path, checkpoint):
    fuser = StackFuser(load_checkpoint(checkpoint)[0], tile=None)
    sources = SourceWeights(dead_leaves=1.0, photos=0.0, motorcycle=0.0)
    assert build_cache(tmp_path / "cache", 6, 64, 0, fuser, sizes=(2, 4), sources=sources) == 6
    assert build_cache(tmp_path / "cache", 6, 64, 0, fuser, sources=sources) == 0  # all there
    samples = [_load(p) for p in sorted((tmp_path / "cache").glob("stack_*.npz"))[:4]]
    sample = samples[0]
    assert sample["logits"].shape == sample["grey"].shape and sample["grey"].shape[1:] == (64, 64)

    def mean_loss(head):
        with torch.no_grad():
            return float(np.mean([stack_loss(head, s).item() for s in samples]))

    before = mean_loss(RefineHead(HeadConfig(width=6)))
    train(tmp_path / "cache", tmp_path / "run", steps=8, batch=2, crop=32, lr=2e-2,
          held_out=2, config=HeadConfig(width=6), log_every=4)
    scores = train(tmp_path / "cache", tmp_path / "run", steps=16, batch=2, crop=32, lr=2e-2,
                   held_out=2, config=HeadConfig(width=6), log_every=4)  # resumes at 8
    trained, payload = load_head(tmp_path / "run" / "last.pt")
    assert payload["meta"]["step"] == 16
    assert mean_loss(trained) < before
    assert set(scores) == {"v3_hard", "v3_soft", "head_hard", "head_soft"}
    export(tmp_path / "run" / "last.pt", tmp_path / "head.pt")
    assert "optimizer" not in load_head(tmp_path / "head.pt")[1]


def test_v3plus_is_a_registry_method_with_the_networks_options(tmp_path, checkpoint):
    from stackmff.api import prepare_method
    from stackmff.methods import get_method

    save_head(tmp_path / "head.pt", random_head())
    method = get_method("v3+")
    assert method.copies_pixels() and not method.copies_pixels(blend="band")
    layers, _, _ = make_stack(n_layers=3, height=40, width=56)
    fuser = prepare_method("v3+", head=tmp_path / "head.pt", checkpoint=checkpoint, tile=None,
                           blend="band")
    result = fuser(layers)
    assert result.method == "v3+" and result.fused.shape == layers.shape[1:]
    with pytest.raises(StackError, match="no such head"):
        prepare_method("v3+", head=tmp_path / "missing.pt", checkpoint=checkpoint)


def test_cli_fuses_with_a_head_and_refuses_a_bad_one_in_one_line(tmp_path, checkpoint, capsys):
    from stackmff.cli import main
    from stackmff.io import read_pages
    from stackmff.testing import write_stack

    layers, _, _ = make_stack(n_layers=3, height=40, width=56)
    write_stack(tmp_path / "stack", layers)
    folder = tmp_path / "stack"
    save_head(tmp_path / "head.pt", random_head())
    out = tmp_path / "fused.png"
    assert main(["fuse", str(folder), "-o", str(out), "-m", "v3+", "--head",
                 str(tmp_path / "head.pt"), "--checkpoint", str(checkpoint), "-q"]) == 0
    assert read_pages(out)[0].shape == layers.shape[1:]
    capsys.readouterr()
    bad = tmp_path / "fused-bad.png"
    assert main(["fuse", str(folder), "-o", str(bad), "-m", "v3+", "--head", str(checkpoint),
                 "--checkpoint", str(checkpoint), "-q"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("stackmff: error:") and "not a v3+ refinement head" in error
    assert len(error.splitlines()) == 1 and not bad.exists()
