import dataclasses

import numpy as np
import pytest
import torch

from stackmff.model import ModelConfig, StackMFFV3
from stackmff.model.reference import ReferenceStackMFFV3, reference_attention
from stackmff.testing import make_stack
from stackmff.training.losses import classification_loss, depth_regression_loss


def test_faithful_config_has_the_papers_parameter_count():
    count = sum(p.numel() for p in StackMFFV3().parameters())
    assert abs(count - 2_738_268) / 2_738_268 < 0.01
    assert sum(p.numel() for p in StackMFFV3().attention.parameters()) == 6_560


def test_shapes_and_any_stack_size_in_one_model(tiny_config):
    torch.manual_seed(0)
    model = StackMFFV3(tiny_config).eval()
    with torch.no_grad():
        for n in (2, 5, 24):
            output = model(torch.rand(1, n, 1, 64, 96))
            assert output.logits.shape == (1, n, 64, 96)
            assert output.focus_map().shape == (1, 64, 96)
            assert int(output.focus_map().max()) < n
            confidence = output.confidence()
            assert float(confidence.min()) >= 1.0 / n - 1e-6 and float(confidence.max()) <= 1.0
    with torch.no_grad():
        volume = model.estimate(torch.rand(2, 3, 1, 64, 64))
    assert volume.shape == (2, 3, tiny_config.decoder_width, 64, 64)
    assert 0.0 <= float(volume.min()) and float(volume.max()) <= 1.0  # sigmoid volume


def test_one_return_type_in_train_and_eval(tiny_config):
    model = StackMFFV3(tiny_config)
    x = torch.rand(1, 3, 1, 32, 32)
    assert type(model.train()(x)) is type(model.eval()(x))


def test_every_parameter_gets_a_gradient(tiny_config):
    torch.manual_seed(0)
    model = StackMFFV3(tiny_config).train()
    output = model(torch.rand(2, 4, 1, 64, 64))
    loss = classification_loss(output, torch.randint(0, 4, (2, 64, 64)))
    loss = loss + depth_regression_loss(output, torch.randint(0, 4, (2, 64, 64)))
    loss.backward()
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_without_position_encoding_the_network_is_permutation_equivariant():
    torch.manual_seed(0)
    model = StackMFFV3(ModelConfig(pos_encoding="none")).eval()
    stack = torch.rand(1, 6, 1, 64, 64)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        straight = model(stack).logits
        permuted = model(stack[:, order]).logits
    torch.testing.assert_close(permuted, straight[:, order], atol=1e-5, rtol=0)


def test_rope_makes_the_attention_depend_on_order():
    torch.manual_seed(0)
    model = StackMFFV3(ModelConfig(pos_encoding="rope")).eval()
    volume = torch.rand(1, 4, 16, 8, 8)
    order = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        difference = model.attention(volume[:, order]) - model.attention(volume)[:, order]
    assert float(difference.abs().max()) > 1e-3


@pytest.mark.parametrize("encoding", ["rope", "none"])
def test_fast_attention_matches_the_straightforward_reference(encoding):
    torch.manual_seed(0)
    model = StackMFFV3(ModelConfig(pos_encoding=encoding)).eval()
    volume = torch.rand(2, 5, 16, 24, 40)
    with torch.no_grad():
        expected = reference_attention(model.attention, volume)
        torch.testing.assert_close(model.attention(volume, chunk=100), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(model.attention.logits(volume, chunk=333), expected.amax(2),
                                   atol=1e-5, rtol=0)
        stack = torch.rand(1, 3, 1, 64, 64)
        torch.testing.assert_close(model(stack).logits, ReferenceStackMFFV3(model)(stack).logits,
                                   atol=1e-5, rtol=0)


def test_config_validation_and_round_trip(tiny_config):
    with pytest.raises(ValueError, match="pos_encoding"):
        ModelConfig(pos_encoding="sinusoid")
    with pytest.raises(ValueError, match="head"):
        ModelConfig(head="other")
    assert ModelConfig.from_dict(tiny_config.to_dict()) == tiny_config


def test_tiny_model_overfits_one_stack(tiny_config):
    """The one slow test: the whole pipeline can learn a focus map.

    Accuracy is read in training mode: with one stack, BatchNorm's batch statistics are the
    statistics of that stack, while the running averages lag behind the changing weights."""
    torch.manual_seed(0)
    layers, _, focus_map = make_stack(n_layers=3, height=64, width=64, seed=2)
    stack = torch.from_numpy(layers)[None, :, None]
    target = torch.from_numpy(focus_map.astype(np.int64))[None]
    model = StackMFFV3(dataclasses.replace(tiny_config, drop_path=0.0))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(300):
        loss = classification_loss(model(stack), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 25 == 24:
            with torch.no_grad():
                accuracy = float((model(stack).focus_map() == target).float().mean())
            if accuracy >= 0.95:
                break
    assert accuracy >= 0.95, f"accuracy {accuracy:.3f} after {step + 1} steps"


def test_selection_cost_loss_prefers_near_misses_and_ignores_flat_pixels():
    from stackmff.model import StackOutput
    from stackmff.training.losses import selection_cost_loss

    # layer k has value k / 4 on the left half; the right half is flat (all layers equal)
    stack = torch.zeros(1, 5, 1, 4, 8)
    stack[:, :, 0, :, :4] = torch.arange(5.0).view(1, 5, 1, 1) / 4
    truth = torch.full((1, 4, 8), 2)

    def loss_choosing(left: int, right: int) -> float:
        logits = torch.full((1, 5, 4, 8), -10.0)
        logits[:, left, :, :4] = 10.0
        logits[:, right, :, 4:] = 10.0
        return selection_cost_loss(StackOutput(logits), truth, stack).item()

    assert loss_choosing(2, 2) < loss_choosing(3, 2) < loss_choosing(0, 2)
    # a wrong pick on flat pixels costs far less than one layer off on textured ones
    assert loss_choosing(2, 0) - loss_choosing(2, 2) < 0.2 * (loss_choosing(3, 2) - loss_choosing(2, 2))


def test_selection_blend_loss_adds_the_soft_blend_error():
    from stackmff.model import StackOutput
    from stackmff.training.losses import selection_blend_loss, selection_cost_loss

    stack = torch.zeros(1, 3, 1, 4, 8)
    stack[:, :, 0] = torch.tensor([0.0, 0.5, 1.0]).view(1, 3, 1, 1)
    truth = torch.full((1, 4, 8), 1)
    certain = torch.full((1, 3, 4, 8), -20.0)
    certain[:, 1] = 20.0
    # the probabilities split between the neighbours blend to the true layer's value;
    # split between layers 1 and 2 they blend to 0.75: only the blend term tells them apart
    balanced = torch.zeros(1, 3, 4, 8)
    lopsided = torch.full((1, 3, 4, 8), -20.0)
    lopsided[:, 1:] = 0.0
    extra = {name: (selection_blend_loss(StackOutput(logits), truth, stack)
                    - selection_cost_loss(StackOutput(logits), truth, stack)).item()
             for name, logits in (("certain", certain), ("balanced", balanced),
                                  ("lopsided", lopsided))}
    assert extra["certain"] == pytest.approx(0, abs=1e-6)
    assert extra["balanced"] == pytest.approx(0, abs=1e-6)
    assert extra["lopsided"] == pytest.approx(0.25 / (1 / 3), rel=1e-4)  # |0.75-0.5| / scale
