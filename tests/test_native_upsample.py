import pytest
import torch
import torch.nn.functional as F

from stackmff.model.blocks import add_nearest_upsampled_
from stackmff.runtime.native_upsample import add_nearest_upsampled_native_, load_kernel


@pytest.mark.parametrize("size, branch", [((37, 53), (13, 18)), ((512, 96), (171, 32)),
                                          ((20, 21), (7, 7)), ((9, 9), (9, 9))])
def test_the_kernel_adds_the_same_bits_as_interpolate(size, branch):
    if load_kernel() is None:
        pytest.skip("no C compiler to build the kernel")
    torch.manual_seed(0)
    total = torch.randn(2, 24, *size).contiguous(memory_format=torch.channels_last)
    small = torch.randn(2, 24, *branch).contiguous(memory_format=torch.channels_last)
    expected = total + F.interpolate(small, size=size, mode="nearest")
    with torch.no_grad():
        add_nearest_upsampled_native_(total, small)
    assert torch.equal(total, expected)


def test_tensors_the_kernel_does_not_take_go_the_pytorch_way():
    torch.manual_seed(1)
    for total, small in [(torch.randn(1, 8, 30, 31), torch.randn(1, 8, 10, 11)),  # contiguous
                         (torch.randn(1, 8, 30, 31, dtype=torch.float64),
                          torch.randn(1, 8, 10, 11, dtype=torch.float64))]:
        expected = total.clone()
        add_nearest_upsampled_(expected, small)
        add_nearest_upsampled_native_(total, small)
        assert torch.equal(total, expected)


def test_the_optimised_network_keeps_its_output_with_the_kernel(monkeypatch):
    """The network's logits with the kernel equal those without it, bit for bit; at this
    size every coarse branch goes through the kernel."""
    import stackmff.runtime.native_upsample as native
    from stackmff.model import ModelConfig, StackMFFV3
    from stackmff.runtime.optimise import optimise_for_inference

    if load_kernel() is None:
        pytest.skip("no C compiler to build the kernel")
    torch.manual_seed(2)
    model = StackMFFV3(ModelConfig()).eval()
    stack = torch.rand(1, 3, 1, 70, 90)
    fallbacks = []
    monkeypatch.setattr(native, "add_nearest_upsampled_", lambda *a: fallbacks.append(a))
    with torch.no_grad():
        fast = optimise_for_inference(model, "cpu")
        with_kernel = fast(stack).logits
        for module in fast.modules():
            if hasattr(module, "add_upsampled"):
                module.add_upsampled = add_nearest_upsampled_
        without = fast(stack).logits
    assert not fallbacks and torch.equal(with_kernel, without)
