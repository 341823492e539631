"""Summarize the target-density runs (issue 12) into results/target_density.json and a density plot.

Usage (from the repository root, after the sweeps of configs/sweeps/target_density*.toml)::

    python scripts/target_density_summary.py --controlled RUNS/target_density RUNS/target_density_modes \
        RUNS/target_density_cnn --fixed RUNS/target_density_fixed [more fixed-λ run dirs] \
        --out results/target_density

For every controlled run: the target, the density reached at the last epoch, its relative error, the
test accuracy of the best-validation checkpoint (chosen among the epochs after the ramp) and the λ
it ended at. For every controlled run of the MNIST MLP, the fixed-λ runs of the same optimizer and
seed give the reference accuracy at the same density: linear interpolation of test accuracy in log
density between the two fixed-λ runs whose final densities bracket the one reached (none where no
pair brackets it).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from bregman.report import load_runs


def _final(run, key):
    return (run.summary or {}).get("final", {}).get(key, run.metrics[-1].get(key) if run.metrics else None)


def _row(run) -> dict:
    s = run.summary or {}
    last = run.metrics[-1] if run.metrics else {}
    cfg = _config(run)
    return {"label": run.label, "seed": run.seed, "dir": str(run.dir), "optimizer": s.get("optimizer"),
            "model": cfg.get("model"), "mode": cfg.get("target_mode"), "every": cfg.get("target_every"),
            "target": run.target_density, "epochs_done": run.epochs_done, "epochs": run.epochs,
            "finished": run.finished, "N_total": _final(run, "N_total"), "N_conv": _final(run, "N_conv"),
            "N_linear": _final(run, "N_linear"), "test_acc": s.get("test_acc"), "best_epoch": s.get("best_epoch"),
            "best_val_acc": s.get("best_val_acc"), "lam": last.get("lam") or cfg.get("lam"),
            "git_rev": s.get("git_rev"), "curve": {"epoch": [m["epoch"] for m in run.metrics],
                                                   "N_total": [m["N_total"] for m in run.metrics],
                                                   "target": [m.get("target_density") for m in run.metrics]}}


def _config(run) -> dict:
    import tomllib

    path = run.dir / "config.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _interpolate(points: list[tuple[float, float]], d: float) -> float | None:
    """Accuracy at density ``d`` from (density, accuracy) points: linear in log density between the
    nearest bracketing pair; None outside their range."""
    pts = sorted(points)
    for (d0, a0), (d1, a1) in zip(pts, pts[1:]):
        if d0 <= d <= d1:
            w = 0.0 if d1 == d0 else (math.log(d) - math.log(d0)) / (math.log(d1) - math.log(d0))
            return a0 + w * (a1 - a0)
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--controlled", nargs="+", required=True)
    ap.add_argument("--fixed", nargs="+", default=[], metavar="[LABEL=]DIR")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    controlled = [_row(r) for r in load_runs(args.controlled) if r.metrics]
    fixed = []
    for spec in args.fixed:  # DIR, or LABEL=DIR for a run that has no label of its own
        label, _, path = spec.rpartition("=") if "=" in spec and not Path(spec).exists() else ("", "", spec)
        fixed += [dict(_row(r), label=label or r.label) for r in load_runs(path) if r.finished]
    for row in controlled:
        row["rel_error"] = None if row["N_total"] is None else row["N_total"] / row["target"] - 1
        pts = [(f["N_total"], f["test_acc"]) for f in fixed
               if f["optimizer"] == row["optimizer"] and f["seed"] == row["seed"] and f["model"] == row["model"]]
        ref = _interpolate(pts, row["N_total"]) if row["finished"] else None
        row["fixed_lam_test_acc"] = ref
        row["acc_gap_pp"] = None if ref is None or row["test_acc"] is None else 100 * (row["test_acc"] - ref)
    result = {"controlled": controlled, "fixed": [{k: v for k, v in f.items() if k != "curve"} for f in fixed]}
    (out.parent / f"{out.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    _plot(controlled, fixed, out / "density.png")
    print("\n".join(_table(controlled)))
    for row in controlled:
        gap = row["acc_gap_pp"]
        print(f"{row['label']:32s} seed {row['seed']} {row['epochs_done']:>2}/{row['epochs']} ep  target "
              f"{100 * row['target']:5.2f}%  reached {100 * row['N_total']:6.3f}%  "
              f"rel {100 * row['rel_error']:+6.2f}%  test {100 * (row['test_acc'] or math.nan):6.2f}  "
              f"fixed-λ {100 * (row['fixed_lam_test_acc'] or math.nan):6.2f}  gap {gap if gap is None else round(gap, 2)}")
    for f in fixed:
        print(f"fixed {f['label']:22s} seed {f['seed']} N_total {100 * f['N_total']:6.3f}%  test {100 * f['test_acc']:6.2f}")
    return 0


def _pct(x, d=2):
    return "–" if x is None else f"{100 * x:.{d}f}"


def _table(rows: list[dict]) -> list[str]:
    """One Markdown line per label: seeds, epochs, the target, the density reached (mean over seeds)
    and its relative error, test accuracy, the fixed-λ accuracy at that density and the gap."""
    lines = ["| run | seeds | epochs | target % | reached % (last epoch) | rel. error | test acc % | "
             "fixed-λ test acc % at that density | gap pp | λ at the end |", "|" + "---|" * 10]
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == label]

        def mean(key, rs=rs):
            xs = [r[key] for r in rs if r[key] is not None]
            return statistics.fmean(xs) if xs else None

        epochs = sorted({r["epochs_done"] for r in rs})
        lam = rs[0]["lam"]
        lam = ", ".join(f"{v:.3g}" for v in lam.values()) if isinstance(lam, dict) else f"{lam}"
        gap, rel = mean("acc_gap_pp"), mean("rel_error")
        lines.append(f"| {label} | {len(rs)} | {'/'.join(map(str, epochs))}/{rs[0]['epochs']} | "
                     f"{_pct(rs[0]['target'])} | {_pct(mean('N_total'), 3)} | "
                     f"{'–' if rel is None else f'{100 * rel:+.2f} %'} | "
                     f"{_pct(mean('test_acc'))} | {_pct(mean('fixed_lam_test_acc'))} | "
                     f"{'–' if gap is None else f'{gap:+.2f}'} | {lam} |")
    return lines


def _plot(rows: list[dict], fixed: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

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
                ax.plot(c["epoch"], [100 * d for d in c["N_total"]], color=color, lw=1.4,
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
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_yticks([1, 2, 5, 10, 20])
        ax.set_title({"linbreg": "LinBreg", "adabreg": "AdaBreg"}[opt]
                     + " — N_total (dotted: scheduled target; grey: fixed λ)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_ylabel("non-zero weights (%)")
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    raise SystemExit(main())
