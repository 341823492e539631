"""Shapes, parameter counts (PAPER.md §4.3–4.5), gradients, memory formats and the registry."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bregman.models import MODELS, ConvNet, DenoiseMLP, MLP, Normalize, ResNet18, create_model

# name → (input shape of one sample, output shape of one sample)
SHAPES = {
    "mlp": ((1, 28, 28), (10,)),
    "convnet": ((1, 28, 28), (10,)),
    "resnet18": ((3, 32, 32), (10,)),
    "denoise_mlp": ((1, 28, 28), (1, 28, 28)),
}


def _weights(model: nn.Module, kind: type[nn.Module]) -> list[int]:
    return [m.weight.numel() for m in model.modules() if isinstance(m, kind)]


def _kernels(model: nn.Module) -> int:
    return sum(m.out_channels * m.in_channels // m.groups for m in model.modules() if isinstance(m, nn.Conv2d))


def test_registry_covers_shape_table():
    # every image model is in the table; the character-level GPT takes token ids (test_charlm.py)
    assert set(MODELS) - {"charlm_gpt"} == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    in_shape, out_shape = SHAPES[name]
    x = torch.rand(2, *in_shape)
    y = model(x)
    assert y.shape == (2, *out_shape)
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_normalization_not_in_state_dict(name):
    assert not any("normalize" in key for key in create_model(name).state_dict())


def test_unknown_model_lists_known_names():
    with pytest.raises(KeyError, match="unknown model 'resnet19'.*resnet18"):
        create_model("resnet19")


def test_create_model_passes_kwargs():
    assert create_model("convnet", num_classes=7)(torch.rand(1, 1, 28, 28)).shape == (1, 7)


def test_mlp_counts_and_no_logit_activation():
    model = MLP()
    assert _weights(model, nn.Linear) == [784 * 200, 200 * 80, 80 * 10]
    assert sum(p.numel() for p in model.parameters()) == 784 * 200 + 200 + 200 * 80 + 80 + 800 + 10
    assert isinstance(list(model.layers)[-1], nn.Linear)
    torch.manual_seed(0)
    assert (model(torch.rand(64, 1, 28, 28)) < 0).any()  # logits are not clipped by a ReLU


def test_mlp_accepts_flat_input():
    model = MLP()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), model(x.view(3, 784)))


def test_convnet_counts():
    model = ConvNet()
    assert _weights(model, nn.Conv2d) == [1_600, 102_400]
    assert _weights(model, nn.Linear) == [131_072, 1_280]
    assert sum(_weights(model, nn.Conv2d) + _weights(model, nn.Linear)) == 236_352
    assert _kernels(model) == 4_160


def test_resnet18_counts():
    model = ResNet18()
    conv = _weights(model, nn.Conv2d)
    assert len(conv) == 20
    assert sum(conv) == 11_159_232
    assert _kernels(model) == 1_392_832
    assert _weights(model, nn.Linear) == [5_120]
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_denoise_mlp_layers_and_output_relu():
    model = DenoiseMLP()
    assert _weights(model, nn.Linear) == [784 * 784] * 6
    torch.manual_seed(0)
    assert (model(torch.rand(8, 1, 28, 28)) >= 0).all()
    assert isinstance(list(model.layers)[-1], nn.ReLU)
    assert isinstance(list(DenoiseMLP(out_relu=False).layers)[-1], nn.Linear)


@pytest.mark.parametrize("name", ["convnet", "resnet18"])
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.rand(2, *SHAPES[name][0])
    with torch.no_grad():
        expected = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        got = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_normalize_per_channel():
    norm = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    x = torch.rand(2, 3, 4, 4)
    mean = torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(norm(x), (x - mean) / std)
    assert norm.to(torch.float64)(x.double()).dtype == torch.float64


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [([], [], "same non-zero length"), ([0.1], [0.1, 0.2], "same non-zero length"), ([0.0], [0.0], "positive")],
)
def test_normalize_rejects_bad_constants(mean, std, message):
    with pytest.raises(ValueError, match=message):
        Normalize(mean, std)


def test_normalize_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="N×3"):
        Normalize([0.1] * 3, [1.0] * 3)(torch.rand(2, 1, 4, 4))


def test_cifar_normalization_applied():
    model = ResNet18()
    torch.testing.assert_close(model.normalize.mean, torch.tensor([0.4914, 0.4822, 0.4465]))
    torch.testing.assert_close(model.normalize.std, torch.tensor([0.2023, 0.1994, 0.2010]))


@pytest.mark.parametrize("channels", [1, 3])
def test_normalize_takes_uint8_images_as_their_float_in_0_1(channels):
    from bregman.models.normalize import Normalize

    norm = Normalize([0.1307, 0.2, 0.3][:channels], [0.3081, 0.25, 0.5][:channels])
    u = torch.randint(0, 256, (4, channels, 5, 5), dtype=torch.uint8)
    torch.testing.assert_close(norm(u), norm(u.div(255.0)), rtol=1e-6, atol=1e-6)
    x = u.div(255.0)
    before = x.clone()
    norm(x)
    assert torch.equal(x, before)  # a float input is not modified in place
