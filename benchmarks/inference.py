"""Inference speed and file size of the paper's sparse nets: dense, compacted, compacted + sparse.

    python benchmarks/inference.py [--models mlp convnet denoise_mlp] [--rounds 5] [--threads 1]
        [--sparse-below 0.1] [--run convnet=RUN_DIR]... [--json results/inference.json]

For each model, at the structure of the committed runs (below), in PyTorch and in onnxruntime:

* latency: the median time of one batch-1 forward pass;
* throughput: images per second at batch 256 (median batch time);
* file bytes: the ONNX file (dense; compacted; compacted with sparse initializers) and the
  PyTorch state dict (dense; compacted; compacted with ``SparseLinear`` weights in CSR);

for three variants: the dense net as trained (``dense``), :func:`bregman.compact.compact`
(``compact``), and compact with the linear layers of density ≤ ``--sparse-below`` stored and run
in ``torch.sparse_csr`` (``compact+csr``, PyTorch only: ONNX has no sparse matmul, and sparse
initializers are made dense when onnxruntime loads the file). Variants are timed in interleaved
rounds; every ratio is against PyTorch's dense net in the same round (median over rounds).

A sweep of one linear layer (dense ``F.linear`` against CSR) over densities says from which
density on the sparse format pays on this CPU, at batch 1 and 256.

Structure (checkpoints are not committed, so weights are random with the committed runs'
structure; ``--run NAME=RUN_DIR`` adds a trained run's best model, reported as ``NAME, trained``):

* ``mlp``: Fig. 2, LinBreg λ = 0.1 (``results/mnist_fig2``): N_total of the three seeds' mean,
  unstructured, the same density in every layer;
* ``convnet``: Table 2 LinBreg, seed 0 (``results/fmnist_table2``): 9 of 64 conv1 filters (the
  Fig. 1 analogue at epoch 30), the other N_conv · 4,160 non-zero kernels at random places in conv2,
  linear weights unstructured at N_linear in fc1 and fc2;
* ``denoise_mlp``: the row-sparse AdaBreg run (``results/mnist_denoise.md``): 460, 162, 130, 61, 222,
  483 non-zero rows in fc1…fc6, dense rows.

The CPU model and SIMD flags are printed and recorded. Timing on a shared machine is noisy: read
the ratios, which are paired within a round.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimizer_step import cpu_info, git_revision  # noqa: E402  (the machine, the revision)

from bregman._atomic import write_atomic  # noqa: E402
from bregman.compact import compact, count_parameters  # noqa: E402
from bregman.export import export_model, load_exported  # noqa: E402
from bregman.models import create_model  # noqa: E402

BATCH = 256
#: images per model (C×H×W)
SHAPES = {"mlp": (1, 28, 28), "convnet": (1, 28, 28), "denoise_mlp": (1, 28, 28)}
#: the committed denoiser's non-zero rows per layer (results/mnist_denoise.md, epoch 100)
DENOISE_ROWS = (460, 162, 130, 61, 222, 483)
#: active conv1 filters of the Table 2 LinBreg run at epoch 30 (results/fmnist_table2.md, Fig. 1)
CONVNET_CONV1_FILTERS = 9
SWEEP_DENSITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
SWEEP_SHAPES = ((784, 784), (200, 784), (128, 1024))  # (out, in): denoiser, MLP fc1, ConvNet fc1


# -- the nets ------------------------------------------------------------------------------------
def _runs(report: str, label: str) -> list[dict[str, Any]]:
    rows = json.loads((ROOT / "results" / report / "report.json").read_text())["runs"]
    found = [r["summary"] for r in rows if r["label"] == label]
    if not found:
        raise SystemExit(f"no run labelled {label!r} in results/{report}/report.json")
    return found


def _mask_(w: torch.Tensor, density: float, g: torch.Generator) -> None:
    """Keep exactly round(density · numel) entries of ``w`` (at random places), zero the rest."""
    keep = torch.randperm(w.numel(), generator=g)[: round(density * w.numel())]
    mask = torch.zeros(w.numel(), dtype=torch.bool)
    mask[keep] = True
    w.mul_(mask.view_as(w))


def mlp_net(g: torch.Generator) -> tuple[nn.Module, dict[str, Any]]:
    runs = _runs("mnist_fig2", "LinBreg λ=1e-1")
    density = statistics.mean(r["N_total"] for r in runs)
    model = create_model("mlp")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                _mask_(m.weight, density, g)
    return model, {"source": "results/mnist_fig2 (LinBreg λ=1e-1, mean of seeds)", "N_total": density}


def convnet_net(g: torch.Generator) -> tuple[nn.Module, dict[str, Any]]:
    run = next(r for r in _runs("fmnist_table2", "Bregman / LinBreg") if r["seed"] == 0)
    model = create_model("convnet")
    f = model.features
    n_kernels = round(run["N_conv"] * (f.conv1.out_channels + f.conv2.out_channels * f.conv2.in_channels))
    with torch.no_grad():
        off = torch.randperm(f.conv1.out_channels, generator=g)[CONVNET_CONV1_FILTERS:]
        f.conv1.weight[off] = 0
        alive = torch.ones(f.conv2.weight.shape[:2])  # one entry per 5×5 kernel
        _mask_(alive, (n_kernels - CONVNET_CONV1_FILTERS) / alive.numel(), g)
        f.conv2.weight.mul_(alive[..., None, None])
        for fc in (model.classifier.fc1, model.classifier.fc2):
            _mask_(fc.weight, run["N_linear"], g)
    return model, {"source": "results/fmnist_table2 (Bregman / LinBreg, seed 0)", "N_conv": run["N_conv"],
                   "N_linear": run["N_linear"], "conv1_filters": CONVNET_CONV1_FILTERS, "kernels": n_kernels}


def denoise_net(g: torch.Generator) -> tuple[nn.Module, dict[str, Any]]:
    model = create_model("denoise_mlp")
    with torch.no_grad():
        for l, rows in enumerate(DENOISE_ROWS, start=1):
            w = getattr(model.layers, f"fc{l}").weight
            w[torch.randperm(w.shape[0], generator=g)[rows:]] = 0
    return model, {"source": "results/mnist_denoise.md (rows, epoch 100)", "rows": list(DENOISE_ROWS)}


NETS: dict[str, Callable[[torch.Generator], tuple[nn.Module, dict[str, Any]]]] = {
    "mlp": mlp_net, "convnet": convnet_net, "denoise_mlp": denoise_net}


def run_net(name: str, run_dir: str) -> tuple[nn.Module, dict[str, Any]]:
    """The best-validation model of a finished run (plain layers)."""
    from bregman.train.checkpoint import load_checkpoint

    ck = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    best = ck.get("best") or {}
    model = create_model(name)
    model.load_state_dict(best.get("state") or ck["model"])
    metrics = best.get("metrics") or {}
    return model, {"source": f"trained run, best epoch {best.get('epoch')} ({ck['config']['name']})",
                   **{k: metrics.get(k) for k in ("N_total", "N_linear", "N_conv", "active_neurons", "val_acc")}}


def structure(model: nn.Module) -> dict[str, Any]:
    """Per layer: its shape and fraction of non-zero weights."""
    return {n: {"shape": list(m.weight.shape), "density": m.weight.count_nonzero().item() / m.weight.numel()}
            for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


# -- timing ----------------------------------------------------------------------------------------
def _median_time(fn: Callable[[], Any], calls: int) -> float:
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _engines(variants: dict[str, nn.Module], onnx_files: dict[str, Path]) -> dict[str, Callable]:
    runners: dict[str, Callable] = {}
    for v, m in variants.items():
        runners[f"pytorch {v}"] = m
    for v, path in onnx_files.items():
        runners[f"onnxruntime {v}"] = load_exported(path)
    return runners


def time_engines(runners: dict[str, Callable], shape: tuple[int, ...], rounds: int, calls1: int,
                 calls256: int) -> dict[str, dict[str, float]]:
    x1, xb = torch.rand(1, *shape), torch.rand(BATCH, *shape)
    lat: dict[str, list[float]] = {k: [] for k in runners}
    thr: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, run in runners.items():
            with torch.inference_mode():
                lat[k].append(_median_time(lambda: run(x1), calls1))
                thr[k].append(BATCH / _median_time(lambda: run(xb), calls256))
    out = {}
    for k in runners:
        # paired: each round's ratio against that round's dense net, median over rounds; against
        # PyTorch's dense net, and against the same engine's (what compaction alone buys there)
        own = k.split(" ")[0] + " dense"
        out[k] = {"latency_ms": 1e3 * statistics.median(lat[k]), "throughput_img_s": statistics.median(thr[k])}
        for suffix, base in (("", "pytorch dense"), ("_same_engine", own)):
            out[k]["latency_speedup" + suffix] = statistics.median(b / a for a, b in zip(lat[k], lat[base]))
            out[k]["throughput_speedup" + suffix] = statistics.median(a / b for a, b in zip(thr[k], thr[base]))
    return out


def csr_sweep(rounds: int, g: torch.Generator) -> list[dict[str, Any]]:
    """dense F.linear time / CSR time for one layer, by density and batch (> 1: CSR pays)."""
    from bregman.compact import SparseLinear

    rows = []
    for out_f, in_f in SWEEP_SHAPES:
        for d in SWEEP_DENSITIES:
            lin = nn.Linear(in_f, out_f)
            with torch.no_grad():
                _mask_(lin.weight, d, g)
            sp = SparseLinear.from_dense(lin)
            for batch in (1, BATCH):
                x = torch.rand(batch, in_f, generator=g)
                ratios = []
                with torch.inference_mode():
                    for _ in range(rounds):
                        td = _median_time(lambda: F.linear(x, lin.weight, lin.bias), 50 if batch == 1 else 10)
                        ts = _median_time(lambda: sp(x), 50 if batch == 1 else 10)
                        ratios.append(td / ts)
                rows.append({"shape": [out_f, in_f], "density": d, "batch": batch,
                             "csr_speedup": statistics.median(ratios)})
    return rows


def pays_from(rows: list[dict[str, Any]], shape: list[int], batch: int) -> float | None:
    """The largest swept density at and below which CSR is faster (None: at none)."""
    ok = None
    for r in sorted((r for r in rows if r["shape"] == shape and r["batch"] == batch), key=lambda r: r["density"]):
        if r["csr_speedup"] <= 1.0:
            break
        ok = r["density"]
    return ok


# -- sizes -----------------------------------------------------------------------------------------
def state_bytes(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def bench_model(name: str, model: nn.Module, info: dict[str, Any], args, tmp: Path) -> dict[str, Any]:
    shape = SHAPES[name]
    model.eval()
    example = torch.rand(8, *shape)
    small = compact(model, example)
    sparse = compact(model, example, sparse_below=args.sparse_below)
    variants = {"dense": model, "compact": small, "compact+csr": sparse}
    onnx = {"dense": tmp / f"{name}-dense.onnx", "compact": tmp / f"{name}-compact.onnx"}
    export_model(model, example, onnx["dense"])
    export_model(small, example, onnx["compact"])
    export_model(small, example, tmp / f"{name}-compact-sparse.onnx", sparse_weights=True)
    x = torch.rand(64, *shape)
    with torch.inference_mode():
        want = model(x.clone())
        agree = {v: (m(x.clone()) - want).abs().max().item() for v, m in variants.items()}
    times = time_engines(_engines(variants, onnx), shape, args.rounds, args.calls1, args.calls256)
    onnx_bytes = {"dense": onnx["dense"].stat().st_size, "compact": onnx["compact"].stat().st_size,
                  "compact+sparse-initializers": (tmp / f"{name}-compact-sparse.onnx").stat().st_size}
    pt_bytes = {v: state_bytes(m) for v, m in variants.items()}
    return {
        "structure": info, "layers": structure(model), "compact_layers": structure(small),
        "parameters": {v: count_parameters(m) for v, m in variants.items()},
        "max_abs_diff_vs_dense": agree,
        "onnx_bytes": onnx_bytes, "state_dict_bytes": pt_bytes,
        "file_ratio_onnx": onnx_bytes["dense"] / min(onnx_bytes["compact"], onnx_bytes["compact+sparse-initializers"]),
        "file_ratio_state_dict": pt_bytes["dense"] / min(pt_bytes["compact"], pt_bytes["compact+csr"]),
        "timing": times,
    }


# -- report ----------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    lines = ["| model | engine, variant | params | latency b=1 (ms) | speed-up | throughput b=256 (img/s) | "
             "speed-up | (same engine) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results["models"].items():
        for engine, t in r["timing"].items():
            variant = engine.split(" ", 1)[1]
            lines.append(f"| {name} | {engine} | {r['parameters'][variant]:,} | {t['latency_ms']:.3f} | "
                         f"{t['latency_speedup']:.2f}× | {t['throughput_img_s']:,.0f} | {t['throughput_speedup']:.2f}× | "
                         f"{t['throughput_speedup_same_engine']:.2f}× |")
    lines += ["", "| model | ONNX dense | ONNX compact | + sparse initializers | ratio | state dict dense | "
              "compact | compact+csr | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["models"].items():
        o, p = r["onnx_bytes"], r["state_dict_bytes"]
        lines.append(f"| {name} | {o['dense']:,} | {o['compact']:,} | {o['compact+sparse-initializers']:,} | "
                     f"{r['file_ratio_onnx']:.2f}× | {p['dense']:,} | {p['compact']:,} | {p['compact+csr']:,} | "
                     f"{r['file_ratio_state_dict']:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls1", type=int, default=100, help="batch-1 calls per round (median)")
    ap.add_argument("--calls256", type=int, default=10, help="batch-256 calls per round (median)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sparse-below", type=float, default=0.1, help="CSR for linear layers of at most this density")
    ap.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                    help="also a finished run's best model (reported as 'NAME, trained')")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = dict(r.split("=", 1) for r in args.run)
    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores); SIMD: {' '.join(cpu['simd_flags'])}")
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), threads {args.threads}")
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    import onnxruntime

    results: dict[str, Any] = {
        "command": "python benchmarks/inference.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_rev": git_revision(), "cpu": cpu, "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "onnxruntime": onnxruntime.__version__,
        "threads": args.threads, "seed": args.seed, "rounds": args.rounds, "batch": BATCH,
        "sparse_below": args.sparse_below, "models": {},
    }
    jobs = [(name, name, lambda n=name: NETS[n](g)) for name in args.models]
    jobs += [(f"{name}, trained", name, lambda n=name, d=d: run_net(n, d)) for name, d in runs.items()]
    with tempfile.TemporaryDirectory() as tmp:
        for key, name, build in jobs:
            model, info = build()
            print(f"\n{key}: {info['source']}", flush=True)
            r = bench_model(name, model, info, args, Path(tmp))
            results["models"][key] = r
            for engine, t in r["timing"].items():
                print(f"  {engine:26s} latency {t['latency_ms']:8.3f} ms ({t['latency_speedup']:5.2f}×)  "
                      f"throughput {t['throughput_img_s']:10,.0f} img/s ({t['throughput_speedup']:5.2f}×)", flush=True)
            print(f"  parameters {r['parameters']}; ONNX bytes {r['onnx_bytes']}; state dict bytes "
                  f"{r['state_dict_bytes']}", flush=True)
    print("\nCSR against dense, one linear layer (ratio > 1: CSR faster):")
    sweep = csr_sweep(args.rounds, g)
    results["csr_sweep"] = sweep
    results["csr_pays_up_to_density"] = {f"{s[0]}x{s[1]} batch {b}": pays_from(sweep, list(s), b)
                                         for s in SWEEP_SHAPES for b in (1, BATCH)}
    for r in sweep:
        print(f"  {r['shape'][0]}×{r['shape'][1]} density {r['density']:.2f} batch {r['batch']:3d}: "
              f"{r['csr_speedup']:.2f}×")
    print("CSR pays up to density:", results["csr_pays_up_to_density"])
    print()
    print(table(results))
    if args.json:
        text = json.dumps(results, indent=1) + "\n"
        write_atomic(args.json, lambda f: f.write(text.encode()))
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
