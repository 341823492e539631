"""The denoising network of Sec. 4.6 (Figures 4 and 5): six 784×784 layers with ReLU."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from bregman.models.layers import linear


class DenoiseMLP(nn.Module):
    """784-784-784-784-784-784-784: six ``nn.Linear`` layers, five hidden layers of width 784.

    Trained with row sparsity (eq. 1.14) the hidden widths self-organize into an encoder–decoder
    shape. ReLU follows every hidden layer. ``out_relu=True`` (the default) also puts a ReLU on the
    output, as in the authors' network: target images are ≥ 0, so the output is clipped to the
    feasible half-space. There is no input normalization: the noisy input and the clean target both
    live in [0, 1] (up to the noise), and an MSE against an unnormalized target reads more simply
    with an unnormalized input.

    Parameters are named ``layers.fc1.weight`` … ``layers.fc6.weight`` (and biases).

    Args:
        width: input, hidden and output width (784 = 28·28 pixels).
        depth: number of linear layers (the paper: 6).
        out_relu: apply ReLU to the output.
        support_linear: build the layers as ``SupportLinear`` (forward pass and input gradient on
            the non-zero rows only; :mod:`bregman.models.support_linear`): the net starts from 1 %
            of the rows, and row sparsity keeps most of them zero.

    Input ``N×C×H×W`` (or ``N×width``) with ``C·H·W = width``; the output has the input's shape.
    """

    def __init__(self, width: int = 784, depth: int = 6, out_relu: bool = True,
                 support_linear: bool = False) -> None:
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be ≥ 1, got width={width}, depth={depth}")
        self.width, self.depth, self.out_relu = width, depth, out_relu
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for l in range(1, depth + 1):
            layers[f"fc{l}"] = linear(width, width, support=support_linear)
            if l < depth or out_relu:
                layers[f"relu{l}"] = nn.ReLU()
        self.layers = nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.flatten(x, 1)).view(x.shape)
