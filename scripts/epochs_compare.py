"""Compare the rows of two ``bregman report`` outputs of the same sweep trained for different epoch
budgets (Tables 1 and 2 at 100 and at 30 epochs) against the paper's numbers.

Reads the ``report.json`` files that ``bregman report --out DIR`` writes, and writes a Markdown table
and a JSON file with, per row: the density measures and accuracies (best-validation checkpoint) at
both budgets, and the distance of the long run to the paper in percentage points (pp); for a row whose
paper numbers are of its thresholded net ("+ thresh."), those of our thresholded net. ``--authors``
adds a reference row (e.g. the authors' own 100-epoch log of a setting) to compare one label with.

Example:
    python scripts/epochs_compare.py --long results/fmnist_table2_100/report.json \\
        --short results/fmnist_table2/report.json --measures N_linear N_conv \\
        --authors "Bregman / LinBreg=N_linear:3.37,N_conv:3.58,test_acc:88.0" \\
        --out results/fmnist_table2_100/compare
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bregman._atomic import write_text_atomic  # noqa: E402


def _rows(report: Path) -> dict[str, dict]:
    return {r["label"]: r for r in json.loads(report.read_text())["rows"]}


def _thresholded(row: dict | None) -> bool:
    """Whether the paper's numbers for this row are of its thresholded net ("+ thresh." rows)."""
    return row is not None and any(k.startswith("thresh_") for k in row.get("paper", {}))


def _pct(row: dict | None, key: str) -> float | None:
    """The best-checkpoint mean of ``key`` in percent (of the thresholded net where the paper's
    row is thresholded), or None."""
    if row is None:
        return None
    value = (row.get("extra") or {}).get(f"thresh_{key}") if _thresholded(row) else row["best"].get(key)
    return None if value is None else 100.0 * value["mean"]


def _paper(row: dict, key: str) -> float | None:
    paper = row.get("paper", {})
    return paper.get(f"thresh_{key}") if _thresholded(row) else paper.get(key)


def _fmt(x: float | None, signed: bool = False) -> str:
    return "–" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


def _parse_authors(specs: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for spec in specs:
        label, _, values = spec.partition("=")
        out[label] = {k: float(v) for k, v in (kv.split(":") for kv in values.split(","))}
    return out


def compare(long: dict[str, dict], short: dict[str, dict], measures: list[str],
            authors: dict[str, dict[str, float]]) -> list[dict]:
    """One record per row of the long report: values at both budgets, the paper's, and the distances."""
    keys = [*measures, "test_acc", "train_acc"]
    records = []
    for label, row in long.items():
        rec = {"label": label, "thresholded": _thresholded(row), "epochs": row["epochs"], "seeds": row["seeds"],
               "epochs_done": row["epochs_done"], "short_epochs": short.get(label, {}).get("epochs")}
        for k in keys:
            ours, paper = _pct(row, k), _paper(row, k)
            rec[k] = {"long": ours, "short": _pct(short.get(label), k), "paper": paper,
                      "to_paper_pp": None if ours is None or paper is None else ours - paper}
            if label in authors and k in authors[label]:
                rec[k]["authors"] = authors[label][k]
                rec[k]["to_authors_pp"] = None if ours is None else ours - authors[label][k]
        records.append(rec)
    return records


def markdown(records: list[dict], measures: list[str]) -> str:
    keys = [*measures, "test_acc", "train_acc"]
    long_ep, short_ep = records[0]["epochs"], records[0]["short_epochs"]
    head = ["row", "epochs"] + [f"{k} % ({e})" for k in keys
                                for e in (f"{long_ep} ep.", f"{short_ep} ep.", "paper", "Δ paper pp")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        label = r["label"] + (" (thresholded net)" if r["thresholded"] else "")
        cells = [label, f"{r['epochs_done']['max']}/{r['epochs']}"]
        for k in keys:
            v = r[k]
            cells += [_fmt(v["long"]), _fmt(v["short"]), _fmt(v["paper"]), _fmt(v["to_paper_pp"], True)]
        lines.append("| " + " | ".join(cells) + " |")
    extra = [(r["label"], k, r[k]) for r in records for k in keys if "authors" in r[k]]
    if extra:
        lines += ["", f"| row | measure | {long_ep} ep. % | authors' log % | Δ pp |", "|---|---|---|---|---|"]
        lines += [f"| {lab} | {k} | {_fmt(v['long'])} | {_fmt(v['authors'])} | {_fmt(v['to_authors_pp'], True)} |"
                  for lab, k, v in extra]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", type=Path, required=True, help="report.json of the long (100-epoch) runs")
    ap.add_argument("--short", type=Path, required=True, help="report.json of the short (30-epoch) runs")
    ap.add_argument("--measures", nargs="+", default=["N_total"], help="density measures to show")
    ap.add_argument("--authors", action="append", default=[], help="LABEL=key:value,... reference values (percent)")
    ap.add_argument("--out", type=Path, required=True, help="output stem: writes OUT.md and OUT.json")
    args = ap.parse_args(argv)
    records = compare(_rows(args.long), _rows(args.short), args.measures, _parse_authors(args.authors))
    command = "python scripts/epochs_compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    write_text_atomic(args.out.with_suffix(".json"), json.dumps({"command": command, "rows": records}, indent=1) + "\n")
    write_text_atomic(args.out.with_suffix(".md"), markdown(records, args.measures))
    print(markdown(records, args.measures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
