"""The Markdown of a report: two tables over the rows (at the best-validation checkpoint and at the
last epoch) and the provenance above them. Percentages where :func:`~bregman.report.runs.is_percent`
says the run files hold fractions; the ``paper`` numbers are percentages as the paper prints them."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bregman.report.runs import BEST_KEYS, DENSITIES, FINAL_KEYS, Row, Run, Stat, is_percent

__all__ = ["Column", "BEST_COLUMNS", "FINAL_COLUMNS", "markdown", "revisions"]


@dataclass(frozen=True)
class Column:
    key: str  # key in Row.best / Row.final / Row.extra and in the paper dict
    header: str  # Markdown header (without the unit)

    @property
    def percent(self) -> bool:
        return is_percent(self.key)

    @classmethod
    def of(cls, key: str) -> Column:
        """The column of a run-file key: densities by their name, the rest in words (``val SSIM``)."""
        if key in DENSITIES:
            return cls(key, key)
        return cls(key, key.replace("l1_norm", "ℓ1 norm").replace("_", " ").replace("ssim", "SSIM"))


#: the tables' columns: every key the runs log, but the losses (the plots show those)
BEST_COLUMNS = tuple(Column.of(k) for k in BEST_KEYS if not k.endswith("_loss"))
FINAL_COLUMNS = tuple(Column.of(k) for k in FINAL_KEYS if not k.endswith("_loss"))


def _decimals(key: str, value: float) -> int:
    if is_percent(key):
        return 2
    return 3 if abs(value) < 10 else 1


def _fmt_stat(key: str, s: Stat | None) -> str:
    if s is None:
        return "–"
    scale = 100.0 if is_percent(key) else 1.0
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


def revisions(runs: Sequence[Run]) -> dict[str, int]:
    revs: dict[str, int] = {}
    for r in runs:
        if r.git_rev:
            revs[r.git_rev] = revs.get(r.git_rev, 0) + 1
    return revs


def markdown(title: str, command: str, runs: Sequence[Run], rows: Sequence[Row],
              plots: Sequence[str]) -> str:
    n = len(runs)
    lines = [f"# {title}", "", f"Generated by `{command}` from {n} run{'s' * (n != 1)}."]
    revs = revisions(runs)
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
