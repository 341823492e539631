"""The MNIST multilayer perceptron of Sec. 4.2 (Figures 2 and 3): 784 → 200 → 80 → 10 with ReLU."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from bregman.models.layers import linear
from bregman.models.normalize import Normalize

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


class MLP(nn.Module):
    """Fully connected classifier ``sizes[0] → … → sizes[-1]`` with ReLU between layers.

    Layer ``l`` is ``fc{l}`` (an ``nn.Linear``, weight ``W_l ∈ R^{n_l × n_{l−1}}``), so the
    parameters are named ``layers.fc1.weight``, ``layers.fc1.bias``, …. The logits carry **no**
    activation. (The authors' ``fully_connected`` model also applied ReLU to the logits, which
    clips every negative logit to 0 before the cross-entropy; that is a quirk we do not copy.)

    Args:
        sizes: layer widths including input and output; the paper's net is ``(784, 200, 80, 10)``.
        mean, std: input normalization (MNIST statistics by default), applied first in ``forward``.
        support_linear: build the layers as ``SupportLinear`` (forward pass and input gradient on
            the non-zero rows only; :mod:`bregman.models.support_linear`).

    Input: ``N×1×28×28`` (or already flat ``N×784``) with values in [0, 1]. Output: ``N×10`` logits.
    """

    def __init__(
        self,
        sizes: Sequence[int] = (784, 200, 80, 10),
        mean: Sequence[float] = MNIST_MEAN,
        std: Sequence[float] = MNIST_STD,
        support_linear: bool = False,
    ) -> None:
        super().__init__()
        sizes = tuple(int(n) for n in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP needs at least two positive layer sizes, got {sizes}")
        self.sizes = sizes
        self.normalize = Normalize(mean, std)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            layers[f"fc{l}"] = linear(n_in, n_out, support=support_linear)
            if l < len(sizes) - 1:
                layers[f"relu{l}"] = nn.ReLU(inplace=True)  # a Linear output is not needed by its backward
        self.layers = nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        return self.layers(torch.flatten(x, 1))
