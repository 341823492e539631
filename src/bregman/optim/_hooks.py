"""The wrapper around every Bregman optimizer's ``step``: torch.optim's step hooks and profiler label.

``torch.optim.Optimizer`` wraps each class's ``step`` (``Optimizer.profile_hook_step``) so that it
calls the global and per-optimizer step pre- and post-hooks and runs inside a profiler record named
``Optimizer.step#<class>.step``. That record is made on every step, profiler or not; in the MNIST
MLP's epoch it cost about 55 µs per step (a third of ``torch.optim.SGD``'s whole step there). This
wrapper keeps the hooks, in torch's order and with torch's contract, and makes the record only
while a profiler runs. torch leaves a ``step`` alone that is marked ``hooked``, so this one is not
wrapped again. ``tests/optim/test_torch_conventions.py`` pins each torch detail it relies on.
"""
from __future__ import annotations

import functools
from itertools import chain
from typing import Any, Callable

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks


def hooked_step(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (an optimizer class's ``step``) with torch.optim's step hooks and profiler label."""

    @functools.wraps(func)
    def step(*args: Any, **kwargs: Any) -> Any:  # args[0] is the optimizer; hooks get it in args, as from torch
        if not torch.compiler.is_compiling() and torch.autograd._profiler_enabled():  # (dynamo: no record)
            with torch.autograd.profiler.record_function(f"Optimizer.step#{type(args[0]).__name__}.step"):
                return _with_hooks(func, args, kwargs)
        return _with_hooks(func, args, kwargs)

    step.hooked = True  # torch's mark: Optimizer._patch_step_function wraps only an unmarked step
    return step


def _with_hooks(func: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    opt = args[0]
    for pre_hook in chain(_global_optimizer_pre_hooks.values(), opt._optimizer_step_pre_hooks.values()):
        result = pre_hook(opt, args, kwargs)
        if result is not None:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise RuntimeError(f"{func} must return None or a tuple of (new_args, new_kwargs), but got {result}.")
            args, kwargs = result
    out = func(*args, **kwargs)
    opt._optimizer_step_code()  # the profiler's entry point after a step (a no-op otherwise)
    for post_hook in chain(opt._optimizer_step_post_hooks.values(), _global_optimizer_post_hooks.values()):
        post_hook(opt, args, kwargs)
    return out
