"""The training loop of the paper's experiments (PAPER.md §4.0), resumable and data parallel.

``train(cfg, run_dir)`` builds data, model (sparse init, Sec. 4.1), param groups and optimizer
from a :class:`~bregman.train.config.Config`, trains, and writes into ``run_dir``:

* ``config.toml``: the resolved config;
* ``metrics.jsonl``: one JSON object per epoch (losses, scores, N_total, N_linear, N_conv,
  active neurons, ℓ1 norm, learning rate, seconds, skipped non-finite steps), appended line by
  line and fsynced;
* ``checkpoint.pt``: everything needed to resume, written atomically every ``checkpoint_every``
  epochs and after the last;
* ``summary.json``: best epoch (by validation score), test score of the best model, densities at
  the best epoch, wall time, git revision.

The run directory has one owner (:class:`bregman.train.rundir.RunLock`, taken before anything is
read or written); a directory that already holds a run's files needs ``resume`` or ``overwrite``.
Every file is written atomically (:mod:`bregman._atomic`).

Non-finite numbers: after each backward pass one reduction checks the loss and every gradient
(the L2 norm of the gradients' norms plus the loss; one host sync per step, as
``torch.amp.GradScaler``'s). A non-finite value stops the run at that step, naming the
epoch, the step and the parameter (``nonfinite="stop"``, the last checkpoint is intact), or skips
that step's update (``nonfinite="skip"``; the epoch's ``nonfinite_steps`` counts them). Losses and
scores accumulate on the device and are read once per epoch (and every few batches for the
progress bar, only when it is shown).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bregman import metrics
from bregman._atomic import append_line, read_json_object, write_text_atomic
from bregman._extras import require
from bregman.train import distributed as dist_util
from bregman.train import speed
from bregman.train.build import (TrainingError, build_controller, build_loaders, build_model, build_optimizer,
                                 build_scheduler, clean_train_loader, regularizer_groups, resolve_device)
from bregman.train.checkpoint import RESUME_KEYS, load_checkpoint, load_snapshot, save_atomic
from bregman.train.config import RUNTIME, Config, config_from_dict, config_to_dict, save_config
from bregman.train.evaluate import autocast, evaluate
from bregman.train.prune import Pruner
from bregman.train.rundir import RunLock, artefacts, remove_artefacts
from bregman.train.tasks import Task, task_for
from bregman.train.threshold import evaluate_thresholded, summary_extra

__all__ = ["train", "train_epoch", "finish", "TrainingError", "NonFiniteError"]

#: Config fields that may differ between a run and its resumption: the runtime settings, how long it
#: trains, and the thresholding applied after training.
RESUMABLE_CHANGES = RUNTIME | {"epochs", "threshold_target", "threshold_structured"}


class NonFiniteError(TrainingError):
    """A non-finite loss or gradient at one step (``nonfinite="stop"``); the message names it."""


# ----------------------------------------------------------------------------------- one epoch
def _penalty(groups: list[dict[str, Any]]) -> torch.Tensor | float:
    """Σ_groups J(θ) with its gradient (the Lasso baselines train on L + J)."""
    return sum(g["reg"].value(p) for g in groups for p in g["params"])


def _maybe_nonfinite(objective: torch.Tensor | None, grads: list[torch.Tensor]) -> bool:
    """False when ``objective`` (unless ``None``) and every entry of ``grads`` are surely finite.

    ``Σᵢ ‖gᵢ‖₂ + objective`` is NaN or ±inf whenever one entry is (plain L2 norms are the fastest
    reduction on CPU, where isfinite and max-abs are not vectorized); one host sync per step. The
    norms come from one ``torch._foreach_norm`` call, the one ``torch.nn.utils.get_total_norm``
    makes, without that function's Python around it (about 60 µs per step of the MNIST MLP, 4 % of
    its epoch). It also overflows for finite gradients beyond ~1e19, so True only means "look
    closer" (:func:`_nonfinite_what`)."""
    total = torch.stack(torch._foreach_norm(grads)).sum() if grads else torch.zeros(())
    if objective is not None:
        total = total + objective.detach()
    return not math.isfinite(total.item())


def _nonfinite_what(objective: torch.Tensor | None, params: list[torch.Tensor], names: dict[int, str]) -> str | None:
    """Which number is not finite: the loss, else the first parameter with a non-finite gradient
    (how many entries, and one of their values); ``None`` when all are finite after all. Runs
    only after :func:`_maybe_nonfinite`."""
    if objective is not None and not torch.isfinite(objective.detach()).all():
        return f"training loss ({objective.item()})"
    for p in params:
        if p.grad is not None and not torch.isfinite(p.grad).all():
            bad = p.grad[~torch.isfinite(p.grad)]
            return (f"gradient of {names.get(id(p), 'a parameter')} ({bad.numel()} of {p.grad.numel()} "
                    f"entries non-finite, e.g. {bad[0].item()})")
    return None


def train_epoch(model: nn.Module, forward: nn.Module, opt, loader, task: Task, cfg: Config,
                groups: list[dict[str, Any]], info: dist_util.DistInfo, device: torch.device,
                bar=None, *, epoch: int = 1) -> dict[str, float]:
    """One pass over ``loader``; returns the mean training loss and score of the steps taken and
    ``nonfinite_steps``, the number skipped (``cfg.nonfinite == "skip"``).

    Raises:
        NonFiniteError: a non-finite loss or gradient with ``cfg.nonfinite == "stop"`` (before the
            optimizer step: the parameters are those after the previous step), or every step of
            the epoch was skipped.
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    score_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = skipped = 0
    params = [p for g in groups for p in g["params"]]
    names = {id(p): n for n, p in model.named_parameters()}
    for k, (x, y) in enumerate(loader):
        if info.enabled:  # the global batch size, summed over the ranks while the forward pass runs
            global_count, counting = dist_util.global_count(len(x), device)
        with autocast(cfg, device):
            out = forward(x)
            loss = task.loss(out, y)
        objective = loss + _penalty(groups) if cfg.penalty == "loss" else loss
        if info.enabled:  # local sum / global batch size; DDP sums the gradients over the ranks
            counting.wait()
            objective = objective * (len(x) / global_count)
        for p in params:  # zero_grad(set_to_none=True) without its per-call profiler record
            p.grad = None
        objective.backward()
        # Data parallel: the all-reduced gradients are the same on every rank, the local loss is
        # not; checking only the gradients keeps every rank's decision the same.
        checked = None if info.enabled else objective
        if (_maybe_nonfinite(checked, [p.grad for p in params if p.grad is not None])
                and (what := _nonfinite_what(checked, params, names)) is not None):
            if cfg.nonfinite == "stop":
                raise NonFiniteError(f"non-finite {what} at epoch {epoch}, step {k + 1} of {len(loader)}")
            skipped += 1
            if bar is not None:
                bar.update(1)
            continue
        opt.step()
        loss_sum += loss.detach() * len(x)
        if task.train_score:
            score_sum += task.score_sum(out.detach(), y)
        count += len(x)
        if bar is not None:
            bar.update(1)
            if k % 20 == 0:  # a host read, only when the bar is shown
                bar.set_postfix(loss=f"{loss_sum.item() / count:.4f}",
                                **{task.score_name: f"{score_sum.item() / count:.4f}"})
    if info.enabled:
        totals = dist_util.all_reduce_sum(torch.stack([loss_sum, score_sum,
                                                       torch.tensor(count, dtype=torch.float64, device=device)]))
        loss_sum, score_sum, count = totals[0], totals[1], totals[2].item()
    if not count:
        raise NonFiniteError(f"every one of the {skipped} steps of epoch {epoch} had a non-finite loss or "
                             f"gradient (nonfinite=skip skipped them all)")
    return {"loss": loss_sum.item() / count, "score": score_sum.item() / count if task.train_score else None,
            "nonfinite_steps": skipped}


# ---------------------------------------------------------------------------------- bookkeeping
def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        rev = out.stdout.strip()
        if rev:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
            return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


_FRESH = "pass --overwrite to start it afresh (its files are replaced), or choose another --out"


def _check_resumable(saved: Config, cfg: Config, path: Path, done: int) -> None:
    a, b = config_to_dict(saved), config_to_dict(cfg)
    if a["name"] != b["name"]:
        raise TrainingError(f"cannot resume {path}: it is a run of experiment {a['name']!r}, not {b['name']!r}; "
                            f"choose another --out, or pass --overwrite to replace it")
    diff = sorted(k for k in a if a[k] != b.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        details = ", ".join(f"{k}: {a[k]!r} → {b.get(k)!r}" for k in diff)
        raise TrainingError(f"cannot resume {path}: the config differs in {details}; "
                            f"use the same settings (only {sorted(RESUMABLE_CHANGES)} may change), "
                            f"or {_FRESH}")
    if done > cfg.epochs:
        raise TrainingError(f"cannot resume {path}: it has {done} epochs done, more than epochs={cfg.epochs}; "
                            f"set epochs ≥ {done} to continue it (--set epochs=...), or {_FRESH}")


def _checkpoint_to_resume(run_dir: Path, cfg: Config, device: torch.device, *, resume: bool,
                          overwrite: bool) -> dict[str, Any] | None:
    """The checkpoint to continue from, or ``None`` to start afresh. A directory that holds a
    run's files is refused unless ``overwrite``, or ``resume`` with a checkpoint of this config."""
    found = artefacts(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if overwrite or not found:
        return None
    files = ", ".join(found)
    if not ckpt.exists():
        raise TrainingError(f"{run_dir} already holds a run ({files}) without a checkpoint.pt to resume from "
                            f"(checkpoint_every=0 saves one only after the last epoch); {_FRESH}")
    if not resume:
        raise TrainingError(f"{run_dir} already holds a run ({files}); pass --resume to continue it from its "
                            f"checkpoint, --overwrite to replace it, or choose another --out")
    ck = load_checkpoint(ckpt, device, keys=RESUME_KEYS, fix=_FRESH)
    _check_resumable(config_from_dict(ck["config"]), cfg, ckpt, len(ck["history"]))
    return ck


def _finished_summary(run_dir: Path, ck: dict[str, Any] | None, cfg: Config) -> dict[str, Any] | None:
    """The summary of a run that has already trained ``cfg.epochs`` epochs and been tested: resuming
    it changes nothing (and keeps what ``bregman threshold`` added)."""
    path = run_dir / "summary.json"
    if ck is None or len(ck["history"]) != cfg.epochs or not path.is_file():
        return None
    summary = read_json_object(path)
    return summary if summary.get("finished") else None


def _warn_stale_thresh(run_dir: Path, cfg: Config) -> None:
    path = run_dir / "summary.json"
    if cfg.threshold_target is None and path.is_file() and "thresh" in read_json_object(path):
        warnings.warn(f"{path}: its thresh entry (of `bregman threshold`) belongs to the earlier best model and is "
                      f"dropped; run `bregman threshold {run_dir} --density D` again when training has finished",
                      stacklevel=3)


def _saved_state(run_dir: Path, saved_epoch: int | None, cfg: Config) -> str:
    if saved_epoch:
        return f"the checkpoint of epoch {saved_epoch} in {run_dir} is intact"
    return f"no checkpoint was saved yet (checkpoint_every={cfg.checkpoint_every})"


def _nonfinite_error(what: str, run_dir: Path, saved_epoch: int | None, cfg: Config, lr: float) -> TrainingError:
    """``what`` and the ways on: lower the learning rate, or skip such steps."""
    cause = f"the learning rate {lr:g} is likely too large: lower it (--set lr=...)"
    if cfg.nonfinite == "skip":  # skipping did not help
        way = f"{cause} and start afresh with --overwrite"
    elif saved_epoch:
        way = (f"{cause} and start afresh with --overwrite, or skip such steps from the checkpoint on: "
               f"--resume --set nonfinite=skip")
    else:
        way = f"{cause}, or skip such steps (--set nonfinite=skip), and start afresh with --overwrite"
    return TrainingError(f"{what}; {_saved_state(run_dir, saved_epoch, cfg)}. The run stopped: {way}")


class _Table:
    """The per-epoch table printed when the progress bar is off."""

    COLS = ("epoch", "train loss", "train {s}", "val {s}", "N_total %", "N_conv %", "lr", "s")

    def __init__(self, score: str, out=None):  # sys.stdout looked up now, not when the module loaded
        self.out, self.score = out if out is not None else sys.stdout, score

    def header(self) -> None:
        print("  ".join(f"{c.format(s=self.score):>10}" for c in self.COLS), file=self.out, flush=True)

    def row(self, m: dict[str, Any]) -> None:
        s = self.score

        def pct(v):
            return "–" if v is None else f"{100 * v:.2f}"

        train_score = m[f"train_{s}"]
        vals = (m["epoch"], f"{m['train_loss']:.4f}", "–" if train_score is None else f"{train_score:.4f}",
                f"{m[f'val_{s}']:.4f}",
                pct(m["N_total"]), pct(m["N_conv"]), f"{m['lr']:.3g}", f"{m['seconds']:.1f}")
        print("  ".join(f"{v:>10}" for v in vals), file=self.out, flush=True)


def _progress_on(cfg: Config, info: dist_util.DistInfo) -> bool:
    """Whether to show the progress bar; ``progress="on"`` without tqdm is an error, ``"auto"``
    falls back to the table."""
    if not info.is_main or cfg.progress == "off" or (cfg.progress == "auto" and not sys.stderr.isatty()):
        return False
    if cfg.progress == "on":
        require("tqdm", "progress=on", instead="or --set progress=off")
        return True
    try:
        require("tqdm", "progress=auto")
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------- the run
def train(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
          label: str | None = None, command: str = "", extra_summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; returns the summary.

    ``run_dir`` is locked for this process first (:class:`~bregman.train.rundir.RunLock`). If it
    already holds a run's files, ``resume`` continues that run from its checkpoint (a finished run is
    left as it is) and ``overwrite`` replaces them (once the data has loaded); without either that
    is an error, as is resuming a run of another config.

    Raises:
        TrainingError: the directory holds another run, the checkpoint does not fit, or a
            non-finite loss or gradient (``nonfinite="stop"``); the message says how to go on.
        bregman.train.rundir.RunDirBusy: another process holds ``run_dir``.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise TrainingError("--resume continues a run and --overwrite replaces it: pass only one of them")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    info = dist_util.setup(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    show_bar = _progress_on(cfg, info)
    with RunLock(run_dir) if info.is_main else nullcontext():
        ck = _checkpoint_to_resume(run_dir, cfg, device, resume=resume, overwrite=overwrite)
        summary = _finished_summary(run_dir, ck, cfg)
        if summary is not None:
            if info.is_main:
                print(f"{run_dir} has finished ({cfg.epochs} epochs); nothing to do "
                      f"(--resume --set epochs=N trains it further)", file=sys.stderr)
        else:
            summary = _run(cfg, run_dir, ck, device, info, show_bar, overwrite=overwrite, label=label,
                           command=command, extra_summary=extra_summary)
    dist_util.teardown()
    return summary


def _run(cfg: Config, run_dir: Path, ck: dict[str, Any] | None, device: torch.device, info: dist_util.DistInfo,
         show_bar: bool, *, overwrite: bool, label: str | None, command: str,
         extra_summary: dict[str, Any] | None) -> dict[str, Any]:
    task = task_for(cfg.dataset)
    ckpt_path = run_dir / "checkpoint.pt"
    train_loader, val_loader, test_loader = build_loaders(cfg, device, info)
    model = build_model(cfg, device)
    groups = regularizer_groups(cfg, model)
    opt = build_optimizer(cfg, groups)
    sched = build_scheduler(cfg, opt)
    forward = _maybe_compile(model, cfg)
    # Data parallel: training steps go through DistributedDataParallel; evaluation (every rank sees
    # the whole split) through the model itself
    train_forward = _maybe_compile(dist_util.data_parallel(model, info, device), cfg) if info.enabled else forward
    pruner = None
    if cfg.prune_target is not None:  # masks enforced around every opt.step() by hooks
        pruner = Pruner(model, cfg.prune_target, cfg.prune_steps, cfg.epochs, structured=cfg.prune_structured)
        pruner.attach(opt)
    controller = build_controller(cfg, opt, len(train_loader))
    # Fig. 1: the first conv layer's weight at epochs 0, 5, 20 and the last, {epoch: {name: tensor}}
    snap_name = next((name for name, _, _ in metrics.weights(model, "conv")), None)
    snap_path = run_dir / "kernels.pt"
    snaps: dict[int, dict[str, torch.Tensor]] = {}

    def snapshot(epoch: int) -> None:
        if snap_name is not None and info.is_main and epoch in (0, 5, 20, cfg.epochs):
            snaps[epoch] = {snap_name: dict(model.named_parameters())[snap_name].detach().cpu().clone()}
            save_atomic(snaps, snap_path)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "score": -math.inf, "state": None, "metrics": None}
    wall = 0.0
    saved_epoch = None  # the epoch of the checkpoint on disk
    if overwrite and info.is_main:  # only now: a config or data error above leaves the old run as it was
        remove_artefacts(run_dir)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck["scheduler"] is not None:
            sched.load_state_dict(ck["scheduler"])
        train_loader.load_state_dict(ck["loader"])
        torch.set_rng_state(ck["rng"])
        history, best, wall = ck["history"], ck["best"], ck["wall_time"]
        saved_epoch = len(history)
        if pruner is not None and ck.get("pruner") is not None:
            pruner.load_state_dict(ck["pruner"])
        if controller is not None and ck.get("controller") is not None:
            controller.load_state_dict(ck["controller"])
        if snap_name is not None and snap_path.exists():
            saved = load_snapshot(snap_path, fix="delete it (the kernel snapshots of Fig. 1; later ones are saved "
                                                 "again) and resume")
            if not isinstance(saved, dict):
                raise TrainingError(f"{snap_path} holds a {type(saved).__name__}, not kernel snapshots: delete it "
                                    f"(later snapshots are saved again) and resume")
            snaps.update(saved)
        if info.is_main:
            _warn_stale_thresh(run_dir, cfg)

    if info.is_main:
        save_config(cfg, run_dir / "config.toml")
        if ck is not None:  # epochs logged after the checkpoint (and a torn last line) are trained again
            write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
    rev = git_revision()
    meta = {"name": cfg.name, "task": task.name, "label": label or cfg.name, "seed": cfg.seed,
            "optimizer": cfg.optimizer, "epochs": cfg.epochs, "git_rev": rev, "command": command,
            **(extra_summary or {})}
    if cfg.target_density is not None:  # bregman report prints it beside the density reached
        meta.update(target_density=cfg.target_density, target_measure=cfg.target_measure)

    table = _Table(task.score_name)
    if info.is_main and not show_bar:
        table.header()
        for m in history:
            table.row(m)
    if not history:
        snapshot(0)
        if pruner is not None:
            pruner.update(0)
    try:
        for epoch in range(len(history) + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            density = history[-1]["N_total"] if history else None
            bar = _make_bar(len(train_loader), epoch, cfg.epochs, density) if show_bar else None
            try:
                tr = train_epoch(model, train_forward, opt, train_loader, task, cfg, groups, info, device, bar,
                                 epoch=epoch)
            except NonFiniteError as e:
                raise _nonfinite_error(str(e), run_dir, saved_epoch, cfg, opt.param_groups[0]["lr"]) from None
            finally:
                if bar is not None:
                    bar.close()
            if not math.isfinite(tr["loss"]):  # data parallel: the per-step check looks at gradients only
                raise _nonfinite_error(f"non-finite training loss ({tr['loss']}) in epoch {epoch}", run_dir,
                                       saved_epoch, cfg, opt.param_groups[0]["lr"])
            if tr["nonfinite_steps"] and info.is_main:
                print(f"epoch {epoch}: skipped {tr['nonfinite_steps']} steps with a non-finite loss or gradient "
                      f"(nonfinite=skip)", file=sys.stderr, flush=True)
            if pruner is not None:
                pruner.update(epoch)
            if controller is not None and cfg.target_every == "epoch":
                controller.step()
            va = evaluate(forward, model, val_loader, task, cfg, device)
            sparsity = metrics.sparsity_report(model)
            lr = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step(tr["loss"] if cfg.plateau_metric == "train_loss" else va["score"])
            seconds = time.perf_counter() - t0
            wall += seconds
            s = task.score_name
            row = {"epoch": epoch, "train_loss": tr["loss"], f"train_{s}": tr["score"], "val_loss": va["loss"],
                   f"val_{s}": va["score"], **{k: sparsity[k] for k in ("N_total", "N_linear", "N_conv",
                                                                        "active_neurons", "l1_norm")},
                   "lr": lr, "seconds": seconds, "nonfinite_steps": tr["nonfinite_steps"]}
            if controller is not None:  # the scheduled target now and the λ that holds the density there
                row.update(target_density=controller.target_at(controller.steps), lam=controller.lams(),
                           density_before_control=controller.density_before)
            history.append(row)
            # ties → the later epoch, as the authors' code; a pruned run (a target ramp) competes only at
            # its target
            done = (pruner is None or pruner.done) and (controller is None or controller.done)
            if done and va["score"] >= best["score"]:
                best = {"epoch": epoch, "score": va["score"], "metrics": row,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            if info.is_main:
                if not show_bar:
                    table.row(row)
                append_line(run_dir / "metrics.jsonl", json.dumps(row))
                last = epoch == cfg.epochs
                if last or (cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0):
                    save_atomic({"config": config_to_dict(cfg), "model": model.state_dict(),
                                 "optimizer": opt.state_dict(),
                                 "scheduler": sched.state_dict() if sched is not None else None,
                                 "loader": train_loader.state_dict(), "rng": torch.get_rng_state(),
                                 "history": history, "best": best, "wall_time": wall,
                                 "pruner": pruner.state_dict() if pruner is not None else None,
                                 "controller": controller.state_dict() if controller is not None else None},
                                ckpt_path)
                    saved_epoch = epoch
                _write_summary(run_dir, meta, history, best, wall, task, finished=False)
                snapshot(epoch)
    except KeyboardInterrupt:
        if info.is_main:
            way = "continue with --resume" if saved_epoch else "start afresh with --overwrite"
            print(f"\ninterrupted; {_saved_state(run_dir, saved_epoch, cfg)}: {way}", file=sys.stderr)
        raise

    summary = finish(model, forward, best, test_loader, task, cfg, device, val_loader=val_loader,
                     train_loader=train_loader)
    if info.is_main:
        summary = _write_summary(run_dir, meta, history, best, wall, task, finished=True, test=summary)
    return summary


def finish(model, forward, best, test_loader, task, cfg, device, *, val_loader=None,
           train_loader=None) -> dict[str, Any]:
    """Evaluate the best-validation model on the test set (under eval mode and inference mode).

    With ``cfg.threshold_target`` the model is then thresholded in place and evaluated again on
    test, validation and (a clean, unaugmented pass over) the training split: ``thresh`` in the
    result (see :func:`bregman.train.threshold.evaluate_thresholded`)."""
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    te = evaluate(forward, model, test_loader, task, cfg, device)
    out: dict[str, Any] = {f"test_{task.score_name}": te["score"], "test_loss": te["loss"]}
    if cfg.threshold_target is not None:
        loaders = {"test": test_loader, "val": val_loader,
                   "train": None if train_loader is None else clean_train_loader(train_loader, cfg.eval_batch_size,
                                                                                 device)}
        out["thresh"] = evaluate_thresholded(model, forward, {k: v for k, v in loaders.items() if v is not None},
                                             task, cfg, device, cfg.threshold_target,
                                             structured=cfg.threshold_structured)
    return out


def _write_summary(run_dir: Path, meta: dict, history: list, best: dict, wall: float, task: Task, *,
                   finished: bool, test: dict | None = None) -> dict[str, Any]:
    s = task.score_name
    bm = best["metrics"] or {}
    keys = ("N_total", "N_linear", "N_conv", "l1_norm")
    summary = {
        **meta, "finished": finished, "epochs_done": len(history), "best_epoch": best["epoch"],
        f"best_val_{s}": bm.get(f"val_{s}"), f"train_{s}": bm.get(f"train_{s}"),
        **{k: bm.get(k) for k in keys}, **(test or {}),
        "final": {k: history[-1].get(k) for k in (f"train_{s}", f"val_{s}", *keys)} if history else {},
        "wall_time": wall,
    }
    if (test or {}).get("thresh") is not None:  # flat copies: the columns bregman.report prints
        summary["extra"] = {**summary.get("extra", {}), **summary_extra(test["thresh"])}
    write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _maybe_compile(model: nn.Module, cfg: Config) -> nn.Module:
    """``torch.compile(model)`` with ``cfg.compile``; eager where compiling fails (with a warning)."""
    if not cfg.compile:
        return model
    return speed.compile_or_eager(model)


def _make_bar(total: int, epoch: int, epochs: int, density: float | None):
    from tqdm import tqdm

    nz = "" if density is None else f" ({100 * density:.2f}% non-zero)"
    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}{nz}", leave=False, dynamic_ncols=True)
