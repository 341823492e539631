"""The models' execution options (``support_conv``, ``channels_last``, ``support_linear``): built
into the model, same parameters, names, values and ``state_dict`` as the plain model, loadable
both ways."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from bregman.models import MODELS, SPEED_OPTIONS, create_model
from bregman.models.layers import conv2d, linear
from bregman.models.support_conv import SupportConv2d
from bregman.models.support_linear import SupportLinear

INPUTS = {"mlp": (1, 28, 28), "convnet": (1, 28, 28), "resnet18": (3, 32, 32), "denoise_mlp": (1, 28, 28)}
CONV_MODELS = sorted(name for name, options in SPEED_OPTIONS.items() if "support_conv" in options)
LINEAR_MODELS = sorted(name for name, options in SPEED_OPTIONS.items() if "support_linear" in options)
#: every option of every model alone, and all of a model's options together
CASES = [(name, {o: True}) for name in sorted(SPEED_OPTIONS) for o in sorted(SPEED_OPTIONS[name])] + \
        [(name, dict.fromkeys(opts, True)) for name, opts in sorted(SPEED_OPTIONS.items()) if len(opts) > 1]


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _sparse_(model: nn.Module, keep: float = 0.05) -> nn.Module:
    """Zero all but about ``keep`` of every conv layer's kernels and every linear layer's rows (a
    Bregman net's sparsity)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                shape = m.weight.shape[:2] if isinstance(m, nn.Conv2d) else m.weight.shape[:1]
                mask = torch.rand(shape, generator=g) < keep
                mask.view(-1)[0] = True  # no layer entirely zero
                m.weight.mul_(mask.view(*shape, *[1] * (m.weight.dim() - len(shape))))
    return model


def _build(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **options)


def test_speed_options_are_known_models_and_constructor_arguments():
    assert set(SPEED_OPTIONS) <= set(MODELS)
    assert set(CONV_MODELS) == {name for name in SPEED_OPTIONS if _convs(create_model(name))}
    for name, options in SPEED_OPTIONS.items():
        create_model(name, **dict.fromkeys(options, False))  # each takes its options


@pytest.mark.parametrize("name", sorted(SPEED_OPTIONS))
def test_default_builds_plain_layers(name):
    model = _build(name)
    assert not any(isinstance(m, (SupportConv2d, SupportLinear)) for m in model.modules())
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize("name", CONV_MODELS)
def test_support_conv_builds_support_convolutions(name):
    assert all(type(m) is SupportConv2d for m in _convs(_build(name, support_conv=True)))


@pytest.mark.parametrize("name", LINEAR_MODELS)
def test_support_linear_builds_support_linear_layers(name):
    layers = [m for m in _build(name, support_linear=True).modules() if isinstance(m, nn.Linear)]
    assert layers and all(type(m) is SupportLinear for m in layers)


@pytest.mark.parametrize("name", CONV_MODELS)
def test_channels_last_stores_only_the_stem_weight_channels_last(name):
    model = _build(name, channels_last=True)
    stem, *rest = _convs(model)
    assert stem.weight.stride() == torch.empty_like(stem.weight, memory_format=torch.channels_last).stride()
    assert all(m.weight.is_contiguous() for m in rest)
    with torch.no_grad():
        seen = []
        hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(args[0])) for m in rest]
        model.eval()(torch.rand(2, *INPUTS[name]))
        for h in hooks:
            h.remove()
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)  # every later conv


@pytest.mark.parametrize(("name", "options"), CASES)
def test_same_parameters_and_state_dict_both_ways(name, options):
    plain, fast = _sparse_(_build(name)), _build(name, **options)
    assert [(k, v.shape) for k, v in fast.named_parameters()] == [(k, v.shape) for k, v in plain.named_parameters()]
    assert fast.state_dict().keys() == plain.state_dict().keys()
    strides = [p.stride() for p in fast.parameters()]
    fast.load_state_dict(plain.state_dict())  # plain → fast: the fast layout is kept
    assert [p.stride() for p in fast.parameters()] == strides
    x = torch.rand(4, *INPUTS[name])
    plain.eval(), fast.eval()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
    back = _build(name)
    back.load_state_dict(fast.state_dict())  # fast → plain
    for (k, a), b in zip(back.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name", sorted(SPEED_OPTIONS))
def test_options_change_no_initial_value(name):
    plain = _build(name)
    fast = _build(name, **dict.fromkeys(SPEED_OPTIONS[name], True))
    for (k, a), b in zip(plain.state_dict().items(), fast.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("name", sorted(SPEED_OPTIONS))
def test_training_gradients_equal_the_plain_model(name):
    """On a sparse net: the output and every parameter's gradient. In eval mode: batch norm over a
    batch would magnify rounding differences in the channels that a sparse net leaves near constant."""
    grads = []
    for options in ({}, dict.fromkeys(SPEED_OPTIONS[name], True)):
        model = _sparse_(_build(name, **options)).eval()
        g = torch.Generator().manual_seed(2)
        x = torch.rand(16, *INPUTS[name], generator=g)
        out = model(x)
        out.backward(torch.randn(out.shape, generator=g))
        grads.append([out.detach()] + [p.grad for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_conv2d_factory_passes_the_layer_arguments():
    m = conv2d(3, 8, 3, support=True, channels_last=True, stride=2, padding=1, bias=False)
    assert type(m) is SupportConv2d and m.stride == (2, 2) and m.padding == (1, 1) and m.bias is None
    assert isinstance(m.weight, nn.Parameter) and m.weight.is_contiguous(memory_format=torch.channels_last)
    assert type(linear(5, 3)) is nn.Linear and type(linear(5, 3, support=True)) is SupportLinear
