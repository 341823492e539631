"""Per-epoch validation loss and density of the charlm-gpt runs, and what is left of the model at the end.

    python scripts/charlm_summary.py RUN_DIR... --out results/charlm

reads each run's ``metrics.jsonl``, ``summary.json`` and last ``checkpoint.pt`` and writes
``charlm.json`` (per run: label, command (the run directory by name), git revision, per-epoch val loss / val acc / N_total /
N_linear, and at the last epoch the density of each kind of weight and the live attention heads)
and ``loss_density.png`` (validation loss and N_total against the epoch).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bregman import metrics
from bregman._atomic import write_atomic
from bregman.models import create_model
from bregman.params import classify


def live_heads(model: torch.nn.Module) -> dict[str, list[int]]:
    """Per attention projection: its head blocks (of head_dim rows, or columns for out_proj) that
    hold a non-zero entry, out of all of them."""
    out = {}
    for info in classify(model):
        if info.kind == "attention":
            w = info.param.detach().ne(0)
            if info.head_axis == 0:  # blocks of head_dim rows
                alive = w.unflatten(0, (-1, info.head_dim)).flatten(1).any(1)
            else:  # blocks of head_dim columns
                alive = w.unflatten(1, (-1, info.head_dim)).any(2).any(0)
            out[info.name] = [int(alive.sum()), alive.numel()]
    return out


def summarize(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((run / "summary.json").read_text())
    ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = create_model("charlm_gpt")
    model.load_state_dict(ck["model"])
    return {
        # the run directory by its name only: no machine's paths in the results
        "label": summary["label"], "command": (summary.get("command") or "").replace(str(run.resolve()), run.name),
        "git_rev": summary.get("git_rev"),
        "seed": summary["seed"], "wall_time_s": summary["wall_time"], "test_loss": summary.get("test_loss"),
        "test_acc": summary.get("test_acc"), "best_epoch": summary["best_epoch"],
        "epochs": [{k: r[k] for k in ("epoch", "train_loss", "val_loss", "val_acc", "N_total", "N_linear")}
                   for r in rows],
        "last": {"kinds": metrics.n_kinds(model), "live_heads": live_heads(model)},
    }


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in runs:
        e = [x["epoch"] for x in r["epochs"]]
        a.plot(e, [x["val_loss"] for x in r["epochs"]], marker="o", label=r["label"])
        b.plot(e, [100 * x["N_total"] for x in r["epochs"]], marker="o", label=r["label"])
    a.set(xlabel="epoch", ylabel="validation loss (nats / character)", title="Validation loss")
    b.set(xlabel="epoch", ylabel="non-zero weights N_total (%)", title="Density", ylim=(0, 102))
    a.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    runs = [summarize(r) for r in args.runs]
    write_atomic(args.out / "charlm.json", lambda f: f.write((json.dumps(runs, indent=1) + "\n").encode()))
    plot(runs, args.out / "loss_density.png")


if __name__ == "__main__":
    main()
