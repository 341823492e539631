"""The execution settings (``bregman.train.speed``) change how fast, not what, the models compute.

"fast" is the ``Config`` defaults (channels-last activations, memory kept in the process, the
optimizers' foreach path, no compile); "plain" switches every one of them off.
"""
from __future__ import annotations

import platform
import warnings

import pytest
import torch
from torch import nn

from bregman.data import BatchLoader
from bregman.data.datasets import ArrayDataset
from bregman.data.noisy import add_gaussian_noise
from bregman.train import distributed as dist_util
from bregman.train import speed
from bregman.train.config import Config, apply_overrides, load_config
from bregman.train.loop import _maybe_compile, build_model, build_optimizer, regularizer_groups, train_epoch
from bregman.train.tasks import task_for

PLAIN = {"channels_last": False, "retain_memory": False, "foreach": False, "compile": False, "support_conv": False,
         "support_linear": False}
CPU = torch.device("cpu")


def _data(cfg: Config, n: int, shape: tuple[int, ...]) -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (n,), generator=g))
    return add_gaussian_noise(data, cfg.noise_std, generator=g) if cfg.dataset == "mnist-denoise" else data


def _train(preset: str, overrides: dict, *, steps: int = 10, batch: int = 32, shape=(1, 28, 28)):
    """``steps`` LinBreg steps of ``train_epoch``; returns (epoch metrics, state dict)."""
    cfg = apply_overrides(load_config(preset), {"device": "cpu", "progress": "off", "optimizer": "linbreg",
                                                **overrides})
    model = build_model(cfg, CPU)
    groups = regularizer_groups(cfg, model)
    opt = build_optimizer(cfg, groups)
    loader = BatchLoader(_data(cfg, steps * batch, shape), batch, shuffle=True,
                         generator=torch.Generator().manual_seed(1))
    forward = _maybe_compile(model, cfg)
    out = train_epoch(model, forward, opt, loader, task_for(cfg.dataset), cfg, groups, dist_util.DistInfo(), CPU)
    return out, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("preset", ["mnist-mlp", "fmnist-cnn", "mnist-denoise"])
def test_fast_settings_match_plain_over_10_steps(preset):
    fast_metrics, fast = _train(preset, {})
    plain_metrics, plain = _train(preset, PLAIN)
    assert fast.keys() == plain.keys()
    for k in plain:
        torch.testing.assert_close(fast[k], plain[k], atol=1e-5, rtol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    for k in ("loss", "score"):
        if plain_metrics[k] is None:  # not measured for this task (training SSIM)
            assert fast_metrics[k] is None
        else:
            assert fast_metrics[k] == pytest.approx(plain_metrics[k], abs=1e-5, rel=1e-5)


def test_fast_settings_match_plain_resnet18_step():
    """ResNet-18 (BatchNorm, the preset's sparse init): one training step computes the same loss
    and gradients. Over 10 steps its trajectories separate by ~1e-4 under *any* reordering of float
    sums, a change of the thread count as much as of the memory format, so one step is compared."""
    grads, losses = {}, {}
    for name, overrides in (("fast", {}), ("plain", PLAIN)):
        cfg = apply_overrides(load_config("cifar10-resnet18"), {"device": "cpu", **overrides})
        model = build_model(cfg, CPU).train()
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(16, 3, 16, 16, generator=g), torch.randint(0, 10, (16,), generator=g)
        loss = task_for(cfg.dataset).loss(model(x), y)
        loss.backward()
        losses[name] = loss.item()
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert losses["fast"] == pytest.approx(losses["plain"], rel=1e-5)
    assert ((grads["fast"] - grads["plain"]).norm() / grads["plain"].norm()).item() <= 1e-5


def test_defaults_are_the_fast_settings():
    cfg = load_config("fmnist-cnn")
    assert (cfg.channels_last, cfg.retain_memory, cfg.foreach) == (True, True, True)
    assert (cfg.support_conv, cfg.support_linear) == (True, True)
    assert cfg.compile is False  # slower than eager on CPU for every paper model
    assert cfg.amp == "none"  # bf16 changes results; an option


def _conv_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: seen.__setitem__(n, args[0]))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize(("preset", "shape", "stem"), [("fmnist-cnn", (1, 28, 28), "features.conv1.weight"),
                                                        ("cifar10-resnet18", (3, 16, 16), "conv1.weight")])
def test_channels_last_activations_with_contiguous_weights(preset, shape, stem):
    model = build_model(load_config(preset), CPU)
    cl = torch.channels_last
    for name, p in model.named_parameters():
        if name == stem:  # strides of channels-last, also where C_in = 1 makes both formats "contiguous"
            assert p.stride() == torch.empty_like(p, memory_format=cl).stride()
        else:
            assert p.is_contiguous(), name
    inputs = _conv_inputs(model, torch.rand(2, *shape))
    for name, x in inputs.items():
        if name != stem.rsplit(".", 1)[0]:  # every conv after the stem gets channels-last input
            assert x.is_contiguous(memory_format=cl) and x.shape[1] > 1, name
    plain = build_model(apply_overrides(load_config(preset), {"channels_last": False}), CPU)
    assert all(p.is_contiguous() for p in plain.parameters())


def test_retain_freed_memory_is_idempotent():
    first = speed.retain_freed_memory()
    assert speed.retain_freed_memory() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True


def test_compile_falls_back_to_eager_without_a_compiler(monkeypatch):
    model = nn.Linear(3, 2)
    monkeypatch.setattr(speed, "_compiler_works", lambda device: False)
    assert speed.compile_or_eager(model) is model


def test_compile_falls_back_to_eager_when_the_compiled_call_fails():
    model = nn.Linear(3, 2)

    def broken(*args):
        raise RuntimeError("no C++ compiler")

    forward = speed._CompiledOrEager(model, broken)
    x = torch.rand(4, 3)
    with pytest.warns(RuntimeWarning, match="running eagerly"):
        out = forward(x)
    torch.testing.assert_close(out, model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warns once, then stays eager quietly
        torch.testing.assert_close(forward(x), model(x))


@pytest.mark.slow
def test_compiled_mlp_matches_eager():
    """``compile=true`` (inductor on CPU; off by default, it does not pay here) keeps results within 1e-5."""
    eager_metrics, eager = _train("mnist-mlp", {}, steps=3)
    comp_metrics, comp = _train("mnist-mlp", {"compile": True}, steps=3)
    for k in eager:
        torch.testing.assert_close(comp[k], eager[k], atol=1e-5, rtol=1e-5)
    assert comp_metrics["loss"] == pytest.approx(eager_metrics["loss"], abs=1e-5)


@pytest.mark.parametrize("preset", ["fmnist-cnn", "cifar10-resnet18"])
def test_build_model_builds_the_conv_settings_into_the_model(preset):
    """The settings are constructor options of the model (never a patch of a built one): same
    parameter names and values as the plain build."""
    from bregman.models.support_conv import SupportConv2d

    cfg = apply_overrides(load_config(preset), {"device": "cpu"})
    model = build_model(cfg, CPU)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(type(m) is (SupportConv2d if cfg.support_conv else nn.Conv2d) for m in convs)
    plain = build_model(apply_overrides(cfg, {"support_conv": False, "channels_last": False}), CPU)
    assert all(type(m) is nn.Conv2d for m in plain.modules() if isinstance(m, nn.Conv2d))
    for (k, a), (k2, b) in zip(model.state_dict().items(), plain.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k


@pytest.mark.parametrize(("preset", "overrides", "support"), [
    ("mnist-denoise", {}, True),                                              # rows: built
    ("mnist-mlp", {}, False),                                                 # ℓ1 entries: no row is ever zero
    ("mnist-mlp", {"reg_linear": "rows"}, True),
    ("mnist-denoise", {"support_linear": False}, False),
])
def test_build_model_builds_support_linear_layers_for_nets_sparse_by_rows(preset, overrides, support):
    from bregman.models.support_linear import SupportLinear

    cfg = apply_overrides(load_config(preset), {"device": "cpu", **overrides})
    layers = [m for m in build_model(cfg, CPU).modules() if isinstance(m, nn.Linear)]
    assert layers and all(type(m) is (SupportLinear if support else nn.Linear) for m in layers)
