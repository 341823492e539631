"""Run every (row × seed) of a sweep file: finished runs are skipped, interrupted ones resumed.

Layout: ``OUT/<slug(label)>/seed<k>/`` holds one run directory per row and seed, so a sweep can be
finished over several sessions by re-running the same command. Each run is a ``bregman train
--resume`` in its own process; one that fails (exit status ≠ 0) is reported in the result, and the
CLI exits non-zero listing the failed runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from bregman._atomic import read_json_object, write_text_atomic
from bregman.train.config import Sweep, apply_overrides, save_config, slug

__all__ = ["plan", "run_sweep", "is_finished", "SweepResult"]


class SweepResult(NamedTuple):
    """One run of a sweep: its row, seed, directory and the exit status of its ``bregman train``
    (0 also for a run found finished)."""

    label: str
    seed: int
    run_dir: Path
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def is_finished(run_dir: Path) -> bool:
    try:
        return bool(read_json_object(run_dir / "summary.json").get("finished"))
    except (OSError, ValueError):
        return False


def plan(sweep: Sweep, out: Path, seeds=None, only=None, overrides=()):
    """[(label, seed, cfg, run_dir, paper)] for the selected rows and seeds."""
    rows = {r.label: r for r in sweep.runs}
    if only:
        unknown = [o for o in only if o not in rows and o not in {slug(lbl) for lbl in rows}]
        if unknown:
            raise ValueError(f"--only {unknown}: no such row; rows are {list(rows)}")
    jobs = []
    for label, seed, cfg in sweep.expand():
        if only and label not in only and slug(label) not in only:
            continue
        if seeds is not None and seed not in seeds:
            continue
        cfg = apply_overrides(cfg, list(overrides)) if overrides else cfg
        jobs.append((label, seed, cfg, out / slug(label) / f"seed{seed}", rows[label].paper))
    if seeds is not None:  # seeds asked for beyond the file's list
        known = {s for _, s, *_ in jobs}
        for extra in sorted(set(seeds) - known):
            for label, row in rows.items():
                if only and label not in only and slug(label) not in only:
                    continue
                base = next(c for lbl, _, c in sweep.expand() if lbl == label)
                cfg = dataclasses.replace(base, seed=extra)
                cfg = apply_overrides(cfg, list(overrides)) if overrides else cfg
                jobs.append((label, extra, cfg, out / slug(label) / f"seed{extra}", row.paper))
    return jobs


def _command(label: str, cfg_path: Path, run_dir: Path, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "bregman.cli", "train", str(cfg_path), "--out", str(run_dir), "--resume",
           "--label", label, "--set", "progress=off"]
    if threads:
        cmd += ["--set", f"threads={threads}"]
    return cmd


def run_sweep(sweep: Sweep, out: Path, *, seeds=None, jobs: int = 1, only=None, overrides=(),
              threads: int | None = None) -> list[SweepResult]:
    """Run the sweep's pending runs, ``jobs`` at a time (each in its own process, with
    ``threads``, default ``cpu_count // jobs``); returns one :class:`SweepResult` per run, failed
    ones included. Logs go to ``run_dir/train.log``.

    Raises:
        ValueError: ``jobs`` or ``threads`` below 1.
    """
    if jobs < 1 or (threads is not None and threads < 1):
        raise ValueError(f"jobs ({jobs}) and threads ({threads}) must be ≥ 1")
    todo = plan(sweep, Path(out), seeds, only, overrides)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)

    def launch(item) -> SweepResult:
        label, seed, cfg, run_dir, paper = item
        if is_finished(run_dir):
            print(f"[done] {label} seed {seed}", flush=True)
            return SweepResult(label, seed, run_dir, 0)
        cfg_path = save_config(cfg, run_dir / "requested.toml")
        if paper:
            write_text_atomic(run_dir / "paper.json", json.dumps(paper))
        print(f"[run ] {label} seed {seed} → {run_dir}", flush=True)
        with open(run_dir / "train.log", "a") as log:
            rc = subprocess.call(_command(label, cfg_path, run_dir, threads), stdout=log, stderr=subprocess.STDOUT)
        print(f"[{'ok' if rc == 0 else 'FAIL'}  ] {label} seed {seed}" + ("" if rc == 0 else f" (see {run_dir}/train.log)"),
              flush=True)
        return SweepResult(label, seed, run_dir, rc)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(launch, todo))
