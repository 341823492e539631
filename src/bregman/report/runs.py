r"""Run directories as the report reads them, and their aggregate over seeds.

A *run directory* holds ``metrics.jsonl`` (one JSON object per epoch) and, once training has got far
enough, ``summary.json`` (best-epoch and last-epoch numbers, the paper's numbers for the row, git
revision, command, the task). This module reads those files only; it imports neither torch nor the
training code.

Units: accuracies and densities (``N_total``, ``N_linear``, ``N_conv``) are fractions in the run
files (:func:`is_percent` says which keys), printed as percentages by :mod:`bregman.report.tables`
and :mod:`bregman.report.plots`.

The aggregate over seeds of a quantity x with values x_1..x_n is mean ± sample std
(``ddof = 1``); with one seed the std is undefined (``None`` in JSON, "–" in Markdown).
"""
from __future__ import annotations

import re
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bregman._atomic import read_json_object, read_jsonl

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Run", "Stat", "Row", "load_runs", "aggregate", "is_percent", "SCORES", "DENSITIES", "BEST_KEYS",
           "FINAL_KEYS"]

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.toml"  # the resolved config saved beside a run; read only when summary.json is missing

# A task logs one score: "acc" (classification, next-character; a fraction) or "ssim" (denoising), as
# val_<score> etc.; the task that logs each score, for runs whose summary does not name its task.
SCORES = {"acc": "classify", "ssim": "denoise"}
FRACTION_SCORES = ("acc",)
DENSITIES = ("N_total", "N_linear", "N_conv")
# Quantities taken at the best-validation epoch (the checkpoint that is tested).
BEST_KEYS = (*DENSITIES, *(f"{p}_{s}" for s in SCORES for p in ("val", "test", "train")), "test_loss")
# Quantities taken at the last epoch (the paper's Fig. 2/3 read their numbers off epoch 100).
FINAL_KEYS = (*DENSITIES, *(f"{p}_{s}" for s in SCORES for p in ("val", "train")), "l1_norm", "train_loss",
              "val_loss")


def is_percent(key: str) -> bool:
    """Whether ``key`` is a fraction in the run files, printed as a percentage: a density or a
    fractional score (``N_conv``, ``val_acc``), also as thresholded (``thresh_test_acc``)."""
    return key.removeprefix("thresh_") in _PERCENT


_PERCENT = frozenset({*DENSITIES, *(f"{p}_{s}" for s in FRACTION_SCORES for p in ("val", "test", "train"))})


@dataclass(frozen=True)
class Run:
    """One training run as found on disk: its per-epoch metrics and its summary (``None`` while
    training has not written one). ``config`` is the saved config, read only without a summary."""

    dir: Path
    metrics: tuple[dict[str, Any], ...]
    summary: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self._get("name") or self.dir.name)

    @property
    def label(self) -> str | None:
        """The row label, or ``None`` when neither summary nor config names one."""
        label = self._get("label")
        return str(label) if label else None

    @property
    def seed(self) -> int | None:
        return self._get("seed")

    @property
    def finished(self) -> bool:
        return bool(self.summary and self.summary.get("finished", False))

    @property
    def epochs(self) -> int | None:
        """Planned number of epochs."""
        return self._get("epochs")

    @property
    def epochs_done(self) -> int:
        done = (self.summary or {}).get("epochs_done")
        if done is not None:
            return int(done)
        return max((epoch_of(m, i) for i, m in enumerate(self.metrics)), default=0)

    @property
    def paper(self) -> dict[str, float]:
        return dict((self.summary or {}).get("paper") or {})

    @property
    def git_rev(self) -> str | None:
        return (self.summary or {}).get("git_rev")

    @property
    def task(self) -> str | None:
        """The task trained (``summary.json``'s ``task``); for runs whose summary predates it, the
        task of the score the run logs (``val_ssim``: denoising)."""
        named = (self.summary or {}).get("task")
        if named:
            return str(named)
        logged = [*self.metrics[-1:], (self.summary or {}).get("final") or {}]
        return next((task for s, task in SCORES.items() for m in logged if m.get(f"val_{s}") is not None), None)

    @property
    def target_density(self) -> float | None:
        """The density the run was trained to (``target_density``; None without a target)."""
        return self._get("target_density")

    def best(self) -> dict[str, float | None]:
        """``BEST_KEYS`` at the epoch of best validation score: from the summary (``best_val_<score>``,
        then its ``extra`` for keys it lacks), or (no summary) from the metrics, the best epoch being
        the last one with the highest ``val_acc`` (as the authors' ``best_model``; ``val_ssim`` /
        lowest ``val_loss`` when there is no accuracy) and no test numbers."""
        s = self.summary
        if s is not None:
            ex = s.get("extra") or {}
            out = {k: s[k] if s.get(k) is not None else ex.get(k) for k in BEST_KEYS}
            best_val = {f"val_{sc}": s.get(f"best_val_{sc}") for sc in SCORES}
            out.update({k: v for k, v in best_val.items() if v is not None})
            return out
        m = _best_epoch(self.metrics)
        return {k: None if k.startswith("test_") else m.get(k) for k in BEST_KEYS}

    def final(self) -> dict[str, float | None]:
        """``FINAL_KEYS`` at the last epoch: the summary's ``final``, filled in from the last metrics
        line for keys it lacks."""
        last = self.metrics[-1] if self.metrics else {}
        fin = (self.summary or {}).get("final") or {}
        return {k: fin.get(k, last.get(k)) for k in FINAL_KEYS}

    def extra(self) -> dict[str, float]:
        """Numeric entries of the summary's ``extra`` other than ``BEST_KEYS`` (e.g. ``test_psnr``)."""
        ex = (self.summary or {}).get("extra") or {}
        return {k: v for k, v in ex.items()
                if k not in BEST_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}

    def series(self, key: str) -> dict[int, float]:
        """epoch → value of ``key`` for the epochs where it is not null."""
        return {epoch_of(m, i): float(m[key]) for i, m in enumerate(self.metrics) if m.get(key) is not None}

    def _get(self, key: str) -> Any:
        if self.summary is not None and self.summary.get(key) is not None:
            return self.summary[key]
        return self.config.get(key)


def epoch_of(m: Mapping[str, Any], index: int) -> int:
    return int(m["epoch"]) if m.get("epoch") is not None else index + 1


def _best_epoch(metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    for key, sign in (("val_acc", 1.0), ("val_ssim", 1.0), ("val_loss", -1.0)):
        scored = [(sign * m[key], i) for i, m in enumerate(metrics) if m.get(key) is not None]
        if scored:
            return metrics[max(scored)[1]]
    return metrics[-1] if metrics else {}


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        cfg = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        return {}
    return {k: (None if v in ("none", "null") else v) for k, v in cfg.items()}


def _load_run(run_dir: Path) -> Run:
    summary_path = run_dir / SUMMARY_FILE
    summary = read_json_object(summary_path) if summary_path.is_file() else None
    config = {} if summary is not None else _read_config(run_dir / CONFIG_FILE)
    # a torn last line (a run still writing it, or killed) is dropped with a warning naming the file
    return Run(run_dir, tuple(read_jsonl(run_dir / METRICS_FILE)), summary, config)


def load_runs(paths: str | Path | Iterable[str | Path]) -> list[Run]:
    """Every run directory (a directory with a ``metrics.jsonl``) at or below each of ``paths``, in
    the order of ``paths`` and, below one path, in natural order of the directory names. A run
    reached twice is loaded once.

    A path may also be an earlier ``report.json``: its runs come back from the summaries it stored
    (no per-epoch curves), so a table measured over several sessions or machines can be completed
    run by run without keeping every run directory.

    Raises:
        FileNotFoundError: a path does not exist, or holds no run directory (the message names it).
        ValueError: a ``.json`` file that is not a report written by :func:`write_report`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    runs, seen = [], set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such run directory: {str(p)!r}")
        if p.is_file() and p.suffix == ".json" and p.name != SUMMARY_FILE:
            for run in _runs_of_report(p):
                if run.dir.resolve() not in seen:
                    seen.add(run.dir.resolve())
                    runs.append(run)
            continue
        if p.is_file() and p.name in (METRICS_FILE, SUMMARY_FILE):
            p = p.parent
        found = sorted({f.parent for f in p.rglob(METRICS_FILE)}, key=_natural_key) if p.is_dir() else []
        if not found:
            raise FileNotFoundError(f"no run directory (a folder with {METRICS_FILE}) at or below {str(p)!r}")
        for d in found:
            if d.resolve() not in seen:
                seen.add(d.resolve())
                runs.append(_load_run(d))
    return runs


def _runs_of_report(path: Path) -> list[Run]:
    """The runs stored in a ``report.json``: read from their directory where it is still on disk
    (the newer numbers, with curves), else from the stored summary; a run without one is skipped."""
    try:
        stored = read_json_object(path)["runs"]
        runs = [_load_run(Path(r["dir"])) if (Path(r["dir"]) / METRICS_FILE).exists()
                else Run(dir=Path(r["dir"]), metrics=(), summary=r["summary"])
                for r in stored if isinstance(r.get("summary"), dict)]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{str(path)!r} is not a report.json written by `bregman report` ({e}); "
                         f"pass run directories or such a report") from None
    if not runs:
        raise FileNotFoundError(f"{str(path)!r} holds no finished run")
    return runs


# ----------------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation of ``n`` values (``std`` is ``None`` for n = 1)."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat | None:
        xs = [float(v) for v in values if v is not None]
        if not xs:
            return None
        return cls(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None, len(xs))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


@dataclass(frozen=True)
class Row:
    """All runs of one label, aggregated over seeds."""

    label: str
    name: str  # experiment name of the first run
    runs: tuple[Run, ...]
    best: dict[str, Stat | None]  # BEST_KEYS at the best-validation epoch
    final: dict[str, Stat | None]  # FINAL_KEYS at the last epoch
    extra: dict[str, Stat | None]  # the summaries' "extra" numbers
    paper: dict[str, float]  # the paper's numbers for this row, in percent

    @property
    def seeds(self) -> tuple[int | None, ...]:
        return tuple(r.seed for r in self.runs)

    @property
    def n_unfinished(self) -> int:
        return sum(not r.finished for r in self.runs)

    @property
    def epochs(self) -> int | None:
        """Planned epochs (the largest planned by any of the runs)."""
        return max((r.epochs for r in self.runs if r.epochs is not None), default=None)

    @property
    def epochs_done(self) -> tuple[int, int]:
        done = [r.epochs_done for r in self.runs]
        return min(done), max(done)

    def to_dict(self) -> dict[str, Any]:
        def stats(d: Mapping[str, Stat | None]) -> dict[str, Any]:
            return {k: (s.to_dict() if s else None) for k, s in d.items()}

        return {
            "label": self.label, "name": self.name, "seeds": list(self.seeds), "n_seeds": len(self.runs),
            "n_unfinished": self.n_unfinished, "epochs": self.epochs,
            "epochs_done": {"min": self.epochs_done[0], "max": self.epochs_done[1]},
            "best": stats(self.best), "final": stats(self.final), "extra": stats(self.extra),
            "paper": self.paper,
        }


def labels_of(runs: Sequence[Run]) -> list[str]:
    """Each run's row label: its own; else that of a labelled run of the same experiment name (an
    unfinished run without summary.json, beside its finished siblings); else its name."""
    by_name: dict[str, str] = {}
    for r in runs:
        if r.label is not None:
            by_name.setdefault(r.name, r.label)
    return [r.label or by_name.get(r.name, r.name) for r in runs]


def aggregate(runs: Sequence[Run]) -> list[Row]:
    """One ``Row`` per label, in order of first appearance, aggregating over the label's runs."""
    groups: dict[str, list[Run]] = {}
    for label, run in zip(labels_of(runs), runs):
        groups.setdefault(label, []).append(run)
    rows = []
    for label, rs in groups.items():
        best, final, extra = [r.best() for r in rs], [r.final() for r in rs], [r.extra() for r in rs]
        extra_keys = list(dict.fromkeys(k for e in extra for k in e))
        rows.append(Row(
            label=label,
            name=rs[0].name,
            runs=tuple(rs),
            best={k: Stat.of(b[k] for b in best) for k in BEST_KEYS},
            final={k: Stat.of(f[k] for f in final) for k in FINAL_KEYS},
            extra={k: Stat.of(e.get(k) for e in extra) for k in extra_keys},
            paper=next((r.paper for r in rs if r.paper), {}),
        ))
    return rows
