"""Evaluation: the mean loss and score of a model over a loader, in one place for the training loop,
the test of the best model and thresholding."""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from bregman.train.config import Config
from bregman.train.tasks import Task

__all__ = ["autocast", "evaluate"]


def autocast(cfg: Config, device: torch.device):
    """``torch.autocast`` to bfloat16 with ``cfg.amp == "bf16"``, else nothing."""
    if cfg.amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def evaluate(forward: nn.Module, model: nn.Module, loader, task: Task, cfg: Config,
             device: torch.device) -> dict[str, float]:
    """Mean loss and score over ``loader`` under ``model.eval()`` and inference mode."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    score_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for x, y in loader:
        with autocast(cfg, device):
            out = forward(x)
        loss_sum += task.loss(out.float(), y) * len(x)
        score_sum += task.score_sum(out, y)
        count += len(x)
    return {"loss": loss_sum.item() / count, "score": score_sum.item() / count}
