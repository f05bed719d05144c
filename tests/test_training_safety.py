"""Training never destroys an earlier run, reports interruptions, and checks its config up front."""

import csv
import dataclasses
import os
import re
import signal
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.model import ModelConfig
from stackmff.training import TrainConfig, network_target, train
from stackmff.training import loop as training_loop
from stackmff.training.config import DataConfig, OptimConfig, RunConfig
from stackmff.weights.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

TINY_TOML = """
[model]
stem_width = 8
widths = [8, 16, 24, 32]
ppm_width = 8
decoder_width = 8
attention_heads = 2
attention_ffn = 16

[data]
crop = 32
min_layers = 2
max_layers = 3
batch_size = 1
workers = 0
dead_leaves = 1.0
photos = 0.0
motorcycle = 0.0

[run]
out = '{out}'
max_steps = {steps}
validate_every = 1000
validation_stacks = 1
validation_size = 32
"""


def write_config(tmp_path: Path, out: Path, steps: int = 1, extra: str = "") -> Path:
    path = tmp_path / f"train-{steps}.toml"
    text = TINY_TOML.format(out=out.as_posix(), steps=steps)
    path.write_text(text + extra)
    return path


def tiny(out: Path, steps: int = 1) -> TrainConfig:
    return TrainConfig.from_dict(tomllib.loads(TINY_TOML.format(out=out.as_posix(), steps=steps)))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def interrupt_at(monkeypatch, at_step: int, signum: int | None = None) -> None:
    """Stop training as the step ``at_step`` begins: by a real signal to this process, or
    (``signum`` None) by raising KeyboardInterrupt directly."""
    real = training_loop.learning_rate

    def hooked(config, step, minutes=0.0):
        if step == at_step:
            if signum is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
        return real(config, step, minutes)

    monkeypatch.setattr(training_loop, "learning_rate", hooked)


# D3: an existing run is never destroyed


def test_train_refuses_to_start_over_an_existing_run(tmp_path, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path, out)
    assert main(["train", "--config", str(config)]) == 0
    before = snapshot(out)
    assert set(before) == {"last.pt", "log.csv"}
    capsys.readouterr()
    assert main(["train", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0]
    assert "--resume" in err[0] and "--overwrite" in err[0]
    assert snapshot(out) == before
    with pytest.raises(StackError, match="already holds a training run"):
        train(tiny(out), progress=False)
    (out / "last.pt").unlink()  # a log alone is a run too
    with pytest.raises(StackError, match="already holds a training run"):
        train(tiny(out), progress=False)
    assert snapshot(out) == {"log.csv": before["log.csv"]}


def test_a_resumed_run_stopped_before_its_first_step_keeps_its_files(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny(out, steps=2), progress=False)
    before = snapshot(out)
    interrupt_at(monkeypatch, at_step=2)  # the first step the resumed run would take
    with pytest.raises(KeyboardInterrupt):
        train(tiny(out, steps=5), resume=True, progress=False)
    assert snapshot(out) == before


def test_a_resumed_run_that_fails_before_its_first_step_keeps_its_files(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny(out, steps=2), progress=False)
    before = snapshot(out)

    def broken(config, seed):  # the first batch fails, inside the training loop
        yield from ()
        raise RuntimeError("synthesis failed")

    monkeypatch.setattr(network_target, "batches", broken)
    with pytest.raises(RuntimeError, match="synthesis failed"):
        train(tiny(out, steps=5), resume=True, progress=False)
    assert snapshot(out) == before


def test_a_new_run_that_stops_before_its_first_step_creates_nothing(tmp_path, monkeypatch):
    out = tmp_path / "deep" / "run"
    interrupt_at(monkeypatch, at_step=0)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(out), progress=False)
    assert not (tmp_path / "deep").exists()


def test_overwrite_replaces_the_old_run_only_after_a_completed_step(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny(out, steps=3), progress=False)
    before = snapshot(out)
    with monkeypatch.context() as patch:
        interrupt_at(patch, at_step=0)
        with pytest.raises(KeyboardInterrupt):
            train(tiny(out, steps=2), overwrite=True, progress=False)
    assert snapshot(out) == before
    train(tiny(out, steps=2), overwrite=True, progress=False)
    _, payload = load_checkpoint(out / "last.pt")
    assert payload["meta"]["step"] == 2
    with open(out / "log.csv") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2]
    with pytest.raises(StackError, match="not both"):
        train(tiny(out, steps=2), resume=True, overwrite=True, progress=False)


def test_overwrite_flag_reaches_train(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--config", str(write_config(tmp_path, out, steps=2))]) == 0
    assert main(["train", "--overwrite", "--config", str(write_config(tmp_path, out))]) == 0
    _, payload = load_checkpoint(out / "last.pt")
    assert payload["meta"]["step"] == 1


def test_resume_refuses_a_log_without_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(tiny(out, steps=1), progress=False)
    (out / "last.pt").unlink()
    before = snapshot(out)
    with pytest.raises(StackError, match="no last.pt"):
        train(tiny(out, steps=2), resume=True, progress=False)
    assert snapshot(out) == before


# D16: an interrupted run saves its checkpoint and exits non-zero


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_checkpoint_and_exits_non_zero(tmp_path, monkeypatch, capsys, signum,
                                                          status):
    """A polite kill (Ctrl-C, or the SIGTERM a scheduler sends) after the first step."""
    out = tmp_path / "run"
    config = write_config(tmp_path, out, steps=1000)
    interrupt_at(monkeypatch, at_step=1, signum=signum)
    before = signal.getsignal(signum)
    assert main(["train", "--config", str(config)]) == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"stackmff: training stopped at step 1; checkpoint in {out / 'last.pt'}",
                   "stackmff: interrupted"]
    _, payload = load_checkpoint(out / "last.pt")
    assert payload["meta"]["step"] == 1
    with open(out / "log.csv") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1]
    assert signal.getsignal(signum) is before  # handlers restored


# D7: the whole config is checked before anything is created

BAD_CONFIGS = [
    ("[model]\nstem_widht = 8\n", "[model] has no key 'stem_widht'"),
    ("[modle]\nstem_width = 8\n", "unknown config section [modle]"),
    ("[model]\nstem_width = -8\n", "[model] stem_width must be an integer >= 1"),
    ("[model]\nwidths = [8, 16, -24, 32]\n", "[model] widths must be"),
    ("[model]\nwidths = [8, 16]\n", "[model] widths must be"),
    ("[model]\nppm_bins = 3\n", "[model] ppm_bins must be"),
    ("[model]\nhead = 'depth'\n", "[model] head must be one of"),
    ("[model]\npos_encoding = 'sine'\n", "[model] pos_encoding must be one of"),
    ("[model]\ndrop_path = 1.5\n", "[model] drop_path must be a number in [0, 1)"),
    ("[model]\nattention_heads = 3\n", "[model]"),
    ("[model]\ndecoder_width = 9\nattention_heads = 1\n", "[model] decoder_width"),
    ("[data]\ncrop = -5\n", "[data] crop must be an integer >= 32, got -5"),
    ("[data]\ncrop = 'big'\n", "[data] crop must be an integer >= 32, got 'big'"),
    ("[data]\ncrop = 64.5\n", "[data] crop must be an integer"),
    ("[data]\nbatch_size = 0\n", "[data] batch_size must be an integer >= 1"),
    ("[data]\nrenderer = 'fancy'\n", "[data] renderer must be one of 'physical', 'faithful'"),
    ("[data]\nlabel = 'focus'\n", "[data] label must be one of"),
    ("[data]\nnoise = -0.1\n", "[data] noise must be a number in [0, 1]"),
    ("[data]\njpeg = 2\n", "[data] jpeg must be a number in [0, 1]"),
    ("[data]\nmin_layers = 1\n", "[data] min_layers must be an integer >= 2"),
    ("[data]\nmin_layers = 6\nmax_layers = 4\n", "[data] min_layers (6) must not exceed"),
    ("[data]\nordered = 'yes'\n", "[data] ordered must be true or false"),
    ("[data]\ndead_leaves = 0\nphotos = 0\nmotorcycle = 0\n", "[data] dead_leaves"),
    ("[data]\nworkers = -1\n", "[data] workers must be an integer >= 0"),
    ("[optim]\nlr = -1e-3\n", "[optim] lr must be a number >= 0"),
    ("[optim]\nloss = 'l2'\n", "[optim] loss must be one of"),
    ("[optim]\nschedule = 'linear'\n", "[optim] schedule must be one of"),
    ("[optim]\ndecay_steps = 0\n", "[optim] decay_steps must be an integer >= 1"),
    ("[optim]\nschedule = 'cosine'\nlr = 1e-5\nmin_lr = 1e-3\n", "[optim] min_lr"),
    ("[run]\nmax_steps = -1\n", "[run] max_steps must be an integer >= 1, got -1"),
    ("[run]\nmax_minutes = 0\n", "[run] max_minutes must be a number > 0"),
    ("[run]\nvalidate_every = 0\n", "[run] validate_every must be an integer >= 1"),
    ("[run]\ndevice = 'tpu'\n", "[run] device must be one of 'cpu', 'cuda', 'auto'"),
    ("[run]\nbf16 = 1\n", "[run] bf16 must be true or false, got 1"),
    ("[run]\nseed = -3\n", "[run] seed must be an integer >= 0"),
    ("[run]\nout = ''\n", "[run] out must be"),
    ("data = 3\n", "[data] must be a table"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_a_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(StackError, match=re.escape(message)):
        TrainConfig.load(path)


def test_a_bad_config_is_one_line_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path, out, extra="\n[optim]\nwarmup_steps = -2\n")
    assert main(["train", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[optim] warmup_steps must be an integer >= 0, got -2" in err[0]
    assert not out.exists()
    assert main(["train", "--max-minutes", "-1", "--config",
                 str(write_config(tmp_path, out))]) == 1
    assert "[run] max_minutes" in capsys.readouterr().err
    assert not out.exists()


def test_train_checks_a_config_built_in_code(tmp_path):
    out = tmp_path / "run"
    config = tiny(out)
    for bad in (dataclasses.replace(config, run=dataclasses.replace(config.run, max_steps=-1)),
                dataclasses.replace(config, data=dataclasses.replace(config.data, crop=0)),
                dataclasses.replace(config, run=dataclasses.replace(
                    config.run, init=str(tmp_path / "missing.pt")))):
        with pytest.raises(StackError):
            train(bad, progress=False)
    assert not out.exists()


def test_every_section_field_has_a_rule():
    from stackmff.training import head_config
    from stackmff.training.config import RULES

    for section, kind in (("model", ModelConfig), ("data", DataConfig), ("optim", OptimConfig),
                          ("run", RunConfig)):
        assert set(RULES[section]) == {f.name for f in fields(kind)}, section
    for section, kind in head_config.SECTIONS.items():
        assert set(head_config.RULES[section]) == {f.name for f in fields(kind)}, section


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    from stackmff.training import HeadTrainConfig, load_config

    config = load_config(path)
    assert type(config).from_dict(config.to_dict()) == config
    assert isinstance(config, HeadTrainConfig) == path.name.startswith("head")


def test_the_head_config_holds_the_shipped_heads_settings():
    from stackmff.training import load_config
    from stackmff.weights.head import load_head

    config = load_config(CONFIGS / "head.toml")
    shipped, payload = load_head(ROOT / "src" / "stackmff" / "weights" / "stackmff-v3plus-head.pt")
    assert config.head == shipped.config
    assert payload["meta"]["step"] <= config.run.max_steps
    assert (config.cache.stacks, config.cache.crop, config.data.crop, config.optim.lr,
            config.optim.psnr_weight) == (1100, 128, 64, 2e-3, 1.0)
