import csv
import dataclasses

import numpy as np
import pytest
import torch

from stackmff.cli import main
from stackmff.data import Scene
from stackmff.testing import texture, tiny_model_config
from stackmff.training import TrainConfig, train
from stackmff.training.config import DataConfig, RunConfig
from stackmff.training.dataset import SyntheticStacks, render
from stackmff.weights.checkpoint import load_checkpoint

TINY_MODEL = tiny_model_config()


def tiny_config(out, steps=3) -> TrainConfig:
    return TrainConfig(
        model=TINY_MODEL,
        data=DataConfig(crop=32, min_layers=2, max_layers=4, batch_size=2, workers=0,
                        dead_leaves=1.0, photos=0.0, motorcycle=0.0),
        run=RunConfig(out=str(out), max_steps=steps, validate_every=2, validation_stacks=1,
                      validation_size=32))


def test_batches_have_one_stack_size_and_valid_labels():
    stream = iter(SyntheticStacks(tiny_config("unused").data, seed=0))
    sizes = set()
    for _ in range(4):
        stack, focus_map = next(stream)
        n = stack.shape[1]
        sizes.add(n)
        assert stack.shape == (2, n, 1, 32, 32) and stack.dtype == torch.float32
        assert focus_map.shape == (2, 32, 32) and 0 <= int(focus_map.min()) and int(focus_map.max()) < n
    assert sizes <= {2, 3, 4}


def test_background_worker_delivers_batches_after_opencv_has_run_threaded():
    """The parent renders with OpenCV's thread pool before the loader starts its worker, as
    training does with the validation stacks; a forked worker could then hang."""
    import cv2

    from stackmff.training.dataset import batches

    cv2.setNumThreads(2)
    cv2.GaussianBlur(np.zeros((512, 512), np.float32), (31, 31), 0)
    loader = batches(dataclasses.replace(tiny_config("unused").data, workers=1), seed=0)
    assert loader.multiprocessing_context.get_start_method() == "spawn"
    stack, focus_map = next(iter(loader))
    assert stack.shape[0] == 2 and stack.shape[-2:] == (32, 32) and focus_map.shape == (2, 32, 32)


def test_inverse_layer_sampling_gives_each_stack_size_equal_compute():
    from stackmff.training.dataset import layer_count_odds

    data = DataConfig(min_layers=2, max_layers=24)
    sizes, odds = layer_count_odds(data)
    assert list(sizes) == list(range(2, 25)) and np.allclose(odds, 1 / 23)
    sizes, odds = layer_count_odds(dataclasses.replace(data, layer_sampling="inverse"))
    assert np.isclose(odds.sum(), 1.0) and np.allclose(odds * sizes, (odds * sizes)[0])
    assert odds[0] == pytest.approx(12 * odds[-1])  # N = 2 twelve times as often as N = 24
    stream = iter(SyntheticStacks(dataclasses.replace(tiny_config("unused").data,
                                                      layer_sampling="inverse"), seed=0))
    counts = np.bincount([next(stream)[0].shape[1] for _ in range(60)], minlength=5)[2:]
    assert counts[0] > counts[2] > 0  # 2 drawn more often than 4 (expected 28 vs 14)
    with pytest.raises(ValueError, match="layer_sampling must be"):
        TrainConfig.from_dict({"data": {"layer_sampling": "square"}})


def test_training_writes_checkpoint_and_log_and_resumes(tmp_path):
    config = tiny_config(tmp_path / "run")
    last = train(config, progress=False)
    model, payload = load_checkpoint(last)
    assert model.config == TINY_MODEL
    assert payload["meta"]["step"] == 3
    assert TrainConfig.from_dict(payload["meta"]["train_config"]) == config
    assert "optimizer" in payload
    longer = dataclasses.replace(config, run=dataclasses.replace(config.run, max_steps=5))
    train(longer, resume=True, progress=False)
    _, payload = load_checkpoint(last)
    assert payload["meta"]["step"] == 5
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert rows[1]["val_accuracy"] and 0.0 <= float(rows[1]["val_accuracy"]) <= 1.0


def test_train_command_rejects_a_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\nflavour = 'x'\n")
    assert main(["train", "--config", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[data] has no key 'flavour'" in err[0]
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 1


@pytest.mark.parametrize("renderer", ["faithful", "physical"])
def test_ordered_data_keeps_layers_near_to_far(renderer):
    """With ``ordered`` the layers keep their focus order: a pixel's label never changes."""
    depth = np.ones((32, 32), np.float32)
    depth[:, 16:] = 4.0
    scene = Scene(texture(32, 32, colour=True, seed=0), depth)

    class OneScene:
        def draw(self, rng):
            return scene

    config = dataclasses.replace(tiny_config("unused").data, ordered=True, renderer=renderer,
                                 noise=0.0)
    labels = {render(config, OneScene(), 4, np.random.default_rng(s))[1][0, 0] for s in range(5)}
    assert len(labels) == 1  # same label every draw: no shuffling
    with pytest.raises(ValueError, match="ordered = true"):
        TrainConfig.from_dict({"model": {"head": "depth_regression"}})


def test_cosine_schedule_warms_up_then_falls_to_min_lr():
    from stackmff.training.config import OptimConfig
    from stackmff.training.loop import learning_rate

    config = TrainConfig(optim=OptimConfig(lr=1e-3, schedule="cosine", min_lr=1e-5,
                                           warmup_steps=10),
                         run=RunConfig(max_steps=100))
    rates = [learning_rate(config, step) for step in range(101)]
    assert rates[0] == pytest.approx(1e-4, rel=0.01)          # warm-up
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then never rises
    assert rates[50] == pytest.approx((1e-3 + 1e-5) / 2, rel=0.01)
    assert rates[100] == pytest.approx(1e-5)


def test_cosine_ends_with_the_time_budget_when_that_comes_first():
    from stackmff.training.config import OptimConfig
    from stackmff.training.loop import learning_rate

    config = TrainConfig(optim=OptimConfig(lr=1e-3, schedule="cosine", min_lr=1e-5,
                                           warmup_steps=1),
                         run=RunConfig(max_steps=100_000, max_minutes=10))
    assert learning_rate(config, 50, minutes=5) == pytest.approx((1e-3 + 1e-5) / 2, rel=0.01)
    assert learning_rate(config, 50, minutes=10) == pytest.approx(1e-5)
    assert learning_rate(config, 50, minutes=0) == pytest.approx(1e-3, rel=0.01)


def test_init_starts_from_a_checkpoint(tmp_path):
    first = train(tiny_config(tmp_path / "first", steps=1), progress=False)
    start, _ = load_checkpoint(first)
    config = tiny_config(tmp_path / "second", steps=1)
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, init=str(first)),
                                 optim=dataclasses.replace(config.optim, lr=0.0))
    tuned, payload = load_checkpoint(train(config, progress=False))
    assert payload["meta"]["step"] == 1
    tuned_parameters = dict(tuned.named_parameters())
    for name, value in start.named_parameters():  # lr 0: the step changed no weight
        assert torch.equal(value, tuned_parameters[name]), name
    with pytest.raises(ValueError, match="device must be"):
        TrainConfig.from_dict({"run": {"device": "tpu"}})


def test_debian_photos_missing_is_a_clear_error(tmp_path):
    from stackmff.data.sources import installed_photos

    assert installed_photos((str(tmp_path / "a.jpg"), __file__)) == [__file__]
    with pytest.raises(FileNotFoundError, match="scripts/setup_training.sh"):
        installed_photos((str(tmp_path / "a.jpg"),))


@pytest.fixture(scope="module")
def rendered_folder(tmp_path_factory):
    from stackmff.data.export import write_synthetic_stacks

    folder = tmp_path_factory.mktemp("rendered")
    write_synthetic_stacks(folder, count=4, n_layers=(2, 3), size=48, seed=5)
    return folder


def test_rendered_batches_keep_each_stack_s_label_through_crops_flips_and_reordering(
        rendered_folder):
    from stackmff.data.export import stack_folder
    from stackmff.training.rendered import RenderedPool, read_training_stack

    pool = RenderedPool(rendered_folder, crop=32)
    assert len(pool) == 4 and set(pool.sizes) <= {2, 3}
    rng = np.random.default_rng(0)
    originals = [read_training_stack(stack_folder(rendered_folder, i)) for i in range(4)]
    for _ in range(6):
        stack, focus_map = pool.batch(rng, 2)
        n = stack.shape[1]
        assert stack.shape == (2, n, 1, 32, 32) and focus_map.shape == (2, 32, 32)
        for layers, label in zip(stack[:, :, 0].numpy(), focus_map.numpy()):
            # the labelled layer's pixels are those of the original stack's labelled layer
            chosen = np.take_along_axis(layers, label[None], 0)[0]
            assert any(_found_in(chosen, np.take_along_axis(o[0], o[1][None], 0)[0])
                       for o in originals if len(o[0]) == n)


def _found_in(crop: np.ndarray, image: np.ndarray) -> bool:
    """``crop`` is a window of ``image``, flipped or not."""
    size = crop.shape[0]
    for flipped in (crop, crop[::-1], crop[:, ::-1], crop[::-1, ::-1]):
        for y in range(image.shape[0] - size + 1):
            for x in range(image.shape[1] - size + 1):
                if np.array_equal(image[y:y + size, x:x + size], flipped):
                    return True
    return False


def test_a_frozen_encoder_trains_only_the_decoder_and_attention_on_rendered_stacks(
        tmp_path, rendered_folder):
    first = train(tiny_config(tmp_path / "first", steps=1), progress=False)
    start, _ = load_checkpoint(first)
    config = tiny_config(tmp_path / "second", steps=2)
    config = dataclasses.replace(
        config, run=dataclasses.replace(config.run, init=str(first)),
        optim=dataclasses.replace(config.optim, freeze="encoder", lr=0.01),
        data=dataclasses.replace(config.data, rendered=str(rendered_folder),
                                 rendered_share=1.0)).checked()
    tuned, _ = load_checkpoint(train(config, progress=False))
    before, after = start.state_dict(), tuned.state_dict()
    encoder = [k for k in before if k.startswith("focus.encoder.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)  # BN stats too
    assert any(not torch.equal(before[k], after[k]) for k in before
               if k.startswith(("focus.decoder.", "attention.")))


def test_rendered_batches_need_their_folder(tmp_path):
    from stackmff.errors import StackError

    with pytest.raises(StackError, match="rendered_share > 0"):
        TrainConfig.from_dict({"data": {"rendered_share": 0.5}})
    config = dataclasses.replace(
        tiny_config(tmp_path / "run"),
        data=dataclasses.replace(tiny_config("x").data, rendered=str(tmp_path / "none"),
                                 rendered_share=0.5))
    with pytest.raises(StackError, match="holds no stacks"):
        train(config, progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()
