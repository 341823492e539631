"""The Fashion-MNIST convolutional net of Sec. 4.4 (Tables 1 and 2, Figure 1)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from bregman.models.layers import conv2d
from bregman.models.normalize import Normalize

# The authors' code normalizes Fashion-MNIST with (0.5, 0.5), i.e. maps [0, 1] to [−1, 1].
FMNIST_MEAN = (0.5,)
FMNIST_STD = (0.5,)


class ConvNet(nn.Module):
    """Conv(1→64, 5×5) → MaxPool(2) → ReLU → Conv(64→64, 5×5) → MaxPool(2) → ReLU → Flatten →
    Linear(1024→128) → ReLU → Linear(128→10).

    The paper's "fc 1024" is the flattened 4·4·64 feature map, not an extra layer. Counts (for
    the default 10 classes): conv weights 1,600 + 102,400 in 64 + 4,096 = 4,160 kernels of 5×5,
    linear weights 131,072 + 1,280, so 236,352 weights; with the 266 biases 236,618 parameters.
    Pooling comes before the ReLU as in the authors' code (the two commute for max-pooling).

    Parameters are named ``features.conv1.weight``, ``features.conv2.weight``,
    ``classifier.fc1.weight``, ``classifier.fc2.weight`` (and the matching biases).

    Args:
        num_classes: number of logits.
        mean, std: input normalization, applied first in ``forward``.
        support_conv, channels_last: execution options (:func:`bregman.models.layers.conv2d`): every
            convolution a ``SupportConv2d``; conv1's weight channels-last.

    Input: ``N×1×28×28`` in [0, 1], any memory format (``channels_last`` included).
    """

    def __init__(
        self,
        num_classes: int = 10,
        mean: Sequence[float] = FMNIST_MEAN,
        std: Sequence[float] = FMNIST_STD,
        support_conv: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            OrderedDict(
                conv1=conv2d(1, 64, 5, support=support_conv, channels_last=channels_last),  # 28 → 24
                pool1=nn.MaxPool2d(2),  # 24 → 12
                relu1=nn.ReLU(),
                conv2=conv2d(64, 64, 5, support=support_conv),  # 12 → 8
                pool2=nn.MaxPool2d(2),  # 8 → 4
                relu2=nn.ReLU(),
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(1),
                fc1=nn.Linear(4 * 4 * 64, 128),
                relu=nn.ReLU(),
                fc2=nn.Linear(128, num_classes),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))
