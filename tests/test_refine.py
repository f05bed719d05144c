"""The v3+ refinement head: equivariant over layers, any N and size, a gather in hard mode,
a file of its own, and trained by ``stackmff train`` (``target = "head"``) on a small cache
of the network's logits: the loss falls, a resumed run equals an uninterrupted one, an
interrupted or refused run leaves what was there."""

import numpy as np
import pytest
import torch

from stackmff.errors import StackError
from stackmff.fusion.blend import Blend
from stackmff.fusion.predictor import StackFuser
from stackmff.fusion.refined import RefinedFuser
from stackmff.model.refine import HeadConfig, RefineHead
from stackmff.runtime.refine_inference import HeadInference
from stackmff.stack_ops import gather, window_luma
from stackmff.testing import make_stack
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


@pytest.fixture(params=[True, False], ids=["native", "pytorch"])
def head_kernel(request, monkeypatch):
    """The head's inference pass with its C kernel, and with PyTorch's convolutions."""
    from stackmff.runtime import native_head

    monkeypatch.setenv("STACKMFF_NATIVE_HEAD", "1" if request.param else "0")
    if request.param and native_head.load_kernel(6) is None:
        pytest.skip("no C compiler to build the kernel")
    return request.param


@pytest.mark.parametrize("dilated, width", [(0, 40), (2, 40), (1, 9)])
def test_the_inference_pass_in_strips_equals_the_head_on_the_whole_image(dilated, width,
                                                                        head_kernel):
    layers, _, _ = make_stack(n_layers=3, height=120, width=width)
    head = random_head(dilated=dilated)
    logits = torch.randn(3, 120, width, generator=torch.Generator().manual_seed(1)) * 3
    grey = torch.from_numpy(layers.mean(axis=-1) if layers.ndim == 4 else layers)
    with torch.inference_mode():
        whole = head(logits, grey)
    fast = HeadInference(head)
    assert (fast.native is not None) == head_kernel
    torch.testing.assert_close(fast(logits, grey, rows=120), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast(logits, grey, rows=7), whole, atol=1e-5, rtol=0)
    fast.feature_reach -= 1  # too little context
    assert not torch.allclose(fast(logits, grey, rows=7), whole, atol=1e-5, rtol=0)


def test_head_file_round_trip_and_refusals(tmp_path, checkpoint):
    head = random_head()
    save_head(tmp_path / "head.pt", head, {"note": "test"})
    loaded, payload = load_head(tmp_path / "head.pt")
    assert payload["meta"]["note"] == "test"
    for name, value in head.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    with pytest.raises(StackError, match="not a v3\\+ refinement head"):
        load_head(checkpoint)


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


# Training the head through ``stackmff train``: a cache of 6 stacks of 48 x 48 from the tiny
# network, built once for the module; each run a few steps of 2 stacks of 32 x 32.

HEAD_TOML = """
target = "head"

[head]
width = 6
dilated = 1

[cache]
folder = '{cache}'
network = '{network}'
stacks = 6
held_out = 2
crop = 48
max_layers = 4
dead_leaves = 1.0
photos = 0.0
motorcycle = 0.0
debian_photos = false

[data]
crop = 32
batch_size = 2

[optim]
lr = {lr}

[run]
out = '{out}'
max_steps = {steps}
validate_every = 4
"""


@pytest.fixture(scope="module")
def head_cache(tmp_path_factory, tiny_config):
    """The tiny network (fixed random weights) and the folder its cache is built in."""
    from stackmff.model import StackMFFV3
    from stackmff.weights.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("head")
    torch.manual_seed(0)
    save_checkpoint(folder / "tiny.pt", StackMFFV3(tiny_config))
    return folder / "tiny.pt", folder / "cache"


def head_config(tmp_path, head_cache, out="run", steps=8, lr=2e-2, extra="", name="head"):
    network, cache = head_cache
    path = tmp_path / f"{name}-{steps}.toml"
    path.write_text(HEAD_TOML.format(cache=cache.as_posix(), network=network.as_posix(),
                                     out=(tmp_path / out).as_posix(), steps=steps, lr=lr) + extra)
    return path


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def log_rows(out):
    import csv

    with open(out / "log.csv") as handle:
        return list(csv.DictReader(handle))


def interrupt_at(monkeypatch, at_step):
    """SIGINT to this process as the step ``at_step`` begins."""
    import os
    import signal

    from stackmff.training import loop

    real = loop.learning_rate

    def hooked(config, step, minutes=0.0):
        if step == at_step:
            os.kill(os.getpid(), signal.SIGINT)
        return real(config, step, minutes)

    monkeypatch.setattr(loop, "learning_rate", hooked)


def cached_loss(head, cache, psnr_weight=1.0):
    """The head's mean loss over the whole training stacks of the cache (a fixed batch)."""
    from stackmff.training.head_cache import load_stack, stack_path
    from stackmff.training.losses import head_loss

    total = []
    with torch.no_grad():
        for i in range(4):
            s = {k: torch.from_numpy(v) for k, v in load_stack(stack_path(cache, i)).items()}
            total.append(head_loss(head(s["logits"], s["grey"]), s["grey"], s["label"],
                                   s["truth"], psnr_weight).item())
    return float(np.mean(total))


def test_stackmff_train_trains_the_head_and_export_ships_it(tmp_path, head_cache, capsys,
                                                             script_main):
    from stackmff.cli import main
    from stackmff.training.head_cache import MANIFEST

    _, cache = head_cache
    assert main(["train", "--config", str(head_config(tmp_path, head_cache, steps=12))]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'run' / 'last.pt'}"
    assert sorted(p.name for p in cache.iterdir()) == [MANIFEST] + [
        f"stack_{i:05d}.npz" for i in range(6)]
    trained, payload = load_head(tmp_path / "run" / "last.pt")
    assert payload["meta"]["step"] == 12 and "optimizer" in payload
    assert payload["meta"]["train_config"]["target"] == "head"
    assert trained.config == HeadConfig(width=6, dilated=1)
    assert cached_loss(trained, cache) < cached_loss(RefineHead(trained.config), cache) - 0.01
    rows = log_rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    validated = [r for r in rows if r["val_soft"]]
    assert [int(r["step"]) for r in validated] == [4, 8, 12]
    assert all(20 < float(r[k]) < 80 for r in validated
               for k in ("val_hard", "val_soft", "val_network_hard", "val_network_soft"))
    export = script_main("export_weights.py")
    assert export([str(tmp_path / "run" / "last.pt"), str(tmp_path / "head.pt")]) == 0
    shipped, meta = load_head(tmp_path / "head.pt")
    assert "optimizer" not in meta and meta["meta"]["step"] == 12
    for name, value in trained.state_dict().items():
        assert torch.equal(shipped.state_dict()[name], value), name


def test_a_resumed_head_run_equals_an_uninterrupted_one(tmp_path, head_cache, monkeypatch,
                                                        capsys):
    from stackmff.cli import main

    whole = head_config(tmp_path, head_cache, out="whole", name="whole")
    assert main(["train", "--config", str(whole)]) == 0
    parts = head_config(tmp_path, head_cache, out="parts")
    with monkeypatch.context() as patch:
        interrupt_at(patch, at_step=5)
        assert main(["train", "--config", str(parts)]) == 130
    assert "training stopped at step 5" in capsys.readouterr().err
    assert load_head(tmp_path / "parts" / "last.pt")[1]["meta"]["step"] == 5
    before = snapshot(tmp_path / "parts")
    with monkeypatch.context() as patch:  # stopped again before its first step: nothing lost
        interrupt_at(patch, at_step=5)
        assert main(["train", "--resume", "--config", str(parts)]) == 130
    assert snapshot(tmp_path / "parts") == before
    assert main(["train", "--config", str(parts)]) == 1  # neither --resume nor --overwrite
    assert main(["train", "--resume", "--config", str(parts)]) == 0
    resumed, _ = load_head(tmp_path / "parts" / "last.pt")
    uninterrupted, _ = load_head(tmp_path / "whole" / "last.pt")
    for name, value in uninterrupted.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert [(r["step"], r["loss"]) for r in log_rows(tmp_path / "parts")] == [
        (r["step"], r["loss"]) for r in log_rows(tmp_path / "whole")]


def test_a_head_checkpoint_of_the_older_trainer_resumes(tmp_path, head_cache):
    """Its meta held the step and seconds, beside the optimizer state."""
    from stackmff.training import load_config, train

    config = load_config(head_config(tmp_path, head_cache, steps=6))
    head = random_head(dilated=1)
    optimizer = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-4)
    (tmp_path / "run").mkdir()
    save_head(tmp_path / "run" / "last.pt", head, {"step": 4, "seconds": 30.0},
              {"optimizer": optimizer.state_dict()})
    train(config, resume=True, progress=False)
    trained, payload = load_head(tmp_path / "run" / "last.pt")
    assert payload["meta"]["step"] == 6 and payload["meta"]["minutes"] >= 0.5
    assert [int(r["step"]) for r in log_rows(tmp_path / "run")] == [5, 6]
    assert not torch.equal(trained.first.weight, head.first.weight)


def test_init_continues_from_the_shipped_head(tmp_path, head_cache):
    from stackmff.training import load_config, train
    from stackmff.weights import SHIPPED_HEAD

    extra = f"init = '{SHIPPED_HEAD.as_posix()}'\n"  # under [run], the last section
    text = head_config(tmp_path, head_cache, steps=1, lr=0.0, extra=extra).read_text()
    path = tmp_path / "init.toml"
    path.write_text(text.replace("width = 6", "width = 12"))
    tuned, _ = load_head(train(load_config(path), progress=False))
    shipped, _ = load_head(SHIPPED_HEAD)
    for name, value in shipped.state_dict().items():  # lr 0: the step changed no weight
        assert torch.equal(tuned.state_dict()[name], value), name
    with pytest.raises(StackError, match=r"\[run\] init: .* is a head with"):
        train(load_config(head_config(tmp_path, head_cache, out="other", extra=extra)),
              progress=False)
    assert not (tmp_path / "other").exists()


BAD_HEAD_CONFIGS = [
    ("[head]\nwidht = 3\n", "[head] has no key 'widht'"),
    ("[model]\nstem_width = 8\n", "unknown config section [model]"),
    ("[head]\ndilated = -1\n", "[head] dilated must be an integer >= 0"),
    ("[cache]\nheld_out = 6\n", "[cache] held_out (6) must be below stacks (6)"),
    ("[data]\ncrop = 96\n", "[data] crop (96) must not exceed [cache] crop (48)"),
    ("[data]\nbatch_size = 5\n", "[data] batch_size (5) must not exceed the 4 training"),
    ("[optim]\npsnr_weight = -1\n", "[optim] psnr_weight must be a number >= 0"),
    ("[run]\nbf16 = true\n", "[run] has no key 'bf16'"),
    ("[cache]\nnetwork = 'missing.pt'\n", "no such checkpoint: missing.pt"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_HEAD_CONFIGS)
def test_a_bad_head_config_is_one_line_and_creates_nothing(tmp_path, head_cache, capsys, extra,
                                                           message):
    import tomllib

    from stackmff.cli import main

    path = head_config(tmp_path, head_cache, steps=2)
    data = tomllib.loads(path.read_text())
    for section, values in tomllib.loads(extra).items():  # override, keep the rest
        data.setdefault(section, {}).update(values)
    lines = [f"target = {data.pop('target')!r}"] + [
        f"[{section}]\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
        for section, values in data.items()]
    path.write_text("\n".join(lines).replace("True", "true").replace("False", "false") + "\n")
    cache = head_cache[1]
    before = snapshot(cache) if cache.exists() else {}
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stackmff: error:") and message in err[0], err
    assert not (tmp_path / "run").exists()
    assert (snapshot(cache) if cache.exists() else {}) == before


def test_targets_are_named_and_checkpoints_of_the_other_target_refused(tmp_path, head_cache,
                                                                       capsys):
    from stackmff.cli import main

    path = tmp_path / "network.toml"
    path.write_text("[cache]\nstacks = 6\n")
    assert main(["train", "--config", str(path)]) == 1
    assert 'starts with target = "head"' in capsys.readouterr().err
    path.write_text("target = 'heads'\n")
    assert main(["train", "--config", str(path)]) == 1
    assert "target must be one of 'network', 'head'" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    network, _ = head_cache
    (tmp_path / "run" / "last.pt").write_bytes(network.read_bytes())
    assert main(["train", "--resume", "--config", str(head_config(tmp_path, head_cache))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a v3+ refinement head" in err[0]
    save_head(tmp_path / "head.pt", random_head())
    with pytest.raises(StackError, match="is a v3\\+ refinement head, not a network"):
        load_checkpoint(tmp_path / "head.pt")


def test_a_cache_of_other_settings_is_refused_and_kept(tmp_path, head_cache, capsys):
    from stackmff.cli import main

    _, cache = head_cache
    assert main(["train", "--config", str(head_config(tmp_path, head_cache, steps=1))]) == 0
    before = snapshot(cache)
    changed = head_config(tmp_path, head_cache, out="other", steps=1).read_text()
    path = tmp_path / "changed.toml"
    path.write_text(changed.replace("crop = 48", "crop = 40"))
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds stacks cached with other settings (crop)" in err[0]
    old = tmp_path / "old-cache"  # stacks of an older stackmff: no record of their settings
    old.mkdir()
    (old / "stack_00000.npz").write_bytes((cache / "stack_00000.npz").read_bytes())
    path.write_text(changed.replace(cache.as_posix(), old.as_posix()))
    assert main(["train", "--config", str(path)]) == 1
    assert "holds cached stacks but no cache.json" in capsys.readouterr().err
    assert snapshot(cache) == before and sorted(p.name for p in old.iterdir()) == [
        "stack_00000.npz"]
    assert not (tmp_path / "other").exists()


def test_the_cache_takes_every_kth_stack_from_a_rendered_folder(tmp_path, head_cache):
    """``[cache] rendered``: even stacks are the folder's stacks in order, as inference sees
    them (8-bit, centre crop, luma), labelled by the layer closest to the truth; odd stacks
    are rendered here, the same as in a cache without the folder."""
    from stackmff.data.export import read_synthetic_stack, write_synthetic_stacks
    from stackmff.data.physical import closest_layer
    from stackmff.errors import StackError
    from stackmff.io.pixels import from_float, to_float
    from stackmff.stack_ops import window_luma
    from stackmff.training.config import load_config
    from stackmff.training.head_cache import build_cache, load_stack, stack_path

    rendered = write_synthetic_stacks(tmp_path / "rendered", 3, (2, 4), 56, "physical", seed=5)
    network, _ = head_cache
    extra = f"rendered = '{(tmp_path / 'rendered').as_posix()}'\nrendered_every = 2\n"
    text = head_config(tmp_path, (network, tmp_path / "mixed"), name="mixed").read_text()
    config = tmp_path / "mixed.toml"
    config.write_text(text.replace("debian_photos = false\n", "debian_photos = false\n" + extra))
    plain = tmp_path / "plain.toml"
    plain.write_text(text.replace(str((tmp_path / "mixed").as_posix()),
                                  str((tmp_path / "plain").as_posix())))
    assert build_cache(load_config(config).cache) == 6
    assert build_cache(load_config(plain).cache) == 6
    for i in (0, 2, 4):
        source = read_synthetic_stack(rendered.folders[i // 2])
        layers = from_float(source["layers"][:, 4:52, 4:52].astype(np.float32) / 65535,
                            np.dtype(np.uint8))
        truth = to_float(from_float(source["truth"][4:52, 4:52].astype(np.float32) / 65535,
                                    np.dtype(np.uint8)))
        cached = load_stack(stack_path(tmp_path / "mixed", i))
        np.testing.assert_array_equal(cached["grey"], window_luma(layers))
        np.testing.assert_array_equal(cached["label"], closest_layer(
            to_float(layers), truth, prefer=source["focus_map"][4:52, 4:52]))
    for i in (1, 3, 5):
        mixed = load_stack(stack_path(tmp_path / "mixed", i))
        alone = load_stack(stack_path(tmp_path / "plain", i))
        np.testing.assert_array_equal(mixed["grey"], alone["grey"])
        np.testing.assert_array_equal(mixed["label"], alone["label"])
    # the folder rendered again by another renderer version: the cached stacks are stale
    info = rendered.folders[0] / "stack.json"
    info.write_text(info.read_text().replace('"renderer"', '"version": 2, "renderer"', 1))
    with pytest.raises(StackError, match=r"other settings \(rendered_version\)"):
        build_cache(load_config(config).cache)


def test_a_rendered_folder_short_of_stacks_is_one_line(tmp_path, head_cache):
    from stackmff.errors import StackError
    from stackmff.training.config import load_config
    from stackmff.training.head_cache import build_cache

    network, _ = head_cache
    text = head_config(tmp_path, (network, tmp_path / "cache"), name="short").read_text()
    config = tmp_path / "short.toml"
    config.write_text(text.replace("debian_photos = false\n", "debian_photos = false\n"
                                   f"rendered = '{(tmp_path / 'none').as_posix()}'\n"))
    with pytest.raises(StackError, match="holds no complete stack_000: render it first"):
        build_cache(load_config(config).cache)
    assert not (tmp_path / "cache").exists()  # refused before anything is written


@pytest.mark.parametrize("pad", [1, 2, 4])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_the_head_s_padding_equals_replicate_padding(pad, layout):
    from stackmff.runtime.refine_inference import _pad

    x = torch.randn(3, 5, 7, 9).contiguous(memory_format=layout)
    padded = _pad(x, pad)
    assert torch.equal(padded, torch.nn.functional.pad(x, (pad,) * 4, mode="replicate"))
    assert padded.is_contiguous(memory_format=layout)
