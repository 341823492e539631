"""Summarize the target-density runs (issue 12) into results/target_density.json and a density plot.

Usage (from the repository root, after the sweeps of configs/sweeps/target_density*.toml)::

    python scripts/target_density_summary.py --controlled runs/target_density \\
        --fixed runs/target_density_fixed --out results/target_density

For every controlled run (one per label and seed): the target d*, the density reached at the last
epoch and its relative error, the test accuracy of the best-validation checkpoint (chosen among the
epochs after the ramp) and the λ it ended at. The reference is the test accuracy that fixed-λ runs of
the same optimizer, model and seed reach at the same density: linear in log density between the two
fixed-λ runs whose final densities bracket the one reached. Where none brackets it (a fixed λ starts
at the 1 % init and only grows, so no fixed λ ends at 1 %), the reference is a *bound*: the accuracy
of the fixed-λ run that ends closest above that density (the fixed-λ accuracy grows with density
along every sweep here, which the script checks and reports).

A run passes when |d/d* − 1| ≤ ``--tolerance`` (10 %) and its test accuracy is at least the
reference − ``--margin`` (0.2 pp). Per label: mean ± sample std (ddof = 1) over seeds and the
number of seeds that pass. Prints the Markdown tables; writes ``OUT.json`` and ``OUT/density.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
from pathlib import Path

from bregman._atomic import save_figure, write_text_atomic
from bregman.report import load_runs


def _final(run, key):
    return (run.summary or {}).get("final", {}).get(key, run.metrics[-1].get(key) if run.metrics else None)


def _config(run) -> dict:
    import tomllib

    path = run.dir / "config.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _row(run) -> dict:
    s = run.summary or {}
    last = run.metrics[-1] if run.metrics else {}
    cfg = _config(run)
    lam = last.get("lam") or cfg.get("lam")
    return {"label": run.label, "seed": run.seed, "dir": str(run.dir), "optimizer": s.get("optimizer"),
            "model": cfg.get("model"), "mode": cfg.get("target_mode"), "every": cfg.get("target_every"),
            "target": run.target_density, "epochs_done": run.epochs_done, "epochs": run.epochs,
            "finished": run.finished, "N_total": _final(run, "N_total"), "test_acc": s.get("test_acc"),
            "best_epoch": s.get("best_epoch"), "best_val_acc": s.get("best_val_acc"),
            "lam": lam["linear"] if isinstance(lam, dict) and set(lam) == {"linear"} else lam,
            "git_rev": s.get("git_rev"), "curve": {"epoch": [m["epoch"] for m in run.metrics],
                                                   "N_total": [m["N_total"] for m in run.metrics],
                                                   "target": [m.get("target_density") for m in run.metrics]}}


# ------------------------------------------------------------------------------------ the reference
def _interpolate(points: list[tuple[float, float]], d: float) -> float | None:
    """Accuracy at density ``d`` from (density, accuracy) points: linear in log density between the
    nearest bracketing pair; None outside their range."""
    pts = sorted(points)
    for (d0, a0), (d1, a1) in zip(pts, pts[1:]):
        if d0 <= d <= d1:
            w = 0.0 if d1 == d0 else (math.log(d) - math.log(d0)) / (math.log(d1) - math.log(d0))
            return a0 + w * (a1 - a0)
    return None


def _reference(row: dict, fixed: list[dict]) -> tuple[float | None, str | None]:
    """(reference accuracy, how it was found) for one controlled run: interpolated, or the bound of
    the fixed-λ run closest above the density reached."""
    same = [f for f in fixed if (f["optimizer"], f["seed"], f["model"]) == (row["optimizer"], row["seed"], row["model"])]
    ref = _interpolate([(f["N_total"], f["test_acc"]) for f in same], row["N_total"])
    if ref is not None:
        return ref, "interpolated"
    above = [f for f in same if f["N_total"] >= row["N_total"]]
    if not above:
        return None, None
    f = min(above, key=lambda f: f["N_total"])
    return f["test_acc"], f"bound: {f['label']} at {100 * f['N_total']:.3f} %"


def _monotone(fixed: list[dict]) -> dict[str, bool]:
    """Per optimizer and seed: whether the fixed-λ test accuracy grows with the final density."""
    out = {}
    for key in sorted({(f["optimizer"], f["seed"]) for f in fixed}):
        pts = sorted((f["N_total"], f["test_acc"]) for f in fixed if (f["optimizer"], f["seed"]) == key)
        out[f"{key[0]} seed {key[1]}"] = all(a0 <= a1 for (_, a0), (_, a1) in zip(pts, pts[1:]))
    return out


def _judge(row: dict, fixed: list[dict], tolerance: float, margin_pp: float) -> None:
    row["rel_error"] = None if row["N_total"] is None else row["N_total"] / row["target"] - 1
    ref, how = _reference(row, fixed) if row["finished"] else (None, None)
    row["fixed_lam_test_acc"], row["reference"] = ref, how
    row["acc_gap_pp"] = None if ref is None or row["test_acc"] is None else 100 * (row["test_acc"] - ref)
    row["density_ok"] = row["rel_error"] is not None and abs(row["rel_error"]) <= tolerance
    row["accuracy_ok"] = row["acc_gap_pp"] is not None and row["acc_gap_pp"] >= -margin_pp
    row["passed"] = bool(row["finished"] and row["density_ok"] and row["accuracy_ok"])


# ------------------------------------------------------------------------------------ aggregation
def _stat(xs: list) -> dict | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else None, "n": len(xs)}


def _aggregate(rows: list[dict]) -> list[dict]:
    out = []
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == label]
        out.append({"label": label, "optimizer": rs[0]["optimizer"], "target": rs[0]["target"],
                    "seeds": [r["seed"] for r in rs], "epochs": sorted({r["epochs_done"] for r in rs}),
                    "passed": sum(r["passed"] for r in rs),
                    **{k: _stat([r[k] for r in rs]) for k in ("N_total", "rel_error", "test_acc", "fixed_lam_test_acc",
                                                               "acc_gap_pp", "lam")},
                    "max_abs_rel_error": max((abs(r["rel_error"]) for r in rs if r["rel_error"] is not None),
                                             default=None),
                    "reference": sorted({(r["reference"] or "–").split(":")[0] for r in rs})})
    return out


def _fixed_table(fixed: list[dict]) -> list[dict]:
    out = []
    for label in dict.fromkeys(f["label"] for f in fixed):
        fs = [f for f in fixed if f["label"] == label]
        out.append({"label": label, "optimizer": fs[0]["optimizer"], "seeds": [f["seed"] for f in fs],
                    "N_total": _stat([f["N_total"] for f in fs]), "test_acc": _stat([f["test_acc"] for f in fs])})
    return out


# ------------------------------------------------------------------------------------ Markdown
def _pm(s: dict | None, scale: float = 100.0, digits: int = 2, sign: bool = False) -> str:
    if s is None:
        return "–"
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    mean = fmt.format(scale * s["mean"])
    return mean if s["std"] is None else f"{mean} ± {scale * s['std']:.{digits}f}"


def _pct(x: float | None, unit: str = "", digits: int = 2, sign: str = "") -> str:
    return "–" if x is None else f"{100 * x:{sign}.{digits}f}{unit}"


def _tables(agg: list[dict], rows: list[dict], fixed: list[dict]) -> list[str]:
    lines = ["| run | seeds | target % | reached % (last epoch) | max rel. error | test acc % | "
             "fixed-λ test acc % at that density | gap pp | seeds passing | λ at the end |", "|" + "---|" * 10]
    for a in agg:
        kinds = [k for k in a["reference"] if k not in ("interpolated", "–")]
        ref = f" ({', '.join(kinds)})" if kinds else ""
        lines.append(f"| {a['label']} | {len(a['seeds'])} | {100 * a['target']:.2f} | {_pm(a['N_total'], digits=3)} | "
                     f"{_pct(a['max_abs_rel_error'], ' %')} | "
                     f"{_pm(a['test_acc'])} | {_pm(a['fixed_lam_test_acc'])}{ref} | "
                     f"{_pm(a['acc_gap_pp'], scale=1.0, sign=True)} | {a['passed']}/{len(a['seeds'])} | "
                     f"{_pm(a['lam'], scale=1.0, digits=3)} |")
    lines += ["", "| run | seed | reached % | rel. error | test acc % | fixed-λ test acc % | reference | gap pp | "
              "pass |", "|" + "---|" * 9]
    for r in rows:
        gap = "–" if r["acc_gap_pp"] is None else f"{r['acc_gap_pp']:+.2f}"
        lines.append(f"| {r['label']} | {r['seed']} | {_pct(r['N_total'], digits=3)} | "
                     f"{_pct(r['rel_error'], ' %', sign='+')} | {_pct(r['test_acc'])} | "
                     f"{_pct(r['fixed_lam_test_acc'])} | "
                     f"{r['reference'] or '–'} | {gap} | {'yes' if r['passed'] else 'no'} |")
    lines += ["", "| fixed λ | seeds | N_total % (last epoch) | test acc % |", "|---|---|---|---|"]
    lines += [f"| {f['label']} | {len(f['seeds'])} | {_pm(f['N_total'], digits=3)} | {_pm(f['test_acc'])} |"
              for f in _fixed_table(fixed)]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controlled", nargs="+", required=True)
    ap.add_argument("--fixed", nargs="+", default=[], metavar="DIR")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tolerance", type=float, default=0.10, help="relative density error allowed")
    ap.add_argument("--margin", type=float, default=0.2, help="test accuracy (pp) allowed below the reference")
    args = ap.parse_args(argv)
    out = Path(args.out)
    order = {"linbreg": 0, "adabreg": 1}  # the sweep's order: optimizer, then the target from the densest
    controlled = sorted((_row(r) for r in load_runs(args.controlled) if r.metrics),
                        key=lambda r: (order.get(r["optimizer"], 2), -r["target"], r["seed"]))
    fixed = sorted((_row(r) for r in load_runs(args.fixed) if r.finished) if args.fixed else [],
                   key=lambda f: (order.get(f["optimizer"], 2), f["lam"], f["seed"]))
    for row in controlled:
        _judge(row, fixed, args.tolerance, args.margin)
    agg = _aggregate(controlled)
    result = {"command": "python scripts/target_density_summary.py " + shlex.join(sys.argv[1:] if argv is None else argv),
              "git_revisions": sorted({r["git_rev"] for r in controlled + fixed if r["git_rev"]}),
              "seeds": sorted({r["seed"] for r in controlled}), "tolerance": args.tolerance,
              "margin_pp": args.margin, "fixed_accuracy_grows_with_density": _monotone(fixed),
              "summary": agg, "controlled": controlled,
              "fixed": [{k: v for k, v in f.items() if k != "curve"} for f in fixed],
              "fixed_summary": _fixed_table(fixed)}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.parent / f"{out.name}.json", json.dumps(result, indent=1) + "\n")
    _plot(controlled, fixed, out / "density.png")
    print("\n".join(_tables(agg, controlled, fixed)))
    print(f"\nrevisions: {result['git_revisions']}; fixed-λ accuracy grows with density: "
          f"{result['fixed_accuracy_grows_with_density']}")
    return 0


def _plot(rows: list[dict], fixed: list[dict], path: Path) -> None:
    """N_total against epoch, one panel per optimizer: every seed of every target (solid), the
    scheduled target (dotted) and the fixed-λ runs of seed 0 (grey)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig = Figure(figsize=(11.0, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, opt in zip(axes, ("linbreg", "adabreg")):
        for i, label in enumerate(lb for lb in labels if any(r["label"] == lb and r["optimizer"] == opt for r in rows)):
            runs = [r for r in rows if r["label"] == label]
            color = f"C{i % 10}"
            for j, r in enumerate(runs):
                c = r["curve"]
                ax.plot(c["epoch"], [100 * d for d in c["N_total"]], color=color, lw=1.2, alpha=0.8,
                        label=f"{label} ({len(runs)} seed{'s' * (len(runs) > 1)})" if j == 0 else None)
                if j == 0 and any(t is not None for t in c["target"]):
                    ax.plot(c["epoch"], [100 * t for t in c["target"]], color=color, lw=1, ls=":")
        for f in fixed:
            if f["optimizer"] == opt and f["seed"] == 0:
                c = f["curve"]
                ax.plot(c["epoch"], [100 * d for d in c["N_total"]], color="0.6", lw=1, ls="--")
                ax.annotate(f["label"].split(" ", 1)[1], (c["epoch"][-1], 100 * c["N_total"][-1]), fontsize=7,
                            color="0.4", xytext=(2, 0), textcoords="offset points", va="center")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks([0.25, 0.5, 1, 2, 5, 10, 20])
        ax.set_title({"linbreg": "LinBreg", "adabreg": "AdaBreg"}[opt]
                     + " — N_total (dotted: scheduled target; grey: fixed λ, seed 0)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("non-zero weights (%)")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    raise SystemExit(main())
