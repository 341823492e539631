r"""Tables and plots from run directories: the edge where numbers become Markdown, JSON and PNG.

:mod:`~bregman.report.runs` reads run directories (and earlier ``report.json`` files) and
aggregates them over seeds, :mod:`~bregman.report.tables` writes the Markdown,
:mod:`~bregman.report.plots` draws the figures; :func:`write_report` does all three.

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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bregman._atomic import save_figure, writable_dir, write_text_atomic
from bregman.report.plots import (NEURON_TASKS, PANELS, curves_figure, n_layers, neurons_figure,
                                  plot_active_neurons, plot_curves)
from bregman.report.runs import Row, Run, Stat, aggregate, labels_of, load_runs
from bregman.report.tables import markdown, revisions

__all__ = ["Run", "Stat", "Row", "load_runs", "aggregate", "write_report", "plot_curves",
           "plot_active_neurons", "PANELS"]


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
      ≥ 2 layers, when ``neurons`` is True, or when it is None (default) and the row's task is one
      of ``NEURON_TASKS`` (denoising, the paper's Fig. 4).

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

    figures = {"curves.png": curves_figure(rows, title)}
    neuron_runs = [row.runs[0] for row in rows
                   if n_layers(row.runs[0]) >= 2 and (neurons or (neurons is None and row.runs[0].task in NEURON_TASKS))]
    if neuron_runs:
        figures["active_neurons.png"] = neurons_figure(neuron_runs, None)
    plots = list(figures)

    label_of = dict(zip(map(id, runs), labels_of(runs)))
    report = _jsonable({
        "title": title,
        "command": command,
        "units": "accuracies and N_* as fractions 0..1; 'paper' values in percent as printed",
        "n_runs": len(runs),
        "git_revs": revisions(runs),
        "plots": plots,
        "rows": [row.to_dict() for row in rows],
        "runs": [{"label": label_of[id(r)], "seed": r.seed, "dir": str(r.dir), "finished": r.finished,
                  "epochs_done": r.epochs_done, "summary": r.summary} for r in runs],
    })
    write_text_atomic(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "report.md", markdown(title, command, runs, rows, plots))
    for name, fig in figures.items():
        save_figure(fig, out / name)
    return report
