"""Shipped experiment presets (``<name>.toml``) and sweeps (``sweeps/<name>.toml``).

A package only so that ``importlib.resources.files("bregman.configs")`` finds the files, from a
checkout, an editable install or a wheel alike; see ``bregman.train.config``.
"""
