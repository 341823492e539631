"""Tables, JSON and plots of ``bregman.report`` from hand-made run directories."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bregman import report

PNG = b"\x89PNG\r\n\x1a\n"
RESULTS = Path(__file__).resolve().parents[1] / "results"
# runs_dir holds a run still writing its last metrics line: read back, it warns (tested once below)
pytestmark = pytest.mark.filterwarnings("ignore:.*metrics.jsonl. the last line:UserWarning")
LINBREG, SGD = "LinBreg λ=1e-1", "SGD"


def _epoch(e, *, n_total, val, train, n_conv=None, l1=100.0):
    return {"epoch": e, "train_loss": 1.0 / e, "train_acc": train, "val_loss": 1.1 / e, "val_acc": val,
            "N_total": n_total, "N_linear": n_total, "N_conv": n_conv,
            "active_neurons": {"fc1.weight": 10 * e, "fc2.weight": 5 * e}, "l1_norm": l1 * e,
            "lr": 0.1, "seconds": 1.0}


def _write_run(d, metrics, summary=None, config=None, partial_line=False):
    d.mkdir(parents=True)
    text = "".join(json.dumps(m) + "\n" for m in metrics)
    (d / "metrics.jsonl").write_text(text + ('{"epoch": 9, "val' if partial_line else ""), encoding="utf-8")
    if summary is not None:
        (d / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    if config is not None:
        (d / "config.toml").write_text(config, encoding="utf-8")


def _summary(name, label, seed, metrics, *, test, paper=None, finished=True, rev="abc1234"):
    best = max(range(len(metrics)), key=lambda i: (metrics[i]["val_acc"], i))
    b, last = metrics[best], metrics[-1]
    keys = ("N_total", "N_linear", "N_conv", "train_acc", "val_acc", "l1_norm")
    s = {"name": name, "label": label, "seed": seed, "optimizer": "linbreg", "best_epoch": b["epoch"],
         "epochs": 3, "epochs_done": len(metrics), "best_val_acc": b["val_acc"], "test_acc": test,
         "test_loss": 0.1, "train_acc": b["train_acc"], "N_total": b["N_total"], "N_linear": b["N_linear"],
         "N_conv": b["N_conv"], "final": {k: last[k] for k in keys}, "wall_time": 3.0, "git_rev": rev,
         "command": "bregman train", "finished": finished}
    if paper:
        s["paper"] = paper
    return s


def _table(md, heading):
    """The Markdown table under ``heading`` as a list of {header: cell}."""
    lines = md.splitlines()
    start = lines.index(heading)
    end = next((i for i, ln in enumerate(lines[start:]) if ln.startswith("|")), 0)
    rows = []
    for ln in lines[start + end:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, r)) for r in body]


BEST = "## At the best-validation checkpoint"


@pytest.fixture
def runs_dir(tmp_path):
    """fig2/{linbreg,sgd}/seed{0,1}: LinBreg (an MLP: N_conv null) and SGD (N_conv logged), 3 epochs;
    SGD seed 1 is still training: 2 epochs, no summary.json yet, only its saved config."""
    root = tmp_path / "runs" / "fig2"
    lin = {0: [_epoch(1, n_total=0.02, val=0.90, train=0.91), _epoch(2, n_total=0.06, val=0.96, train=0.97),
               _epoch(3, n_total=0.10, val=0.97, train=0.98)],
           1: [_epoch(1, n_total=0.03, val=0.91, train=0.92), _epoch(2, n_total=0.12, val=0.975, train=0.99),
               _epoch(3, n_total=0.14, val=0.975, train=1.00)]}
    for seed, ms in lin.items():
        _write_run(root / "linbreg" / f"seed{seed}", ms,
                   _summary("fig2-linbreg", LINBREG, seed, ms, test=0.96 + 0.01 * seed,
                            paper={"N_total": 11.0, "val_acc": 97.5}))
    sgd0 = [_epoch(e, n_total=1.0, n_conv=1.0, val=0.9 + 0.02 * e, train=0.95 + 0.01 * e) for e in (1, 2, 3)]
    _write_run(root / "sgd" / "seed0", sgd0, _summary("fig2-sgd", SGD, 0, sgd0, test=0.97, rev="def5678"))
    sgd1 = [_epoch(e, n_total=1.0, n_conv=0.5 * e, val=0.95, train=0.9) for e in (1, 2)]
    config = 'name = "fig2-sgd"\nseed = 1\nepochs = 3\ndata_root = "none"\n'
    _write_run(root / "sgd" / "seed1", sgd1, config=config, partial_line=True)
    return tmp_path / "runs"


def test_load_runs_finds_nested_runs_in_natural_order(runs_dir):
    with pytest.warns(UserWarning, match=r"seed1/metrics\.jsonl: the last line \(3\) is incomplete"):
        runs = report.load_runs([runs_dir])
    assert [(r.name, r.seed, r.finished) for r in runs] == [
        ("fig2-linbreg", 0, True), ("fig2-linbreg", 1, True), ("fig2-sgd", 0, True), ("fig2-sgd", 1, False)]
    assert len(runs[3].metrics) == 2  # the half-written last line is skipped
    assert runs[3].epochs == 3 and runs[3].epochs_done == 2
    # A run given twice (itself and via its parent) is read once.
    assert len(report.load_runs([runs_dir / "fig2" / "sgd" / "seed0", runs_dir])) == 4


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "no run directory"),
    (lambda p: None, "no such run directory"),
])
def test_load_runs_errors_name_the_path(tmp_path, make, message):
    path = tmp_path / "empty"
    make(path)
    with pytest.raises(FileNotFoundError, match=message) as err:
        report.load_runs([path])
    assert str(path) in str(err.value)


def test_malformed_metrics_line_is_an_error_with_its_line(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n{"epoch": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        report.load_runs(d)


def test_aggregate(runs_dir):
    lin, sgd = report.aggregate(report.load_runs(runs_dir))
    assert (lin.label, lin.seeds, lin.n_unfinished) == (LINBREG, (0, 1), 0)
    assert (lin.epochs, lin.epochs_done) == (3, (3, 3))
    assert lin.best["N_total"].mean == pytest.approx(0.12)
    assert lin.best["N_total"].std == pytest.approx(math.sqrt(2 * 0.02**2))  # ddof = 1
    assert lin.best["N_conv"] is None
    assert lin.final["l1_norm"].mean == pytest.approx(300.0)
    assert lin.paper == {"N_total": 11.0, "val_acc": 97.5}
    # The run without summary joins its label through the experiment name; its best epoch comes
    # from the metrics (last of the equal val accuracies: epoch 2, N_conv 1.0); no test accuracy.
    assert sgd.label == SGD and sgd.seeds == (0, 1) and sgd.n_unfinished == 1 and sgd.epochs_done == (2, 3)
    assert sgd.best["N_conv"].mean == pytest.approx(1.0) and sgd.best["N_conv"].std == pytest.approx(0.0)
    assert sgd.best["test_acc"] == report.Stat(0.97, None, 1)
    assert sgd.final["N_conv"].mean == pytest.approx(1.0)  # (1.0 + 1.0) / 2 at epochs 3 and 2


def test_write_report(runs_dir, tmp_path):
    out = tmp_path / "out"
    result = report.write_report([runs_dir], out, title="Figure 2", command="bregman report runs")
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Figure 2\n")
    assert "Generated by `bregman report runs` from 4 runs." in md
    assert "`abc1234` (2 runs), `def5678` (1 run)" in md
    assert LINBREG in md and SGD in md
    assert "12.00 ± 2.83" in md  # N_total of LinBreg: 10 % and 14 %
    assert "96.50 ± 0.71" in md  # test accuracy of LinBreg: 96 % and 97 %
    assert "97.00 ± –" in md  # SGD's test accuracy: one finished seed
    assert "2 (1 unfinished)" in md and "2–3/3" in md
    lin, sgd = _table(md, BEST)
    assert list(lin) == ["label", "seeds", "epochs", "N_total %", "paper N_total %", "N_linear %", "N_conv %",
                         "val acc %", "paper val acc %", "test acc %", "train acc %"]
    assert (lin["label"], lin["N_total %"], lin["paper N_total %"], lin["paper val acc %"]) == (
        LINBREG, "12.00 ± 2.83", "11", "97.5")
    assert (lin["N_conv %"], sgd["paper N_total %"]) == ("–", "–")

    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == result
    assert [r["label"] for r in result["rows"]] == [LINBREG, SGD]
    assert result["rows"][0]["best"]["N_total"]["mean"] == pytest.approx(0.12)
    runs = [(r["label"], r["seed"]) for r in result["runs"]]
    assert runs == [(LINBREG, 0), (LINBREG, 1), (SGD, 0), (SGD, 1)]
    assert result["runs"][3]["summary"] is None

    assert (out / "curves.png").read_bytes()[:8] == PNG
    assert not (out / "active_neurons.png").exists()  # not the denoising experiment


def test_columns_null_in_every_row_are_dropped(runs_dir, tmp_path):
    report.write_report([runs_dir / "fig2" / "linbreg"], tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "N_conv" not in md and "N_linear %" in md
    assert md.startswith("# Results: fig2-linbreg\n")


def test_unfinished_summary_and_denoising_neurons(tmp_path):
    ms = [{"epoch": e, "train_loss": 0.1 / e, "val_loss": 0.1 / e, "val_ssim": 0.8 + 0.01 * e,
           "N_total": 0.01 * e, "N_linear": 0.01 * e,
           "active_neurons": {f"layers.{i}.weight": 8 * e + i for i in range(6)}}
          for e in range(1, 4)]
    # As the training loop writes it for the denoising task (score "ssim"), mid-training.
    summary = {"name": "mnist-denoise", "seed": 3, "epochs": 100, "epochs_done": 3, "best_epoch": 3,
               "best_val_ssim": 0.83, "train_ssim": 0.84, "N_total": 0.03, "N_linear": 0.03, "N_conv": None,
               "l1_norm": 1.0, "test_ssim": 0.912, "finished": False, "final": {"N_total": 0.03},
               "paper": {"test_ssim": 0.93, "N_total": 9.0}, "extra": {"test_psnr": 21.31}}
    _write_run(tmp_path / "run", ms, summary)
    result = report.write_report(tmp_path / "run", tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    (row,) = _table(md, BEST)
    # No label: the experiment name stands in.
    assert (row["label"], row["seeds"], row["epochs"]) == ("mnist-denoise", "1 (1 unfinished)", "3/100")
    assert (row["val SSIM"], row["test SSIM"], row["paper test SSIM"], row["paper N_total %"]) == (
        "0.830 ± –", "0.912 ± –", "0.93", "9")
    assert row["test psnr"] == "21.3 ± –" and "val acc %" not in row
    assert result["rows"][0]["best"]["test_ssim"] == {"mean": 0.912, "std": None, "n": 1}
    assert (tmp_path / "out" / "active_neurons.png").read_bytes()[:8] == PNG


def test_plot_active_neurons_skips_missing_epochs(runs_dir, tmp_path):
    run = report.load_runs(runs_dir / "fig2" / "linbreg" / "seed0")[0]
    path = report.plot_active_neurons(run, tmp_path / "n.png", epochs=[1, 3, 50])
    assert path.read_bytes()[:8] == PNG
    bare = report.Run(tmp_path, ({"epoch": 1},))
    with pytest.raises(ValueError, match="no active_neurons"):
        report.plot_active_neurons(bare, tmp_path / "m.png")


def test_import_is_light():
    code = ("import sys, bregman.report; "
            "print(sorted(m for m in ('matplotlib', 'bregman.train', 'bregman.data') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_report_json_completes_a_table_with_new_runs(runs_dir, tmp_path):
    """An earlier report.json stands in for run directories that are gone: its stored summaries
    come back as rows (same numbers), next to runs read from disk."""
    first = tmp_path / "first"
    report.write_report([runs_dir / "fig2" / "linbreg"], first)
    rebuilt = report.write_report([first / "report.json", runs_dir / "fig2" / "sgd"], tmp_path / "both")
    old = json.loads((first / "report.json").read_text(encoding="utf-8"))
    assert [r["label"] for r in rebuilt["rows"]] == [LINBREG, SGD]
    assert rebuilt["rows"][0]["best"] == old["rows"][0]["best"]
    stored = set(old["runs"][0]["summary"]["final"])  # the last epoch's numbers a summary keeps
    assert {k: v for k, v in rebuilt["rows"][0]["final"].items() if k in stored} == {
        k: v for k, v in old["rows"][0]["final"].items() if k in stored}
    assert (tmp_path / "both" / "curves.png").read_bytes()[:8] == PNG
    # Given twice, a stored run counts once.
    again = report.write_report([first / "report.json", first / "report.json"], tmp_path / "again")
    assert again["n_runs"] == 2
    # A stored run whose directory is still on disk is read from there (newer numbers, curves).
    stored = json.loads((first / "report.json").read_text(encoding="utf-8"))
    stored["runs"][0]["summary"]["test_acc"] = 0.0  # stale
    (first / "report.json").write_text(json.dumps(stored), encoding="utf-8")
    assert report.load_runs([first / "report.json"])[0].summary["test_acc"] == pytest.approx(0.96)
    assert report.load_runs([first / "report.json"])[0].metrics
    # Once the directories are gone, the stored summaries stand in for them.
    import shutil

    shutil.rmtree(runs_dir / "fig2" / "linbreg")
    gone = report.write_report([first / "report.json"], tmp_path / "gone")
    assert gone["rows"][0]["best"]["N_total"] == old["rows"][0]["best"]["N_total"]
    assert gone["rows"][0]["best"]["test_acc"]["mean"] == pytest.approx((0.0 + 0.97) / 2)  # the stale one
    assert all(not r.metrics for r in report.load_runs([first / "report.json"]))


def test_a_json_that_is_no_report_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="notes.json.*is not a report.json"):
        report.load_runs([bad])


def test_a_failed_report_json_write_leaves_the_old_report_intact(runs_dir, tmp_path):
    """The incremental workflow (an earlier report.json plus new runs, into the same folder) with a
    file size limit (``ulimit -f``) that the new report.json exceeds: one line of error, and the
    old report, its Markdown and its plot are as they were, with no temporary file left."""
    out = tmp_path / "rep"
    first = report.write_report([runs_dir / "fig2" / "linbreg"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    limit = len(json.dumps(first, indent=2, ensure_ascii=False)) + 200  # the new one, with SGD, is longer
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from bregman.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "report", str(out / "report.json"), str(runs_dir / "fig2" / "sgd"),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if "warning" not in line]
    assert len(err) == 1 and err[0].startswith(f"bregman: error: cannot write {out / 'report.json'} (File too large)")
    assert "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("file, text, message", [
    ("summary.json", "[1, 2]", r"summary\.json holds a JSON list, not an object"),
    ("summary.json", '"done"', r"summary\.json holds a JSON str, not an object"),
    ("metrics.jsonl", '{"epoch": 1}\n[1]\n{"epoch": 2}\n', r"metrics\.jsonl:2: a JSON list, not an object"),
])
def test_run_files_of_the_wrong_json_type_are_errors_naming_them(tmp_path, file, text, message):
    d = tmp_path / "run"
    d.mkdir()
    (d / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (d / file).write_text(text)
    with pytest.raises(ValueError, match=message):
        report.load_runs(d)


@pytest.mark.parametrize("stored", sorted(RESULTS.glob("*/report.json")), ids=lambda p: p.parent.name)
def test_committed_reports_reload_to_the_same_tables(stored, tmp_path):
    """``bregman report results/X/report.json`` (same title and command) writes the committed
    ``report.md`` byte for byte, up to the plot list: a report.json keeps the runs' summaries, not
    the per-epoch curves a plot of active neurons is drawn from."""
    rep = json.loads(stored.read_text(encoding="utf-8"))
    report.write_report([stored], tmp_path, title=rep["title"], command=rep["command"])

    def tables(md: str) -> str:
        return md.partition("\n## Plots\n")[0]

    committed = (stored.parent / "report.md").read_text(encoding="utf-8")
    assert tables((tmp_path / "report.md").read_text(encoding="utf-8")) == tables(committed)
    assert "## At the best-validation checkpoint" in tables(committed)
