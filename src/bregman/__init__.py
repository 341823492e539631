"""bregman: sparse neural networks by (linearized) Bregman iterations.

Implements Bungert, Roith, Tenbrinck & Burger, "A Bregman Learning Framework for Sparse Neural
Networks", JMLR 23(192), 2022. The core (``regularizers``, ``optim``, ``init``, ``metrics``)
depends on torch only; the experiment code (``data``, ``models``, ``train``, ``report``, ``cli``)
is imported on demand.
"""
from bregman import regularizers
from bregman.control import DensityController
from bregman.optim import AdaBreg, LinBreg, ProxSGD, create_optimizer
from bregman.params import param_groups

__all__ = ["LinBreg", "AdaBreg", "ProxSGD", "create_optimizer", "param_groups", "regularizers", "DensityController"]
__version__ = "0.1.0"
