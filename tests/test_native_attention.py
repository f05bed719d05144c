import subprocess
import sys

import pytest
import torch

from stackmff.model import ModelConfig, StackMFFV3
from stackmff.model.reference import reference_attention
from stackmff.runtime.native_attention import load_kernel, native_logits


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """Kernels built into an empty cache, and no library remembered from other tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    load_kernel.cache_clear()
    yield tmp_path
    load_kernel.cache_clear()


def kernel_or_skip(config: ModelConfig):
    if load_kernel(config.decoder_width, config.attention_heads, config.attention_ffn) is None:
        pytest.skip("no C compiler to build the attention kernel")


@pytest.mark.parametrize("config", [
    ModelConfig(pos_encoding="rope"),
    ModelConfig(pos_encoding="none"),
    ModelConfig(decoder_width=8, attention_heads=2, attention_ffn=16),
], ids=["faithful-rope", "faithful-none", "narrow"])
def test_kernel_matches_the_straightforward_reference(config):
    kernel_or_skip(config)
    torch.manual_seed(0)
    attention = StackMFFV3(config).eval().attention
    for n in (2, 5):
        # 23 x 29 pixels in chunks of 100: partial blocks of 16 inside and at the end of chunks
        volume = torch.rand(2, n, config.decoder_width, 23, 29)
        with torch.no_grad():
            expected = reference_attention(attention, volume).amax(2)
            logits = native_logits(attention, volume, chunk=100)
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


def test_a_bfloat16_volume_gives_the_logits_of_its_float_values():
    """A bf16 network's volume is kept in bf16: the kernel widens it exactly."""
    config = ModelConfig()
    kernel_or_skip(config)
    torch.manual_seed(0)
    attention = StackMFFV3(config).eval().attention
    volume = torch.rand(1, 4, config.decoder_width, 23, 29).to(torch.bfloat16)
    with torch.no_grad():
        expected = native_logits(attention, volume.float(), chunk=100)
        logits = native_logits(attention, volume, chunk=100)
    assert torch.equal(logits, expected)


def test_kernel_is_built_once_per_cpu_and_width(fresh_cache):
    config = ModelConfig(decoder_width=8, attention_heads=2, attention_ffn=16)
    kernel_or_skip(config)
    built = list((fresh_cache / "stackmff").glob("attention-*"))
    assert len(built) == 1
    load_kernel.cache_clear()
    assert load_kernel(8, 2, 16) is not None
    assert list((fresh_cache / "stackmff").glob("attention-*")) == built


def test_no_kernel_means_the_pytorch_path(fresh_cache, monkeypatch):
    attention = StackMFFV3(ModelConfig()).eval().attention
    volume = torch.rand(1, 3, 16, 8, 8)
    assert load_kernel(12, 4, 64) is None  # widths the kernel's vector blocking does not fit
    monkeypatch.setenv("CC", "/bin/false")  # a compiler that always fails
    assert native_logits(attention, volume, chunk=64) is None
    assert not list((fresh_cache / "stackmff").glob("attention-*"))  # nothing half-built left
    load_kernel.cache_clear()
    monkeypatch.setenv("STACKMFF_NATIVE", "0")
    assert native_logits(attention, volume, chunk=64) is None
    monkeypatch.delenv("STACKMFF_NATIVE")
    monkeypatch.delenv("CC")
    assert native_logits(attention, volume.double(), chunk=64) is None


def test_loading_the_kernel_leaves_the_floating_point_mode_alone(fresh_cache):
    """No flush-to-zero for the process's denormals (as -ffast-math would set with gcc < 13)."""
    kernel_or_skip(ModelConfig())
    program = ("import numpy as np; from stackmff.runtime.native_attention import load_kernel; "
               "assert load_kernel(16, 4, 64) is not None; "
               "print(np.float32(1e-39) * np.float32(1.0) > 0)")
    output = subprocess.run([sys.executable, "-c", program], check=True, capture_output=True,
                            text=True).stdout
    assert output.strip() == "True"
