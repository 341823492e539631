"""Experiments: the typed config and presets (``bregman.train.config``), the training loop,
checkpoints. Import the submodules directly; this package imports nothing on its own."""
