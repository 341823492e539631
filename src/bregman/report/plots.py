"""The report's figures: the paper's Fig. 2 panels against epochs (:func:`plot_curves`) and the
active neurons per layer of Fig. 4 (:func:`plot_active_neurons`). matplotlib is imported only when a
figure is drawn, and only its object API with an Agg canvas (no pyplot, no global backend)."""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from bregman._atomic import save_figure
from bregman.report.runs import METRICS_FILE, Row, Run, epoch_of, is_percent

__all__ = ["PANELS", "NEURON_TASKS", "plot_curves", "plot_active_neurons", "curves_figure", "neurons_figure",
           "n_layers"]

# The four panels of the paper's Fig. 2. Each panel plots the first of its keys that has data in
# some run, so the denoising task (no accuracies) shows its losses / SSIM in the same places.
PANELS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("train_acc", "Training accuracy"), ("train_ssim", "Training SSIM"), ("train_loss", "Training loss")),
    (("val_acc", "Validation accuracy"), ("val_ssim", "Validation SSIM"), ("val_loss", "Validation loss")),
    (("l1_norm", "ℓ1 norm of the weights"),),
    (("N_total", "Non-zero weights N_total"),),
)
#: the tasks whose reports show the active neurons by default (the paper's Fig. 4 is of denoising)
NEURON_TASKS = frozenset({"denoise"})


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
    return save_figure(curves_figure(rows, title), out_path)


def curves_figure(rows: Sequence[Row], title: str | None):
    fig = _figure((11.5, 8.0))
    axes = fig.subplots(2, 2, sharex=True).ravel()
    colors = [f"C{i % 10}" for i in range(len(rows))]
    for ax, panel in zip(axes, PANELS):
        key, name = next(((k, n) for k, n in panel if any(r.series(k) for row in rows for r in row.runs)),
                         panel[0])
        scale = 100.0 if is_percent(key) else 1.0
        for row, color in zip(rows, colors):
            epochs, mean, std = _mean_std(row.runs, key)
            if not epochs:
                continue
            m = [scale * v for v in mean]
            lo = [scale * (v - s) for v, s in zip(mean, std)]
            hi = [scale * (v + s) for v, s in zip(mean, std)]
            if is_percent(key):  # a ± std band must not leave [0, 100] %
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
    return save_figure(neurons_figure(run, epochs), out_path)


def neurons_figure(run: Run | Sequence[Run], epochs: Sequence[int] | None):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    runs = [run] if isinstance(run, Run) else list(run)
    fig = _figure((max(6.0, 1.1 * max((n_layers(r) for r in runs), default=1) + 3), 3.6 * len(runs)))
    axes = fig.subplots(len(runs), 1, squeeze=False).ravel()
    for ax, r in zip(axes, runs):
        by_epoch = {epoch_of(m, i): m["active_neurons"]
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


def n_layers(run: Run) -> int:
    return max((len(m.get("active_neurons") or {}) for m in run.metrics), default=0)
