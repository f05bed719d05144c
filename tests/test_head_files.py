"""v3+ head files under hostile input: every config value, weight and the format version is
checked and every size capped before anything is built, whoever loads the head (fuse, training
init, resume); a refusal is one line naming the file and what is wrong, and writes nothing."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.model.refine import HeadConfig, RefineHead
from stackmff.training.head_config import HeadTrainConfig
from stackmff.training.head_target import HeadTarget
from stackmff.weights import SHIPPED_HEAD
from stackmff.weights.head import load_head, save_head

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped() -> dict:
    return torch.load(SHIPPED_HEAD, weights_only=True)


def altered(payload: dict, config=None, weights=None, **top) -> dict:
    """A copy of ``payload`` with config values, weights (None: removed) or top-level keys
    changed."""
    result = {**payload, "model_config": {**payload["model_config"], **(config or {})}}
    state = dict(payload["state_dict"])
    for name, value in (weights or {}).items():
        if value is None:
            state.pop(name)
        else:
            state[name] = value
    return {**result, "state_dict": state, **top}


def poisoned(payload: dict, name: str, value: float) -> torch.Tensor:
    tensor = payload["state_dict"][name].clone()
    tensor.view(-1)[0] = value
    return tensor


def wide_layers(payload: dict, count: int) -> dict:
    """Weights for ``count`` dilated layers, copies of the shipped head's one."""
    state = payload["state_dict"]
    return {f"wide.{i}.{part}": state[f"wide.0.{part}"].clone()
            for i in range(count) for part in ("weight", "bias")}


# case: (how the shipped head is altered, what the error line must name)
BAD_VALUES = {
    "fine_sigma 0": (lambda p: altered(p, {"fine_sigma": 0.0}), "fine_sigma"),
    "coarse_sigma -1": (lambda p: altered(p, {"coarse_sigma": -1.0}), "coarse_sigma"),
    "fine_sigma nan": (lambda p: altered(p, {"fine_sigma": float("nan")}), "fine_sigma"),
    "width a string": (lambda p: altered(p, {"width": "12"}), "width"),
    "width a boolean": (lambda p: altered(p, {"width": True}), "width"),
    "dilated a float": (lambda p: altered(p, {"dilated": 1.0}), "dilated"),
    "unknown config key": (lambda p: altered(p, {"colour": True}), "colour"),
    "config a list": (lambda p: {**p, "model_config": [12, 1.0]}, "model_config"),
    "format_version 99": (lambda p: {**p, "format_version": 99}, "format 99"),
    "format_version a string": (lambda p: {**p, "format_version": "1"}, "format_version"),
    "NaN weight": (lambda p: altered(p, weights={"mix.weight": poisoned(p, "mix.weight",
                                                                        float("nan"))}),
                   "mix.weight"),
    "infinite bias": (lambda p: altered(p, weights={"first.bias": poisoned(p, "first.bias",
                                                                           float("inf"))}),
                      "first.bias"),
    "log_scale 100": (lambda p: altered(p, weights={"log_scale": torch.tensor(100.0)}),
                      "log_scale"),
    "weights of another width": (lambda p: altered(p, {"width": 13}), "first.weight"),
    "a weight missing": (lambda p: altered(p, weights={"out.bias": None}), "out.bias"),
    "an extra weight": (lambda p: altered(p, weights={"spare": torch.zeros(3)}), "spare"),
    "integer weights": (lambda p: altered(p, weights={"out.bias": torch.zeros(1, dtype=int)}),
                        "out.bias"),
    "state_dict a list": (lambda p: {**p, "state_dict": [1, 2]}, "state_dict"),
}

# sizes that asked for gigabytes, or for memory until the process was killed
BAD_SIZES = {
    "width 10**6": (lambda p: altered(p, {"width": 10**6}), "width"),
    "width 65": (lambda p: altered(p, {"width": 65}), "width"),
    "dilated 12": (lambda p: altered(p, {"dilated": 12}, weights=wide_layers(p, 12)),
                   "dilated"),
    "fine_sigma 1e9": (lambda p: altered(p, {"fine_sigma": 1e9}), "fine_sigma"),
    "coarse_sigma 1e9": (lambda p: altered(p, {"coarse_sigma": 1e9}), "coarse_sigma"),
}


def write(tmp_path: Path, payload: dict, name: str = "bad.pt") -> Path:
    path = tmp_path / name
    torch.save(payload, path)
    return path


def truncated(tmp_path: Path, keep: float) -> Path:
    path = tmp_path / "bad.pt"
    data = SHIPPED_HEAD.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


@pytest.fixture
def nothing_built(monkeypatch):
    """A head built at all fails the test: sizes are refused from the config alone."""
    def refuse(self, config=None):
        raise AssertionError(f"a head was built from {config}")
    monkeypatch.setattr(RefineHead, "__init__", refuse)


def refusal(path: Path) -> str:
    with pytest.raises(StackError) as caught:
        load_head(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and len(message) < 300, message
    return message


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_head_with_a_bad_value_is_refused_naming_it(tmp_path, shipped, case):
    make, named = BAD_VALUES[case]
    assert named in refusal(write(tmp_path, make(shipped)))


@pytest.mark.parametrize("case", list(BAD_SIZES))
def test_a_head_too_large_is_refused_before_anything_is_built(tmp_path, shipped, nothing_built,
                                                              case):
    make, named = BAD_SIZES[case]
    assert named in refusal(write(tmp_path, make(shipped)))


def test_sizes_are_capped_well_above_the_heads_in_use():
    from stackmff.model.refine import HEAD_LIMITS

    for key, (_, low, high) in HEAD_LIMITS.items():
        for value in (low, high):  # the bounds themselves are accepted
            HeadConfig(**{key: value})
        with pytest.raises(ValueError, match=key):
            HeadConfig(**{key: high * 2})
    largest = RefineHead(HeadConfig(**{k: high for k, (_, _, high) in HEAD_LIMITS.items()}))
    assert sum(p.numel() for p in largest.parameters()) < 10**6 and largest.reach() < 256
    import tomllib

    shapes = [tomllib.loads(p.read_text()).get("head", {}) for p in (ROOT / "configs").glob("*")]
    for shape in [*filter(None, shapes), load_head(SHIPPED_HEAD)[1]["model_config"]]:
        for key, value in shape.items():
            assert value * 4 <= HEAD_LIMITS[key][2], (key, value)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_a_truncated_head_is_named_as_such(tmp_path, keep):
    path = truncated(tmp_path, keep)
    assert refusal(path) == f"cannot read head file {path}: truncated or not a head file"


def test_no_pickle_warning_before_the_refusal(tmp_path, shipped):
    path = tmp_path / "bad.pt"
    torch.save(shipped, path, _use_new_zipfile_serialization=False, pickle_protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refusal(path)
    assert [str(w.message) for w in caught] == []
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": ""}
    process = subprocess.run([sys.executable, "-m", "stackmff", "fuse", str(ROOT / "examples"
                              / "pcb"), "-m", "v3+", "--head", str(path), "-o",
                              str(tmp_path / "out.png")], capture_output=True, text=True,
                             env=environment, cwd=tmp_path)
    assert process.returncode == 1
    assert process.stderr.startswith("stackmff: error:") and process.stderr.count("\n") == 1


def test_the_shipped_head_and_a_saved_one_still_load(tmp_path):
    head, payload = load_head(SHIPPED_HEAD)
    assert head.config == HeadConfig(width=12, fine_sigma=1.0, coarse_sigma=2.5, dilated=1)
    save_head(tmp_path / "head.pt", head, {"step": 1})
    again, _ = load_head(tmp_path / "head.pt")
    for name, value in head.state_dict().items():
        assert torch.equal(again.state_dict()[name], value)


def snapshot(folder: Path) -> dict:
    return {str(p): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case", ["fine_sigma 0", "NaN weight", "format_version 99",
                                  "dilated 12", "fine_sigma 1e9", "width 10**6", "truncated"])
def test_cli_fuse_refuses_a_bad_head_in_one_line_writing_nothing(tmp_path, capsys, shipped,
                                                                 monkeypatch, case):
    if case in BAD_SIZES:
        monkeypatch.setattr(RefineHead, "__init__", lambda *_: pytest.fail("head built"))
    path = truncated(tmp_path, 0.5) if case == "truncated" else write(
        tmp_path, {**BAD_VALUES, **BAD_SIZES}[case][0](shipped))
    before = snapshot(tmp_path)
    code = main(["fuse", str(ROOT / "examples" / "pcb"), "-m", "v3+", "--head", str(path),
                 "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("stackmff: error:") and err.count("\n") == 1 and str(path) in err
    assert snapshot(tmp_path) == before


HEAD_RUN = """target = "head"
[head]
width = 12
dilated = 1
[cache]
folder = "{cache}"
stacks = 4
held_out = 1
crop = 32
max_layers = 3
dead_leaves = 1.0
photos = 0.0
motorcycle = 0.0
debian_photos = false
[data]
crop = 16
batch_size = 1
[run]
out = "{out}"
max_steps = 2
"""


@pytest.mark.parametrize("how", ["resume", "init"])
@pytest.mark.parametrize("case", ["fine_sigma 0", "NaN weight", "format_version 99",
                                  "fine_sigma 1e9", "truncated"])
def test_training_refuses_a_bad_head_before_any_work(tmp_path, capsys, shipped, monkeypatch,
                                                     how, case):
    monkeypatch.setattr(HeadTarget, "prepare", lambda *_, **__: pytest.fail("run prepared"))
    out = tmp_path / "run"
    out.mkdir()
    path = out / "last.pt" if how == "resume" else tmp_path / "bad.pt"
    if case == "truncated":
        path.write_bytes(SHIPPED_HEAD.read_bytes()[:9000])
    else:
        torch.save({**BAD_VALUES, **BAD_SIZES}[case][0](shipped), path)
    (out / "log.csv").write_text("step\n1\n") if how == "resume" else None
    config = tmp_path / "head.toml"
    config.write_text(HEAD_RUN.format(cache=(tmp_path / "cache").as_posix(), out=out.as_posix())
                      + (f'init = "{path.as_posix()}"\n' if how == "init" else ""))
    before = snapshot(tmp_path)
    code = main(["train", "--config", str(config)] + (["--resume"] if how == "resume" else []))
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("stackmff: error:") and err.count("\n") == 1 and str(path) in err
    assert snapshot(tmp_path) == before


def test_a_training_config_asking_for_a_huge_head_is_refused(nothing_built):
    for key, value in [("width", 10**6), ("dilated", 12), ("fine_sigma", 1e9),
                       ("coarse_sigma", 1e9)]:
        with pytest.raises(StackError, match=rf"^\[head\] {key} "):
            HeadTrainConfig.from_dict({"target": "head", "head": {key: value}})
