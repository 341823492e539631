"""The networks of the paper's experiments, by name.

=============  ==============================================  =========================
name           network                                         paper
=============  ==============================================  =========================
mlp            784-200-80-10 ReLU MLP (MNIST)                  Sec. 4.2, Figs. 2–3
convnet        2×conv5×5(64) + fc 1024-128-10 (Fashion-MNIST)  Sec. 4.4, Tables 1–2
resnet18       CIFAR ResNet-18                                 Sec. 4.5, Table 3
denoise_mlp    784⁷ denoising MLP (noisy MNIST)                Sec. 4.6, Figs. 4–5
charlm_gpt     2-block character-level GPT (stdlib source)     beyond the paper (charlm)
=============  ==============================================  =========================

Every classifier normalizes its input itself (first module, ``model.normalize``), so data
loaders hand over tensors in [0, 1]. Weights keep PyTorch's default initialization here; the
paper's sparse initialization (Sec. 4.1) is applied afterwards by ``bregman.init``.

Example:
    >>> import torch
    >>> from bregman.models import create_model
    >>> model = create_model("mlp")
    >>> model(torch.rand(4, 1, 28, 28)).shape
    torch.Size([4, 10])
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bregman.models.charlm import CharGPT
from bregman.models.convnet import ConvNet
from bregman.models.denoise_mlp import DenoiseMLP
from bregman.models.mlp import MLP
from bregman.models.normalize import Normalize
from bregman.models.resnet import BasicBlock, ResNet18

#: name → factory; ``create_model`` and the config's ``model`` field use these keys.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "convnet": ConvNet,
    "resnet18": ResNet18,
    "denoise_mlp": DenoiseMLP,
    "charlm_gpt": CharGPT,
}
#: name → the execution options its constructor takes (``bregman.models.layers``; config keys of
#: the same names): how fast, never what, the model computes
SPEED_OPTIONS: dict[str, frozenset[str]] = {
    "mlp": frozenset({"support_linear"}),
    "convnet": frozenset({"support_conv", "channels_last"}),
    "resnet18": frozenset({"support_conv", "channels_last"}),
    "denoise_mlp": frozenset({"support_linear"}),
}


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as ``name``; ``kwargs`` go to its constructor.

    Raises:
        KeyError: ``name`` is not in ``MODELS`` (the message lists the known names).
    """
    try:
        factory = MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None
    return factory(**kwargs)


__all__ = [
    "MODELS",
    "SPEED_OPTIONS",
    "create_model",
    "MLP",
    "ConvNet",
    "ResNet18",
    "BasicBlock",
    "DenoiseMLP",
    "CharGPT",
    "Normalize",
]
