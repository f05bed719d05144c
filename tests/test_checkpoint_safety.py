"""Malformed checkpoints and model configs: one-line errors naming the file, before anything
is built or allocated."""

import dataclasses
import tomllib
from pathlib import Path

import pytest
import torch

from stackmff.cli import main
from stackmff.errors import StackError
from stackmff.model import ModelConfig, StackMFFV3
from stackmff.testing import make_stack, write_stack
from stackmff.weights.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "src" / "stackmff" / "weights" / "stackmff-v3.pt"


class Opaque:
    """A pickled object that a weights-only load refuses."""


@pytest.fixture(scope="module")
def good_payload(tiny_config) -> dict:
    torch.manual_seed(0)
    model = StackMFFV3(tiny_config)
    return {"format_version": 1, "model_config": tiny_config.to_dict(),
            "state_dict": model.state_dict(), "meta": {}}


def with_changes(payload: dict, **changes) -> dict:
    """A copy of ``payload`` with top-level keys, or ``config_<key>`` model options, changed."""
    result = dict(payload)
    result["model_config"] = dict(payload["model_config"])
    for key, value in changes.items():
        if key.startswith("config_"):
            result["model_config"][key[len("config_"):]] = value
        else:
            result[key] = value
    return result


MALFORMED = {
    "zero bytes": None,
    "state_dict is a list": {"state_dict": [1, 2, 3]},
    "state_dict holds an int": {"state_dict": {"stem.0.weight": 3}},
    "model_config is a list": {"model_config": [16, 32]},
    "widths is a string": {"config_widths": "abcd"},
    "zero attention heads": {"config_attention_heads": 0},
    "format_version is a string": {"format_version": "1"},
    "enormous width": {"config_widths": [8, 16, 24, 131072]},
    "unknown model option": {"config_colour": True},
    "negative blocks": {"config_blocks_per_stage": -1},
    "boolean width": {"config_stem_width": True},
    "nan drop path": {"config_drop_path": float("nan")},
    "payload is a list": "list",
    "pickled object": "object",
    "truncated file": "truncated",
    "text file": "text",
    "weights of another shape": {"config_ppm_width": 16},
}


def write_malformed(tmp_path: Path, case: str, good: dict) -> Path:
    path = tmp_path / "BAD.pt"
    change = MALFORMED[case]
    if change is None:
        path.write_bytes(b"")
    elif change == "list":
        torch.save([1, 2], path)
    elif change == "object":
        torch.save({**good, "meta": {"note": Opaque()}}, path)
    elif change == "truncated":
        torch.save(good, path)
        path.write_bytes(path.read_bytes()[:3000])
    elif change == "text":
        path.write_text("not a checkpoint\n")
    else:
        payload = with_changes(good, **change)
        torch.save(payload, path)
    return path


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_checkpoint_gives_one_line_error_naming_the_file(tmp_path, case,
                                                                   good_payload):
    path = write_malformed(tmp_path, case, good_payload)
    with pytest.raises(StackError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert len(message) < 300


@pytest.mark.parametrize("case", ["zero bytes", "state_dict holds an int", "widths is a string",
                                  "zero attention heads", "format_version is a string"])
def test_cli_fuse_with_malformed_checkpoint_exits_with_one_line(tmp_path, capsys, case,
                                                                good_payload):
    path = write_malformed(tmp_path, case, good_payload)
    layers, _, _ = make_stack(n_layers=2, height=32, width=32)
    write_stack(tmp_path / "stack", layers)
    out = tmp_path / "out.png"
    code = main(["fuse", str(tmp_path / "stack"), "-o", str(out), "-m", "v3",
                 "--checkpoint", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("stackmff: error:") and err.count("\n") == 1 and str(path) in err
    assert not out.exists()


def test_refused_pickled_objects_are_named_in_one_short_line(tmp_path, good_payload):
    path = write_malformed(tmp_path, "pickled object", good_payload)
    with pytest.raises(StackError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "Weights only load failed" not in message
    assert "refused for safety" in message and len(message) < 160 + len(str(path))
    assert "Opaque" in message


@pytest.mark.parametrize("case", ["truncated file", "text file"])
def test_damaged_file_is_not_blamed_on_safety(tmp_path, case, good_payload):
    with pytest.raises(StackError, match="damaged or not a PyTorch checkpoint"):
        load_checkpoint(write_malformed(tmp_path, case, good_payload))


def test_config_errors_name_the_key_and_the_allowed_range():
    with pytest.raises(ValueError, match=r"widths.*1\.\.2048"):
        ModelConfig.from_dict({"widths": [8, 16, 24, 131072]})
    with pytest.raises(ValueError, match=r"attention_heads.*1\.\.32"):
        ModelConfig.from_dict({"attention_heads": 0})
    with pytest.raises(ValueError, match="unknown model option.*colour"):
        ModelConfig.from_dict({"colour": True})
    with pytest.raises(ValueError, match="model options must be"):
        ModelConfig.from_dict([16, 32])
    with pytest.raises(ValueError, match=r"drop_path.*0\.\.1"):
        ModelConfig(drop_path=float("nan"))
    with pytest.raises(ValueError, match="decoder_width.*even"):
        ModelConfig(decoder_width=9, attention_heads=1, pos_encoding="rope")


def test_every_size_is_capped_so_nothing_huge_is_allocated():
    default = ModelConfig()
    for key in ("stem_width", "blocks_per_stage", "decoder_width", "ppm_width",
                "attention_layers", "attention_heads", "attention_ffn"):
        with pytest.raises(ValueError, match=key):
            dataclasses.replace(default, **{key: 10**6})
    with pytest.raises(ValueError, match="ppm_bins"):
        dataclasses.replace(default, ppm_bins=(1, 10**6))
    with pytest.raises(ValueError, match="million weights"):
        ModelConfig(widths=(2048,) * 4, blocks_per_stage=16)
    # each size up to 8x the faithful network's is accepted
    ModelConfig(stem_width=128, widths=(256, 512, 1024, 2048), decoder_width=128,
                ppm_width=512, attention_heads=32, attention_ffn=512)


def test_configs_in_use_still_load(tiny_config):
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()
    assert ModelConfig.from_dict(tiny_config.to_dict()) == tiny_config
    for path in sorted((ROOT / "configs").glob("*.toml")):
        with open(path, "rb") as handle:
            ModelConfig.from_dict(tomllib.load(handle).get("model", {}))


def test_shipped_weights_still_load():
    model, payload = load_checkpoint(SHIPPED)
    assert model.config == ModelConfig.from_dict(payload["model_config"])
    assert not model.training


def test_saved_checkpoint_round_trips(tiny_config, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, StackMFFV3(tiny_config), meta={"note": "x"})
    model, payload = load_checkpoint(path)
    assert model.config == tiny_config and payload["meta"] == {"note": "x"}


def test_interpolated_weights_lie_between_the_two_networks(tiny_config, tmp_path, monkeypatch,
                                                            script_main):
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = StackMFFV3(tiny_config)
        for name, buffer in model.named_buffers():   # BatchNorm statistics differ too
            if name.endswith("running_mean"):
                buffer.normal_()
        paths.append(tmp_path / f"net{seed}.pt")
        save_checkpoint(paths[-1], model)
    main = script_main("interpolate_weights.py")
    for share in (1.0, 0.25):
        out = tmp_path / f"mixed-{share}.pt"
        monkeypatch.setattr("sys.argv", ["interpolate_weights.py", str(paths[0]), str(paths[1]),
                                         "--share", str(share), "-o", str(out)])
        main()
        first, second = (load_checkpoint(p)[0].state_dict() for p in paths)
        mixed = load_checkpoint(out)[0].state_dict()
        for name, value in mixed.items():
            if value.is_floating_point():
                expected = share * first[name] + (1 - share) * second[name]
                assert torch.allclose(value, expected, atol=1e-6), name
    differing = [n for n, v in first.items() if v.is_floating_point()
                 and not torch.equal(v, second[n])]
    assert len(differing) > 100 and not any(
        torch.equal(mixed[n], first[n]) or torch.equal(mixed[n], second[n]) for n in differing)


def test_interpolating_different_networks_fails_and_writes_nothing(tiny_config, tmp_path,
                                                                   monkeypatch, script_main):
    other = dataclasses.replace(tiny_config, decoder_width=tiny_config.decoder_width * 2)
    paths = []
    for i, config in enumerate((tiny_config, other)):
        paths.append(tmp_path / f"net{i}.pt")
        save_checkpoint(paths[-1], StackMFFV3(config))
    out = tmp_path / "mixed.pt"
    monkeypatch.setattr("sys.argv", ["interpolate_weights.py", str(paths[0]), str(paths[1]),
                                     "--share", "0.5", "-o", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        script_main("interpolate_weights.py")()
    assert "different model configs" in str(exit_info.value) and not out.exists()
