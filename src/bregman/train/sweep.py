"""Sweeps: the file format and the runner that runs every (row × seed): finished runs are skipped,
interrupted ones resumed.

A sweep (``src/bregman/configs/sweeps/<name>.toml``) is a base preset, a list of seeds and a list of
``[[run]]`` tables, each a ``label`` plus override keys; an optional ``[common]`` table holds
overrides shared by every run::

    description = "Figure 2"
    base = "mnist-mlp"
    seeds = [0, 1, 2]

    [common]
    epochs = 100

    [[run]]
    label = "LinBreg λ=1e-1"
    lam = 0.1

Layout: ``OUT/<slug(label)>/seed<k>/`` holds one run directory per row and seed, so a sweep can be
finished over several sessions by re-running the same command. Each run is a ``bregman train
--resume`` in its own process; one that fails (exit status ≠ 0) is reported in the result, and the
CLI exits non-zero listing the failed runs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bregman._atomic import read_json_object, write_text_atomic
from bregman.train.config import Config, ConfigError, apply_overrides, build_config, load_config, save_config
from bregman.train.toml_files import configs_dir, is_toml_path, list_toml, read_toml
from bregman.train.validate import did_you_mean

__all__ = ["Sweep", "SweepRun", "load_sweep", "list_sweeps", "slug", "plan", "run_sweep", "is_finished",
           "SweepResult"]


class SweepRun(NamedTuple):
    """One row of a sweep: a display label, its overrides (typed values, ``[common]`` merged) and
    optionally the paper's numbers for this row (``paper = {N_total = 11.0, val_acc = 97.5}``, in
    percent), which reports print beside ours."""

    label: str
    overrides: dict[str, Any]
    paper: dict[str, float] = {}


@dataclass(frozen=True)
class Sweep:
    """A base preset, seeds and labelled runs; see the module docstring for the file format."""

    name: str  # sweep name (file stem)
    base: str  # preset name or path of the base config
    seeds: tuple[int, ...]  # every run is repeated for each seed
    runs: tuple[SweepRun, ...]  # in file order
    description: str = ""  # free text from the file

    def base_config(self) -> Config:
        return load_config(self.base)

    def expand(self) -> list[tuple[str, int, Config]]:
        """``(label, seed, config)`` for every run × seed, in run-major order. Each config is the
        base with the run's overrides, ``seed`` set, and ``name = "<sweep>-<slug(label)>"`` unless
        the run sets ``name`` itself."""
        base = self.base_config()
        out = []
        for run in self.runs:
            cfg = apply_overrides(base, run.overrides)
            if "name" not in run.overrides:
                cfg = dataclasses.replace(cfg, name=f"{self.name}-{slug(run.label)}")
            out += [(run.label, seed, dataclasses.replace(cfg, seed=seed)) for seed in self.seeds]
        return out


def slug(label: str) -> str:
    """A file-name-safe form of a run label: ``"LinBreg λ=1e-1 + thresh."`` →
    ``"linbreg-lam1e-1-plus-thresh"``."""
    s = label.lower().replace("λ", "lam").replace("β", "beta").replace("δ", "delta")
    s = re.sub(r"[^a-z0-9.-]+", "-", s.replace("=", "").replace("+", " plus "))
    return re.sub(r"-+", "-", s).strip("-.") or "run"


_SWEEP_KEYS = ("description", "base", "seeds", "common", "run")


def load_sweep(name_or_path: str | Path) -> Sweep:
    """Load a sweep by name (``src/bregman/configs/sweeps/<name>.toml``) or by path, and check every
    run by building its config (so an unknown key or bad value fails here, naming the run).

    Raises:
        ConfigError: as ``load_config``, plus missing/duplicate labels, bad seeds, a run setting
            ``seed`` (seeds belong to the sweep).
    """
    table, where, file = read_toml(name_or_path, "sweep")
    for key in table:
        if key not in _SWEEP_KEYS:
            hint = did_you_mean(key, _SWEEP_KEYS)
            extra = f"; {hint}" if hint else f" (valid: {', '.join(_SWEEP_KEYS)})"
            raise ConfigError(f"unknown sweep key {key!r} in {where}{extra}")
    base = table.get("base")
    if not isinstance(base, str):
        raise ConfigError(f"{where}: 'base' must be a preset name or path, got {base!r}")
    if file is not None and is_toml_path(base) and not Path(base).is_absolute():
        base = str(file.parent / base)  # relative to the sweep file
    base_cfg = load_config(base)
    seeds = table.get("seeds", [base_cfg.seed])
    if not (
        isinstance(seeds, list)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"{where}: 'seeds' must be a non-empty list of ints, got {seeds!r}")
    common = table.get("common", {})
    if not isinstance(common, dict):
        raise ConfigError(f"{where}: [common] must be a table, got {common!r}")
    rows = table.get("run", [])
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{where}: a sweep needs at least one [[run]] table")
    runs: list[SweepRun] = []
    slugs: dict[str, str] = {}
    for i, row in enumerate(rows):
        overrides = dict(row)
        label = overrides.pop("label", None)
        paper = overrides.pop("paper", {})
        if not isinstance(paper, dict) or not all(isinstance(v, (int, float)) for v in paper.values()):
            raise ConfigError(f"{where}: run {label!r}: 'paper' must be a table of numbers, got {paper!r}")
        if not isinstance(label, str) or not label:
            raise ConfigError(f"{where}: [[run]] number {i + 1} needs a non-empty string 'label'")
        if slug(label) in slugs:
            other = slugs[slug(label)]
            raise ConfigError(f"{where}: run labels {other!r} and {label!r} name the same run")
        slugs[slug(label)] = label
        merged = {**common, **overrides}
        if "seed" in merged:
            raise ConfigError(f"{where}: run {label!r} sets 'seed'; list seeds in 'seeds' instead")
        build_config(base_cfg, merged, f" in {where}, run {label!r}")
        runs.append(SweepRun(label, merged, dict(paper)))
    return Sweep(
        name=Path(where).stem,
        base=base,
        seeds=tuple(seeds),
        runs=tuple(runs),
        description=str(table.get("description", "")),
    )


def list_sweeps() -> list[str]:
    """Names of the shipped sweeps (``load_sweep`` accepts each)."""
    return list_toml(configs_dir().joinpath("sweeps"))


# ------------------------------------------------------------------------------------------ running


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
