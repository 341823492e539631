"""Compaction: the paper's models with random dead structure shrink by exactly that structure and
compute the same outputs; what cannot be followed is an error, never an approximation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("torch_pruning", reason="the export extra (torch-pruning) is not installed")

from bregman.compact import CompactionError, SparseLinear, compact, count_parameters  # noqa: E402
from bregman.models import ConvNet, DenoiseMLP, MLP, ResNet18  # noqa: E402

TOL = 1e-5


def _pick(n: int, k: int, g: torch.Generator) -> list[int]:
    return sorted(torch.randperm(n, generator=g)[:k].tolist())


def _assert_same(model: nn.Module, small: nn.Module, shape: tuple[int, ...], g: torch.Generator) -> None:
    """Equal outputs on fresh inputs (not the ones compaction saw), batch size different too."""
    x = torch.rand(shape, generator=g)
    with torch.no_grad():
        want, got = model(x.clone()), small(x.clone())
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= TOL * max(1.0, want.abs().max().item())


def _linear(n_in: int, n_out: int) -> int:
    return n_out * n_in + n_out


def _conv(n_in: int, n_out: int, k: int, bias: bool = True) -> int:
    return n_out * n_in * k * k + (n_out if bias else 0)


def test_mlp_dead_rows_and_unread_neurons():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = MLP().eval()
    rows1, rows2 = _pick(200, 120, g), _pick(80, 30, g)  # constant neurons: ReLU(b_j), folded
    unread1 = _pick(200, 25, g)  # live fc1 neurons that fc2 does not read
    with torch.no_grad():
        model.layers.fc1.weight[rows1] = 0
        model.layers.fc1.bias.uniform_(-0.5, 0.5)  # about half of the constants are non-zero
        model.layers.fc2.weight[rows2] = 0
        model.layers.fc2.weight[:, unread1] = 0
    small = compact(model, torch.rand(16, 1, 28, 28, generator=g))
    k1, k2 = 200 - len(set(rows1) | set(unread1)), 80 - len(rows2)
    assert count_parameters(small) == _linear(784, k1) + _linear(k1, k2) + _linear(k2, 10)
    assert small.layers.fc1.out_features == k1 and small.layers.fc3.in_features == k2
    _assert_same(model, small, (7, 1, 28, 28), g)


def test_convnet_dead_filters_and_neurons():
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = ConvNet().eval()
    f1, f2, r = _pick(64, 55, g), _pick(64, 20, g), _pick(128, 40, g)
    with torch.no_grad():
        model.features.conv1.weight[f1] = 0  # constant maps ReLU(maxpool(b_j)) into the unpadded conv2
        model.features.conv2.weight[f2] = 0  # constant, flattened into fc1's columns
        model.classifier.fc1.weight[r] = 0
    small = compact(model, torch.rand(16, 1, 28, 28, generator=g))
    k1, k2, k3 = 64 - len(f1), 64 - len(f2), 128 - len(r)
    want = _conv(1, k1, 5) + _conv(k1, k2, 5) + _linear(16 * k2, k3) + _linear(k3, 10)
    assert count_parameters(small) == want
    assert (small.features.conv1.out_channels, small.features.conv2.out_channels) == (k1, k2)
    _assert_same(model, small, (5, 1, 28, 28), g)


def test_denoiser_row_sparse_widths():
    """The committed row-sparse denoiser's active neurons per layer (results/mnist_denoise.md)."""
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    model = DenoiseMLP().eval()
    active = [460, 162, 130, 61, 222, 483]
    with torch.no_grad():
        for l, a in enumerate(active, start=1):
            fc = getattr(model.layers, f"fc{l}")
            fc.weight[_pick(784, 784 - a, g)] = 0
            fc.bias.uniform_(0, 0.1)  # positive: every dead neuron is a non-zero constant
    small = compact(model, torch.rand(8, 1, 28, 28, generator=g))
    widths = [784] + active[:-1] + [784]  # the output layer keeps its 784 pixels
    assert count_parameters(small) == sum(_linear(a, b) for a, b in zip(widths, widths[1:]))
    _assert_same(model, small, (3, 1, 28, 28), g)


def _randomize_bn_(model: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2, generator=g)
                m.weight.normal_(1, 0.2, generator=g)
                m.bias.normal_(0, 0.5, generator=g)


def test_resnet18_residual_branch_and_stream_channels():
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = ResNet18().eval()
    _randomize_bn_(model, g)
    expected_drop, kept_mid = 0, {}
    with torch.no_grad():
        # Inside each residual branch: conv1 filters zero. BN(0) = β − γμ/σ; ReLU of it is 0 where
        # that is ≤ 0 (removed), and a non-zero constant otherwise, which the padded conv2 sees as a
        # border pattern, not a bias: kept.
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in stage:
                planes, c_in = block.conv1.out_channels, block.conv1.in_channels
                dead = _pick(planes, planes // 3, g)
                block.conv1.weight[dead] = 0
                removed = set(_pick(len(dead), len(dead) // 2, g))
                for k, j in enumerate(dead):
                    sign = -1.0 if k in removed else 1.0
                    block.bn1.bias[j] = sign * (abs(block.bn1.bias[j]) + 0.1)
                    block.bn1.running_mean[j] = -sign * abs(block.bn1.running_mean[j])
                expected_drop += len(removed) * (c_in * 9 + 2 + planes * 9)
                kept_mid[block] = planes - len(removed)
        # Channel 5 of the first stage's residual stream: every producer (stem conv, both blocks'
        # conv2) zero and every batch norm on it mapping 0 to 0.
        j = 5
        model.conv1.weight[j] = 0
        for bn in (model.bn1, model.layer1[0].bn2, model.layer1[1].bn2):
            bn.running_mean[j], bn.bias[j] = 0.0, 0.0
        for block in model.layer1:
            block.conv2.weight[j] = 0
    # It goes with the stem filter and bn1 entries, a column of each layer1 conv1 and a filter of
    # each layer1 conv2 (over the kept branch channels) with its bn2 entries, and a column of
    # layer2.0's conv1 and shortcut.
    expected_drop += 3 * 9 + 2
    expected_drop += sum(2 * kept_mid[b] * 9 + 2 for b in model.layer1)
    expected_drop += kept_mid[model.layer2[0]] * 9 + 128
    small = compact(model, torch.rand(4, 3, 32, 32, generator=g))
    assert small.conv1.out_channels == 63 and small.layer1[0].conv2.out_channels == 63
    assert count_parameters(model) - count_parameters(small) == expected_drop
    _assert_same(model, small, (3, 3, 32, 32), g)


def test_sparse_linear_format_keeps_the_outputs():
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    model = MLP().eval()
    fc1 = model.layers.fc1
    with torch.no_grad():
        fc1.weight.mul_(torch.rand(fc1.weight.shape, generator=g) < 0.05)
    small = compact(model, torch.rand(8, 1, 28, 28, generator=g), sparse_below=0.1)
    assert [type(m) for m in small.layers if not isinstance(m, nn.ReLU)] == [SparseLinear, nn.Linear, nn.Linear]
    assert count_parameters(small) == int(fc1.weight.count_nonzero()) + 200 + _linear(200, 80) + _linear(80, 10)
    _assert_same(model, small, (1, 1, 28, 28), g)
    _assert_same(model, small, (9, 1, 28, 28), g)


def test_model_and_inputs_are_left_alone():
    model = MLP().train()
    with torch.no_grad():
        model.layers.fc1.weight[:50] = 0
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 1, 28, 28)
    x0 = x.clone()
    small = compact(model, x)
    assert model.training and not small.training
    assert all(p.requires_grad for p in small.parameters())  # as the model's: it can be fine-tuned
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert torch.equal(x, x0)


# ------------------------------------------------------------------------------------ errors
class _OwnConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(x) * 2


class _CenteredMLP(nn.Module):
    """Subtracts the mean over neurons between the layers: an op that mixes the channels, which
    the dependency graph takes for an elementwise one."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)
        with torch.no_grad():  # the neurons the test kills (the first half) sit well above the mean, so
            self.fc1.bias.zero_()  # after the ReLU they vary with the input whatever the random draws
            self.fc1.bias[:4] = 10.0

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(torch.relu(h - h.mean(1, keepdim=True)))


@pytest.mark.parametrize("model, inputs, message", [
    (nn.Sequential(_OwnConv(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)), (2, 1, 8, 8), "_OwnConv, a subclass"),
    (nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.Linear(8, 3)), (2, 6), "LayerNorm"),
    (nn.Sequential(nn.Conv2d(1, 4, 3, groups=1, padding_mode="circular", padding=1), nn.Conv2d(4, 2, 3)),
     (2, 1, 8, 8), "padding_mode='circular'"),
    (_CenteredMLP(), (5, 6), "is not one constant"),
], ids=["conv-subclass", "layer-norm", "circular-padding", "channel-mixing-op"])
def test_what_cannot_be_followed_is_an_error(model, inputs, message):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight[: m.weight.shape[0] // 2] = 0
    with pytest.raises(CompactionError, match=message.replace("(", r"\(")):
        compact(model.eval(), torch.rand(inputs))


def test_support_conv_model_names_the_fix():
    from bregman.models.support_conv import SupportConv2d  # a speed setting of training

    model = nn.Sequential(SupportConv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).eval()
    with pytest.raises(CompactionError, match="SupportConv2d.*without speed settings"):
        compact(model, torch.rand(2, 1, 8, 8))


def test_bad_sparse_below_is_refused():
    with pytest.raises(ValueError, match="sparse_below"):
        compact(MLP(), torch.rand(2, 1, 28, 28), sparse_below=1.5)


def test_missing_extra_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'bregman\[export\]'"):
        compact(MLP(), torch.rand(2, 1, 28, 28))
