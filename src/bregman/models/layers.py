"""How the paper's nets build their layers: the execution options of the models (config keys
``support_conv``, ``channels_last``, ``support_linear``), decided when a layer is built.

None of them changes parameter names, shapes, values or the ``state_dict``; a ``state_dict`` of
one variant loads into the other (``load_state_dict`` copies into the existing tensors and keeps
their layout).
"""
from __future__ import annotations

import torch
from torch import nn

from bregman.models.support_conv import SupportConv2d
from bregman.models.support_linear import SupportLinear

__all__ = ["conv2d", "linear"]


def conv2d(in_channels: int, out_channels: int, kernel_size: int, *, support: bool = False,
           channels_last: bool = False, **kwargs) -> nn.Conv2d:
    """``nn.Conv2d(in_channels, out_channels, kernel_size, **kwargs)``, or with ``support`` a
    :class:`~bregman.models.support_conv.SupportConv2d` (forward pass and input gradient on the
    weight's non-zero kernels only).

    ``channels_last`` stores the weight channels-last: oneDNN then runs the convolution
    channels-last and returns a channels-last output whatever the input's layout, and every later
    convolution, pooling, batch norm and ReLU follows its channels-last input. The conv nets ask
    for it on their stem only, so that all other weights (and the optimizer's per-parameter work
    on them) stay in plain memory. ``torch.empty_like(..., memory_format=...)`` rather than
    ``.contiguous(memory_format=...)``: for ``in_channels = 1`` the latter keeps the NCHW strides
    (they are "channels-last contiguous" too), and oneDNN would pick NCHW.
    """
    conv = (SupportConv2d if support else nn.Conv2d)(in_channels, out_channels, kernel_size, **kwargs)
    if channels_last:
        w = conv.weight.detach()
        conv.weight = nn.Parameter(torch.empty_like(w, memory_format=torch.channels_last).copy_(w))
    return conv


def linear(in_features: int, out_features: int, *, support: bool = False) -> nn.Linear:
    """``nn.Linear(in_features, out_features)``, or with ``support`` a
    :class:`~bregman.models.support_linear.SupportLinear` (forward pass and input gradient on the
    weight's non-zero rows only)."""
    return (SupportLinear if support else nn.Linear)(in_features, out_features)
