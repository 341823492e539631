"""CIFAR ResNet-18 of Sec. 4.5 (Table 3), in the common CIFAR variant (He et al. 2016, as laid out
in kuangliu/pytorch-cifar): 3×3 stem without max-pool, four stages of two BasicBlocks."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bregman.models.layers import conv2d
from bregman.models.normalize import Normalize

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


class BasicBlock(nn.Module):
    """``ReLU(BN(conv3×3(ReLU(BN(conv3×3(x))))) + shortcut(x))``.

    The shortcut is the identity, or a strided 1×1 conv + BN when the stride or the width changes.
    Convolutions have no bias (the BN that follows has one); ``support_conv`` as in :class:`ResNet18`.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, support_conv: bool = False) -> None:
        super().__init__()
        self.conv1 = conv2d(in_planes, planes, 3, support=support_conv, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv2d(planes, planes, 3, support=support_conv, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                conv2d(in_planes, planes, 1, support=support_conv, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32×32 inputs.

    stem: conv3×3(3→64, stride 1) + BN + ReLU (no max-pool); stages ``layer1..layer4`` of two
    BasicBlocks each with 64/128/256/512 planes and strides 1/2/2/2; global average pool;
    ``fc = Linear(512, num_classes)``. For 10 classes: 20 conv layers (17 3×3 + 3 1×1 shortcuts)
    with 11,159,232 weights in 1,392,832 kernels, 5,120 linear weights, 11,173,962 parameters.

    Unlike the authors' code (which, depending on the version, did not normalize or computed the
    normalized input and then discarded it) the input is normalized with the CIFAR-10 statistics.

    Args:
        num_classes: number of logits.
        mean, std: per-channel input normalization, applied first in ``forward``.
        support_conv, channels_last: execution options (:func:`bregman.models.layers.conv2d`): every
            convolution a ``SupportConv2d``; the stem conv's weight channels-last.

    Input: ``N×3×32×32`` in [0, 1], any memory format (``channels_last`` included).
    """

    def __init__(
        self,
        num_classes: int = 10,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        support_conv: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.conv1 = conv2d(3, 64, 3, support=support_conv, channels_last=channels_last, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        in_planes = 64
        stages = []
        for planes, stride in zip(widths, strides):
            blocks = (BasicBlock(in_planes, planes, stride, support_conv),
                      BasicBlock(planes, planes, support_conv=support_conv))
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))
