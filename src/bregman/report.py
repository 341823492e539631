r"""Tables and plots from run directories: the edge where numbers become Markdown, JSON and PNG.

A *run directory* holds ``metrics.jsonl`` (one JSON object per epoch) and, once training has got far
enough, ``summary.json`` (best-epoch and last-epoch numbers, the paper's numbers for the row, git
revision, command). This module reads those files only; it imports neither torch nor the training
code, and matplotlib only when a plot is drawn.

Units: accuracies and densities (``N_total``, ``N_linear``, ``N_conv``) are fractions in the run
files and in ``report.json``, percentages in ``report.md`` and on the plots; the ``paper`` numbers
are percentages everywhere, as the paper prints them.

The aggregate over seeds of a quantity x with values x_1..x_n is mean ± sample std
(``ddof = 1``); with one seed the std is undefined (``None`` in JSON, "–" in Markdown).

Example:
    >>> out = write_report(["runs/fig2"], "results/fig2", title="Figure 2")  # doctest: +SKIP
    >>> out["rows"][0]["best"]["N_total"]  # doctest: +SKIP
    {'mean': 0.108, 'std': 0.004, 'n': 3}
"""
from __future__ import annotations

import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bregman._atomic import read_json_object, read_jsonl, save_figure, writable_dir, write_text_atomic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Run", "Stat", "Row", "load_runs", "aggregate", "write_report", "plot_curves",
           "plot_active_neurons", "PANELS"]

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.toml"  # the resolved config saved beside a run; read only when summary.json is missing

# A task logs one score: "acc" (classification) or "ssim" (denoising), as val_<score> etc.
SCORES = ("acc", "ssim")
# Quantities taken at the best-validation epoch (the checkpoint that is tested).
BEST_KEYS = ("N_total", "N_linear", "N_conv", *(f"{p}_{s}" for s in SCORES for p in ("val", "test", "train")),
             "test_loss")
# Quantities taken at the last epoch (the paper's Fig. 2/3 read their numbers off epoch 100).
FINAL_KEYS = ("N_total", "N_linear", "N_conv", *(f"{p}_{s}" for s in SCORES for p in ("val", "train")),
              "l1_norm", "train_loss", "val_loss")
# Fractions in the run files, printed as percentages.
PERCENT_KEYS = frozenset({"N_total", "N_linear", "N_conv", "val_acc", "test_acc", "train_acc",
                          "thresh_N_total", "thresh_N_linear", "thresh_N_conv", "thresh_val_acc",
                          "thresh_test_acc", "thresh_train_acc"})


@dataclass(frozen=True)
class Column:
    key: str  # key in Row.best / Row.final / Row.extra and in the paper dict
    header: str  # Markdown header (without the unit)

    @property
    def percent(self) -> bool:
        return self.key in PERCENT_KEYS


BEST_COLUMNS = (
    Column("N_total", "N_total"), Column("N_linear", "N_linear"), Column("N_conv", "N_conv"),
    Column("val_acc", "val acc"), Column("test_acc", "test acc"), Column("train_acc", "train acc"),
    Column("val_ssim", "val SSIM"), Column("test_ssim", "test SSIM"), Column("train_ssim", "train SSIM"),
)
FINAL_COLUMNS = (
    Column("N_total", "N_total"), Column("N_linear", "N_linear"), Column("N_conv", "N_conv"),
    Column("val_acc", "val acc"), Column("train_acc", "train acc"), Column("val_ssim", "val SSIM"),
    Column("train_ssim", "train SSIM"), Column("l1_norm", "ℓ1 norm"),
)

# The four panels of the paper's Fig. 2. Each panel plots the first of its keys that has data in
# some run, so the denoising task (no accuracies) shows its losses / SSIM in the same places.
PANELS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("train_acc", "Training accuracy"), ("train_ssim", "Training SSIM"), ("train_loss", "Training loss")),
    (("val_acc", "Validation accuracy"), ("val_ssim", "Validation SSIM"), ("val_loss", "Validation loss")),
    (("l1_norm", "ℓ1 norm of the weights"),),
    (("N_total", "Non-zero weights N_total"),),
)


# ------------------------------------------------------------------------------------------ runs


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
        return max((_epoch(m, i) for i, m in enumerate(self.metrics)), default=0)

    @property
    def paper(self) -> dict[str, float]:
        return dict((self.summary or {}).get("paper") or {})

    @property
    def git_rev(self) -> str | None:
        return (self.summary or {}).get("git_rev")

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
        return {_epoch(m, i): float(m[key]) for i, m in enumerate(self.metrics) if m.get(key) is not None}

    def _get(self, key: str) -> Any:
        if self.summary is not None and self.summary.get(key) is not None:
            return self.summary[key]
        return self.config.get(key)


def _epoch(m: Mapping[str, Any], index: int) -> int:
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


def _labels(runs: Sequence[Run]) -> list[str]:
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
    for label, run in zip(_labels(runs), runs):
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


# -------------------------------------------------------------------------------------- Markdown


def _decimals(key: str, value: float) -> int:
    if key in PERCENT_KEYS:
        return 2
    return 3 if abs(value) < 10 else 1


def _fmt_stat(key: str, s: Stat | None) -> str:
    if s is None:
        return "–"
    scale = 100.0 if key in PERCENT_KEYS else 1.0
    d = _decimals(key, s.mean * scale)
    std = "–" if s.std is None else f"{s.std * scale:.{d}f}"
    return f"{s.mean * scale:.{d}f} ± {std}"


def _fmt_paper(v: Any) -> str:
    return "–" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _header(col: Column) -> str:
    return f"{col.header} %" if col.percent else col.header


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]], right_from: int) -> list[str]:
    cells = [[c.replace("|", "\\|") for c in row] for row in [header, *body]]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if j < right_from else c.rjust(w)
                                 for j, (c, w) in enumerate(zip(row, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if j >= right_from else "-")
                          for j, w in enumerate(widths)) + "|"
    return [line(cells[0]), rule, *(line(r) for r in cells[1:])]


def _seeds_cell(row: Row) -> str:
    n = len(row.runs)
    return f"{n} ({row.n_unfinished} unfinished)" if row.n_unfinished else str(n)


def _epochs_cell(row: Row) -> str:
    lo, hi = row.epochs_done
    done = str(hi) if lo == hi else f"{lo}–{hi}"
    if row.epochs is None:
        return done
    return done if (lo == hi == row.epochs and not row.n_unfinished) else f"{done}/{row.epochs}"


def _best_table(rows: Sequence[Row]) -> list[str]:
    """Our columns that have a value in some row, each followed by the paper's where there is one;
    then the summaries' extra numbers; then paper numbers that match none of ours."""
    paper_keys = list(dict.fromkeys(k for r in rows for k in r.paper))
    extra = [Column(k, k.replace("_", " ")) for k in dict.fromkeys(k for r in rows for k in r.extra)]
    known = {c.key for c in (*BEST_COLUMNS, *extra)}
    specs = [*((c, "best") for c in BEST_COLUMNS), *((c, "extra") for c in extra),
             *((Column(k, k.replace("_", " ")), None) for k in paper_keys if k not in known)]
    cols: list[tuple[str, Callable[[Row], str]]] = []
    for col, where in specs:
        if where and any(getattr(r, where).get(col.key) for r in rows):
            cols.append((_header(col), lambda r, c=col, w=where: _fmt_stat(c.key, getattr(r, w).get(c.key))))
        if col.key in paper_keys:
            cols.append(("paper " + _header(col), lambda r, c=col: _fmt_paper(r.paper.get(c.key))))
    cols = _target_column(rows) + cols
    header = ["label", "seeds", "epochs", *(h for h, _ in cols)]
    body = [[r.label, _seeds_cell(r), _epochs_cell(r), *(cell(r) for _, cell in cols)] for r in rows]
    return _markdown_table(header, body, right_from=1)


def _target_column(rows: Sequence[Row]) -> list[tuple[str, Callable[[Row], str]]]:
    """A ``target %`` column beside the densities reached, where some run had a target density."""
    if not any(r.target_density is not None for row in rows for r in row.runs):
        return []
    return [("target %", lambda row: _fmt_stat("N_total", Stat.of(r.target_density for r in row.runs)))]


def _final_table(rows: Sequence[Row]) -> list[str]:
    cols = [c for c in FINAL_COLUMNS if any(r.final[c.key] for r in rows)]
    target = _target_column(rows)
    header = ["label", "epochs", *(h for h, _ in target), *(_header(c) for c in cols)]
    body = [[r.label, _epochs_cell(r), *(cell(r) for _, cell in target),
             *(_fmt_stat(c.key, r.final[c.key]) for c in cols)] for r in rows]
    return _markdown_table(header, body, right_from=1)


def _revisions(runs: Sequence[Run]) -> dict[str, int]:
    revs: dict[str, int] = {}
    for r in runs:
        if r.git_rev:
            revs[r.git_rev] = revs.get(r.git_rev, 0) + 1
    return revs


def _markdown(title: str, command: str, runs: Sequence[Run], rows: Sequence[Row],
              plots: Sequence[str]) -> str:
    n = len(runs)
    lines = [f"# {title}", "", f"Generated by `{command}` from {n} run{'s' * (n != 1)}."]
    revs = _revisions(runs)
    if revs:
        lines.append("Code revision" + "s" * (len(revs) > 1) + ": "
                     + ", ".join(f"`{rev}` ({k} run{'s' * (k != 1)})" for rev, k in revs.items()) + ".")
    unfinished = sum(not r.finished for r in runs)
    if unfinished:
        lines.append(f"{unfinished} of the runs had not finished; their numbers are as far as they got.")
    lines += [
        "",
        "## At the best-validation checkpoint",
        "",
        "Mean ± sample std over seeds (– : one seed or no value). N_* = non-zero fraction of the weights;",
        "test scores are those of the best-validation checkpoint. `paper` columns: the paper's numbers.",
        "",
        *_best_table(rows),
        "",
        "## At the last epoch",
        "",
        *_final_table(rows),
    ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ plots


def _figure(figsize: tuple[float, float]):
    # The object API with an explicit Agg canvas: no pyplot, so no global backend is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _mean_std(runs: Sequence[Run], key: str) -> tuple[list[int], list[float], list[float]]:
    per_epoch: dict[int, list[float]] = {}
    for r in runs:
        for e, v in r.series(key).items():
            per_epoch.setdefault(e, []).append(v)
    epochs = sorted(per_epoch)
    means = [statistics.fmean(per_epoch[e]) for e in epochs]
    stds = [statistics.stdev(per_epoch[e]) if len(per_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, stds


def plot_curves(rows: Sequence[Row], out_path: str | Path, *, title: str | None = None) -> Path:
    """The four panels of the paper's Fig. 2 against epochs: training accuracy, validation accuracy,
    ℓ1 norm of the weights and non-zero weights N_total; one line per row (mean over seeds) with a
    shaded ± std band. Panels fall back to losses / SSIM where there is no accuracy (``PANELS``).
    Written atomically to ``out_path``."""
    return save_figure(_curves_figure(rows, title), out_path)


def _curves_figure(rows: Sequence[Row], title: str | None):
    fig = _figure((11.5, 8.0))
    axes = fig.subplots(2, 2, sharex=True).ravel()
    colors = [f"C{i % 10}" for i in range(len(rows))]
    for ax, panel in zip(axes, PANELS):
        key, name = next(((k, n) for k, n in panel if any(r.series(k) for row in rows for r in row.runs)),
                         panel[0])
        scale = 100.0 if key in PERCENT_KEYS else 1.0
        for row, color in zip(rows, colors):
            epochs, mean, std = _mean_std(row.runs, key)
            if not epochs:
                continue
            m = [scale * v for v in mean]
            lo = [scale * (v - s) for v, s in zip(mean, std)]
            hi = [scale * (v + s) for v, s in zip(mean, std)]
            if key in PERCENT_KEYS:  # a ± std band must not leave [0, 100] %
                lo, hi = [max(v, 0.0) for v in lo], [min(v, 100.0) for v in hi]
            ax.plot(epochs, m, color=color, lw=1.6, ls="--" if row.n_unfinished else "-",
                    marker="o" if len(epochs) <= 10 else None, ms=3)
            if len(row.runs) > 1:
                ax.fill_between(epochs, lo, hi, color=color, alpha=0.2, lw=0)
        ax.set_title(name + (" (%)" if scale != 1.0 else ""))
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    handles = [axes[0].plot([], [], color=c, lw=2, ls="--" if row.n_unfinished else "-")[0]
               for row, c in zip(rows, colors)]
    labels = [f"{row.label} ({len(row.runs)} seed{'s' * (len(row.runs) != 1)}"
              + (", unfinished)" if row.n_unfinished else ")") for row in rows]
    ncol = min(len(rows), 4)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    legend_rows = math.ceil(len(rows) / ncol) if rows else 0
    bottom = 0.02 + 0.03 * legend_rows
    if title:
        seeds = "  —  mean ± std over seeds" if any(len(row.runs) > 1 for row in rows) else ""
        fig.suptitle(title + seeds, fontsize=13)
    fig.tight_layout(rect=(0, bottom, 1, 0.96 if title else 1))
    return fig


def _layer_label(name: str) -> str:
    return name.removesuffix(".weight") or name


def plot_active_neurons(run: Run | Sequence[Run], out_path: str | Path,
                        epochs: Sequence[int] | None = None) -> Path:
    """Bars of the active neurons (non-zero rows) of every layer at a few epochs (default 1, 10, 20
    and the last; epochs a run does not have are skipped), one panel per run — the paper's Fig. 4.

    Raises:
        ValueError: a run has no ``active_neurons`` in its metrics.
    """
    return save_figure(_neurons_figure(run, epochs), out_path)


def _neurons_figure(run: Run | Sequence[Run], epochs: Sequence[int] | None):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    runs = [run] if isinstance(run, Run) else list(run)
    fig = _figure((max(6.0, 1.1 * max((_n_layers(r) for r in runs), default=1) + 3), 3.6 * len(runs)))
    axes = fig.subplots(len(runs), 1, squeeze=False).ravel()
    for ax, r in zip(axes, runs):
        by_epoch = {_epoch(m, i): m["active_neurons"]
                    for i, m in enumerate(r.metrics) if m.get("active_neurons")}
        if not by_epoch:
            raise ValueError(f"{r.dir}: no active_neurons in {METRICS_FILE}")
        last = max(by_epoch)
        wanted = list(epochs) if epochs is not None else [1, 10, 20, last]
        shown = [e for e in dict.fromkeys(wanted) if e in by_epoch]
        layers = list(dict.fromkeys(k for e in shown for k in by_epoch[e]))
        width = 0.8 / max(len(shown), 1)
        for j, e in enumerate(shown):
            color = cmap(0.15 + 0.7 * j / max(len(shown) - 1, 1))
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(layers))]
            ys = [by_epoch[e].get(k, 0) for k in layers]
            bars = ax.bar(xs, ys, width=width * 0.95, color=color, label=f"epoch {e}")
            if len(layers) * len(shown) <= 40:
                ax.bar_label(bars, fontsize=7, padding=1)
        ax.set_xticks(range(len(layers)), [_layer_label(k) for k in layers])
        ax.set_ylabel("active neurons")
        ax.set_title(f"{r.label or r.name}" + (f" (seed {r.seed})" if r.seed is not None else ""))
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
        ax.margins(y=0.12)
    fig.tight_layout()
    return fig


def _n_layers(run: Run) -> int:
    return max((len(m.get("active_neurons") or {}) for m in run.metrics), default=0)


# ----------------------------------------------------------------------------------------- report


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None  # a diverged run: JSON has no NaN / inf
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def write_report(paths: str | Path | Iterable[str | Path], out_dir: str | Path, *, title: str | None = None,
                 command: str | None = None, neurons: bool | None = None) -> dict[str, Any]:
    """Read the runs at or below ``paths`` and write into ``out_dir``:

    * ``report.md``: title, provenance (command, run count, git revisions) and two tables, one at
      the best-validation epoch (label | seeds | epochs | N_total % | N_linear % | N_conv % |
      val acc % | test acc % | train acc %, plus ``paper …`` columns beside ours where summaries
      carry the paper's numbers, and the summaries' ``extra`` numbers) and one at the last epoch;
      columns without a value in any row are left out;
    * ``report.json``: the same numbers (fractions, not percent) with per-run details;
    * ``curves.png``: ``plot_curves``;
    * ``active_neurons.png``: ``plot_active_neurons`` of the first run of each label that logs
      ≥ 2 layers, when ``neurons`` is True, or when it is None (default) and the experiment is the
      denoising one (its name contains "denois").

    Everything is read and drawn before anything is written, and every file is written atomically:
    a report that fails (a bad run file, a full disk) leaves an earlier one in ``out_dir`` intact,
    so ``paths`` may include ``out_dir/report.json`` itself (the incremental workflow).

    Returns:
        The content of ``report.json``.
    """
    out = writable_dir(out_dir)
    runs = load_runs(paths)
    rows = aggregate(runs)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    command = command or " ".join(["bregman report", *map(str, paths)])
    names = list(dict.fromkeys(r.name for r in rows))
    title = title or "Results: " + ", ".join(names)

    figures = {"curves.png": _curves_figure(rows, title)}
    neuron_runs = [row.runs[0] for row in rows
                   if _n_layers(row.runs[0]) >= 2 and (neurons or (neurons is None and "denois" in row.name))]
    if neuron_runs:
        figures["active_neurons.png"] = _neurons_figure(neuron_runs, None)
    plots = list(figures)

    label_of = dict(zip(map(id, runs), _labels(runs)))
    report = _jsonable({
        "title": title,
        "command": command,
        "units": "accuracies and N_* as fractions 0..1; 'paper' values in percent as printed",
        "n_runs": len(runs),
        "git_revs": _revisions(runs),
        "plots": plots,
        "rows": [row.to_dict() for row in rows],
        "runs": [{"label": label_of[id(r)], "seed": r.seed, "dir": str(r.dir), "finished": r.finished,
                  "epochs_done": r.epochs_done, "summary": r.summary} for r in runs],
    })
    write_text_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "report.md", _markdown(title, command, runs, rows, plots))
    for name, fig in figures.items():
        save_figure(fig, out / name)
    return report
