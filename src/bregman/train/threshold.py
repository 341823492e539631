r"""Post-hoc magnitude thresholding of a trained net: the "+ thresh." rows of Tables 1–3.

Thresholding to density d keeps the ``round(d · N)`` largest of all conv + linear weights
(:math:`|w|`, globally) and zeroes the rest; kernel-structured thresholding keeps whole conv kernels
by :math:`\|K_{i,j}\|_2/\sqrt{n_g}` and linear weights by :math:`|w|`, each to density d. It is the
mask of :func:`bregman.train.prune.magnitude_mask` applied once, without retraining. The reported
``threshold`` is the smallest kept magnitude (structured: ``{"conv": ..., "linear": ...}``). A
net already sparser than d is left as it is. The paper reports the resulting densities but not
the thresholds [?]; the targets in the sweeps are the tables' densities.

The training loop evaluates the best-validation model as it is (``test_acc``) and, with
``threshold_target`` set, thresholded (``thresh = {test_acc, val_acc, train_acc, N_total,
N_linear, N_conv, threshold, ...}``; ``train_acc`` here is a clean pass over the training split in
eval mode). A finished run can be thresholded afterwards, to any density, without retraining::

    python -m bregman.train.threshold runs/table3/bregman-linbreg/seed0 --density 0.034

which writes the same ``thresh`` entry into the run's ``summary.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bregman import metrics
from bregman.train.evaluate import evaluate
from bregman.train.prune import apply_masks_, masks_from_weights

__all__ = ["threshold_", "thresholded_state", "evaluate_thresholded", "threshold_run", "summary_extra"]


def threshold_(model: nn.Module, density: float, *, structured: bool = False) -> float | dict[str, float]:
    """Threshold ``model`` in place to ``density``; returns the threshold."""
    masks, thr = masks_from_weights(list(metrics.weights(model)), density, structured=structured)
    apply_masks_(model, masks)
    return thr


def thresholded_state(model: nn.Module, state: Mapping[str, Tensor], density: float, *,
                      structured: bool = False) -> tuple[dict[str, Tensor], float | dict[str, float]]:
    """A thresholded copy of ``state`` (a state dict of ``model``'s architecture; which entries
    are conv / linear weights is read off ``model``) and the threshold. ``state`` is not changed."""
    ws = [(name, kind, state[name]) for name, kind, _ in metrics.weights(model)]
    masks, thr = masks_from_weights(ws, density, structured=structured)
    out = {k: v.clone() for k, v in state.items()}
    for name, mask in masks.items():
        out[name].mul_(mask)
    return out, thr


def evaluate_thresholded(model: nn.Module, forward: nn.Module, loaders: Mapping[str, Any], task, cfg,
                         device: torch.device, density: float, *, structured: bool = False) -> dict[str, Any]:
    """Threshold ``model`` in place and evaluate it on ``loaders`` (``{"test": ..., "val": ...,
    "train": ...}``, unaugmented); returns the ``thresh`` entry of a summary."""
    thr = threshold_(model, density, structured=structured)
    sp = metrics.sparsity_report(model)
    out: dict[str, Any] = {"target": density, "structured": structured, "threshold": thr,
                           **{k: sp[k] for k in ("N_total", "N_linear", "N_conv", "l1_norm")}}
    s = task.score_name
    for split, loader in loaders.items():
        r = evaluate(forward, model, loader, task, cfg, device)
        out[f"{split}_{s}"] = r["score"]
        if split == "test":
            out["test_loss"] = r["loss"]
    return out


def summary_extra(thresh: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a ``thresh`` entry as ``thresh_<key>``: the flat ``extra`` of summary.json
    that :mod:`bregman.report` prints as columns."""
    return {f"thresh_{k}": v for k, v in thresh.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def threshold_run(run_dir: str | Path, density: float, *, structured: bool | None = None,
                  data_root: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Threshold the best model of the finished run in ``run_dir`` to ``density``, evaluate it and
    write the result into its ``summary.json`` (``thresh`` and ``extra.thresh_*``; an earlier
    ``thresh`` is replaced). ``structured`` defaults to the run's ``threshold_structured``;
    ``data_root`` overrides the run's (the data must be where this machine can read it). The run
    directory is locked meanwhile (:class:`~bregman.train.rundir.RunLock`): a run still training
    there is not touched.

    Raises:
        FileNotFoundError: no checkpoint.pt / summary.json in ``run_dir``.
        ValueError: ``density`` outside (0, 1], or the checkpoint has no best model.
        bregman.train.rundir.RunDirBusy: another process holds ``run_dir``.
    """
    from bregman.train.rundir import RunLock

    if not 0.0 < density <= 1.0:
        raise ValueError(f"Invalid density: {density!r} (must be in (0, 1])")
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        raise FileNotFoundError(f"no summary.json in {run_dir}: is it a finished run?")
    with RunLock(run_dir, flag="run directory", purpose="threshold"):
        return _threshold_locked(run_dir, density, structured, data_root, device)


def _threshold_locked(run_dir: Path, density: float, structured: bool | None, data_root: str | None,
                      device: str) -> dict[str, Any]:
    import dataclasses

    from bregman._atomic import read_json_object, write_text_atomic
    from bregman.train import distributed as dist_util
    from bregman.train.checkpoint import load_checkpoint
    from bregman.train.config import config_from_dict
    from bregman.train.build import build_loaders, build_model, clean_train_loader, resolve_device
    from bregman.train.tasks import task_for

    summary_path = run_dir / "summary.json"
    summary = read_json_object(summary_path)
    if not summary.get("finished"):
        raise ValueError(f"{run_dir} has not finished training: finish it first "
                         f"`bregman train {run_dir / 'config.toml'} --out {run_dir} --resume`")
    dev = resolve_device(device)
    ck = load_checkpoint(run_dir / "checkpoint.pt", map_location=dev, keys=("config", "best"))
    if not isinstance(ck["best"], dict) or ck["best"].get("state") is None:
        raise ValueError(f"{run_dir}/checkpoint.pt holds no best model (no epoch was eligible)")
    cfg = config_from_dict(ck["config"])
    cfg = dataclasses.replace(cfg, device=device, **({"data_root": data_root} if data_root else {}))
    structured = cfg.threshold_structured if structured is None else structured
    model = build_model(cfg, dev)
    model.load_state_dict(ck["best"]["state"])
    train_loader, val, test = build_loaders(cfg, dev, dist_util.DistInfo())
    train = clean_train_loader(train_loader, cfg.eval_batch_size, dev)
    thresh = evaluate_thresholded(model, model, {"test": test, "val": val, "train": train},
                                  task_for(cfg.dataset), cfg, dev, density, structured=structured)
    summary["thresh"] = thresh
    summary["extra"] = {**{k: v for k, v in (summary.get("extra") or {}).items() if not k.startswith("thresh_")},
                        **summary_extra(thresh)}
    write_text_atomic(summary_path, json.dumps(summary, indent=2) + "\n")
    return thresh


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bregman.train.threshold",
                                description="Threshold a finished run's best model; results go into its summary.json.")
    p.add_argument("run_dir", nargs="+", help="run directories (each with checkpoint.pt and summary.json)")
    p.add_argument("--density", type=float, required=True, help="target fraction of non-zero weights, e.g. 0.034")
    p.add_argument("--structured", action=argparse.BooleanOptionalAction, default=None,
                   help="keep whole conv kernels (default: the run's threshold_structured)")
    p.add_argument("--data-root", help="data root (default: the run's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:k]")
    args = p.parse_args(argv)
    for d in args.run_dir:
        t = threshold_run(d, args.density, structured=args.structured, data_root=args.data_root, device=args.device)
        nums = ", ".join(f"{k}={v:.4g}" for k, v in t.items() if isinstance(v, float))
        print(f"{d}: {nums}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
