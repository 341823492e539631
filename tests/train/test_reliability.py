"""Nothing lost, no traceback (issue 17): run directories, atomic files, bad input, non-finite numbers.

Training here runs on a tiny fabricated MNIST (60 + 20 random images in the real IDX format,
``verify_data = false``), so each run takes a fraction of a second; the CLI is called in-process
(``bregman.cli.main``) where that proves the point, and as a subprocess where the point is what a
user sees on the console.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bregman import _atomic
from bregman.cli import main
from bregman.train import loop
from bregman.train.config import apply_overrides, config_to_dict, load_config
from bregman.train.loop import TrainingError, train
from bregman.train.rundir import RunDirBusy, RunLock

_IDX_TYPES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">f4"): 0x0D}


def _write_idx(path: Path, array: np.ndarray) -> None:
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = bytes([0, 0, _IDX_TYPES[big.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + big.tobytes())


def _tiny_mnist(root: Path, *, labels: np.ndarray | None = None, images: np.ndarray | None = None) -> Path:
    """60 training and 20 test images of MNIST's format under ``root/MNIST/raw``."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    _write_idx(raw / "train-images-idx3-ubyte",
               rng.integers(0, 256, (60, 28, 28), dtype=np.uint8) if images is None else images)
    _write_idx(raw / "train-labels-idx1-ubyte", rng.integers(0, 10, 60, dtype=np.uint8) if labels is None else labels)
    _write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 28, 28), dtype=np.uint8))
    _write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 20, dtype=np.uint8))
    return root


@pytest.fixture
def tiny(tmp_path):
    """(data root, the ``--set`` overrides of a fast run on it)."""
    root = _tiny_mnist(tmp_path / "data")
    sets = {"data_root": str(root), "verify_data": False, "progress": "off", "threads": 1, "batch_size": 16,
            "eval_batch_size": 64, "epochs": 1}
    return root, sets


def _cfg(sets, **kw):
    return apply_overrides(load_config("mnist-mlp"), {**sets, **kw})


def _argv(sets, **kw):
    return [a for k, v in {**sets, **kw}.items() for a in ("--set", f"{k}={v}")]


def _error(capsys) -> str:
    """The one stderr line of a failed command (no traceback, nothing else)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bregman: error: "), err
    return lines[0]


def _cli(*args, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bregman.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kw)


# ------------------------------------------------------------------------------- 1. atomic files
def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")

    def half_then_fail(f):
        f.write(b"new but not all of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(_atomic.WriteError, match=r"cannot write .*report\.json .*No space left.*intact"):
        _atomic.write_atomic(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_jsonl_appends_and_a_torn_last_line_is_dropped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _atomic.append_line(path, json.dumps({"epoch": 1}))
    with open(path, "a") as f:
        f.write('{"epoch": 2, "val')  # killed half-way through a line
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: the last line \(2\) is incomplete"):
        assert _atomic.read_jsonl(path) == [{"epoch": 1}]
    _atomic.append_line(path, json.dumps({"epoch": 2}))  # the next append starts a fresh line ...
    assert path.read_text().splitlines()[1:] == ['{"epoch": 2, "val', '{"epoch": 2}']
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not JSON .* remove that line"):
        _atomic.read_jsonl(path)  # ... and a torn line in the middle is an error naming it
    path.write_text('{"epoch": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: a JSON list, not an object"):
        _atomic.read_jsonl(path)


def test_a_run_writes_no_temporary_files_and_appends_its_metrics(tiny, tmp_path):
    _, sets = tiny
    train(_cfg(sets, epochs=2), tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [".lock", "checkpoint.pt", "config.toml", "metrics.jsonl", "summary.json"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert all(json.loads(x)["nonfinite_steps"] == 0 for x in lines)


def test_resume_rewrites_metrics_from_the_checkpoint(tiny, tmp_path):
    """Epochs logged after the last checkpoint (checkpoint_every=2, killed in epoch 3) and a torn
    line are dropped on resume; the run then matches an uninterrupted one."""
    _, sets = tiny
    cfg = _cfg(sets, epochs=3, checkpoint_every=2)
    train(cfg, tmp_path / "straight")
    train(apply_overrides(cfg, {"epochs": 2}), tmp_path / "run")
    with open(tmp_path / "run" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_loss": 0.1}\n{"epoch": 4, "tr')
    train(cfg, tmp_path / "run", resume=True)
    drop = ("seconds",)
    got = [{k: v for k, v in json.loads(x).items() if k not in drop}
           for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    want = [{k: v for k, v in json.loads(x).items() if k not in drop}
            for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert got == want


# ------------------------------------------------------------------------- 2. one owner per run
def test_two_concurrent_trains_the_second_fails_and_the_first_is_intact(tiny, tmp_path):
    root, sets = tiny
    out = tmp_path / "run"
    first = _cli("train", "mnist-mlp", *_argv(sets, lam=0.1, epochs=3), "--out", out)
    try:
        deadline = time.monotonic() + 120
        while f"PID {first.pid} " not in ((out / ".lock").read_text() if (out / ".lock").exists() else ""):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)  # hold the first where it is: it owns the directory
        second = subprocess.run([sys.executable, "-m", "bregman.cli", "train", "mnist-mlp",
                                 *_argv(sets, lam=0.001), "--out", str(out)], capture_output=True, text=True)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"bregman: error: {out} is in use by PID {first.pid} on {os.uname().nodename} (train) "
        f"(lock file {out / '.lock'}): wait until it has finished, or choose another --out"]
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["epochs_done"] == 3
    assert "lam = 0.1\n" in (out / "config.toml").read_text()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["config"]["lam"] == 0.1


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path):
    with RunLock(tmp_path / "run", purpose="threshold"):
        with pytest.raises(RunDirBusy, match=rf"in use by PID {os.getpid()} on .* \(threshold\)"):
            RunLock(tmp_path / "run").acquire()
    with RunLock(tmp_path / "run"):  # released: a stale lock file is simply taken over
        pass


@pytest.mark.parametrize("files", [["checkpoint.pt"], ["summary.json"], ["config.toml"], ["kernels.pt"]])
def test_any_run_file_needs_resume_or_overwrite(tiny, tmp_path, capsys, files):
    _, sets = tiny
    out = tmp_path / "run"
    out.mkdir()
    for name in files:
        (out / name).write_text("someone else's")
    assert main(["train", "mnist-mlp", *_argv(sets), "--out", str(out)]) == 2
    err = _error(capsys)
    assert f"{out} already holds a run ({files[0]})" in err and "--overwrite" in err
    assert all((out / name).read_text() == "someone else's" for name in files)  # nothing lost
    assert main(["train", "mnist-mlp", *_argv(sets), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["finished"]


def test_resume_into_another_experiment_refuses_and_says_why(tiny, tmp_path):
    _, sets = tiny
    cfg = _cfg(sets)
    train(cfg, tmp_path / "run")
    with pytest.raises(TrainingError, match=r"it is a run of experiment 'mnist-mlp', not 'other'"):
        train(apply_overrides(cfg, {"name": "other"}), tmp_path / "run", resume=True)
    with pytest.raises(TrainingError, match=r"differs in lam: 0\.1 → 0\.5.*--overwrite"):
        train(apply_overrides(cfg, {"lam": 0.5}), tmp_path / "run", resume=True)


def test_threshold_then_resume_keeps_the_thresh_entry(tiny, tmp_path, capsys):
    from bregman.train.threshold import threshold_run

    _, sets = tiny
    cfg = _cfg(sets)
    train(cfg, tmp_path / "run")
    thresh = threshold_run(tmp_path / "run", 0.5, device="cpu")
    assert main(["train", "mnist-mlp", *_argv(sets), "--out", str(tmp_path / "run"), "--resume"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["thresh"] == thresh and summary["extra"]["thresh_N_total"] == thresh["N_total"]
    # Trained further, the best model changes: the stale entry is dropped, with a warning saying so.
    with pytest.warns(UserWarning, match="thresh entry .* is dropped; run `bregman threshold"):
        train(apply_overrides(cfg, {"epochs": 2}), tmp_path / "run", resume=True)
    assert "thresh" not in json.loads((tmp_path / "run" / "summary.json").read_text())


# ------------------------------------------------------- 3. every message's way forward works
def test_a_corrupt_checkpoint_says_overwrite_and_overwrite_works(tiny, tmp_path, capsys):
    _, sets = tiny
    out = tmp_path / "run"
    assert main(["train", "mnist-mlp", *_argv(sets, epochs=2), "--out", str(out)]) == 0
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["train", "mnist-mlp", *_argv(sets, epochs=3), "--out", str(out), "--resume"]) == 2
    err = _error(capsys)
    assert "checkpoint.pt cannot be read" in err and "pass --overwrite to start it afresh" in err
    assert main(["train", "mnist-mlp", *_argv(sets, epochs=3), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 3
    # A checkpoint without the keys of one: the same way forward.
    torch.save({"model": {}}, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["train", "mnist-mlp", *_argv(sets, epochs=4), "--out", str(out), "--resume"]) == 2
    err = _error(capsys)
    assert "is not a checkpoint written by `bregman train` (it lacks config, optimizer" in err
    assert "--overwrite" in err


def test_after_kill_9_without_checkpoints_both_messages_lead_to_overwrite(tiny, tmp_path, capsys):
    _, sets = tiny
    out = tmp_path / "run"
    proc = _cli("train", "mnist-mlp", *_argv(sets, epochs=10_000, checkpoint_every=0), "--out", out)
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    assert not (out / "checkpoint.pt").exists()
    for extra in ([], ["--resume"]):
        assert main(["train", "mnist-mlp", *_argv(sets), "--out", str(out), *extra]) == 2
        err = _error(capsys)
        assert "without a checkpoint.pt to resume from" in err and "pass --overwrite" in err
        assert "pass --resume" not in err
    assert main(["train", "mnist-mlp", *_argv(sets), "--out", str(out), "--overwrite"]) == 0


def test_a_diverging_run_without_checkpoint_does_not_claim_one(tiny, tmp_path, capsys):
    _, sets = tiny
    out = tmp_path / "run"
    bad = _argv(sets, epochs=20, lr=1e6, optimizer="sgd", init_density=1.0, reg_linear="none", checkpoint_every=0)
    assert main(["train", "mnist-mlp", *bad, "--out", str(out)]) == 2
    err = _error(capsys)
    assert "non-finite training loss" in err and "at epoch " in err and ", step " in err
    assert "no checkpoint was saved yet" in err and "checkpoint of epoch 0" not in err
    assert "lower it (--set lr=...)" in err and "start afresh with --overwrite" in err
    good = _argv(sets, epochs=1, lr=0.1, optimizer="sgd", init_density=1.0, reg_linear="none")
    assert main(["train", "mnist-mlp", *good, "--out", str(out), "--overwrite"]) == 0


def test_resume_with_fewer_epochs_refuses_instead_of_2_of_1(tiny, tmp_path, capsys):
    _, sets = tiny
    out = tmp_path / "run"
    assert main(["train", "mnist-mlp", *_argv(sets, epochs=2), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "mnist-mlp", *_argv(sets, epochs=1), "--out", str(out), "--resume"]) == 2
    assert "it has 2 epochs done, more than epochs=1; set epochs ≥ 2" in _error(capsys)
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 2


# ----------------------------------------------------------------- 7. non-finite at its step
def _inject(model_param: torch.nn.Parameter, at_step: int, value: float):
    """A gradient hook that puts ``value`` into the first entry of the gradient at backward ``at_step``."""
    calls = {"n": 0}

    def hook(grad):
        calls["n"] += 1
        if calls["n"] == at_step:
            grad = grad.clone()
            grad[(0,) * grad.dim()] = value
        return grad

    return model_param.register_hook(hook)


#: the weight that gets the bad entry, and its size, per model
TARGET = {"mlp": ("layers.fc2.weight", 80 * 200), "convnet": ("features.conv2.weight", 64 * 64 * 5 * 5)}


@pytest.fixture
def inject(monkeypatch):
    """``inject(value, at_step)``: every model the loop builds gets that bad gradient entry in its
    ``TARGET`` weight at that backward pass (counted over the whole run)."""
    real = loop.build_model

    def arm(value, at_step):
        def build(cfg, device):
            model = real(cfg, device)
            _inject(dict(model.named_parameters())[TARGET[cfg.model][0]], at_step, value)
            return model

        monkeypatch.setattr(loop, "build_model", build)

    return arm


# (optimizer, model, regularizer of the linear / conv weights, foreach): every regularizer, both paths
PATHS = [("linbreg", "mlp", "l1", True), ("linbreg", "mlp", "l1", False), ("linbreg", "mlp", "rows", True),
         ("linbreg", "mlp", "columns", False), ("adabreg", "mlp", "l1", True), ("adabreg", "mlp", "rows", False),
         ("proxsgd", "mlp", "l1", True), ("sgd", "mlp", "none", True),
         ("linbreg", "convnet", "kernels", True), ("linbreg", "convnet", "filters", False),
         ("adabreg", "convnet", "kernels", False)]


def _path_cfg(sets, optimizer, model, reg, foreach, **kw):
    regs = {"reg_linear": reg} if model == "mlp" else {"model": model, "reg_conv": reg}
    return _cfg(sets, epochs=2, optimizer=optimizer, foreach=foreach, lr=1e-3 if "ada" in optimizer else 0.1,
                **regs, **kw)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("optimizer, model, reg, foreach", PATHS)
def test_a_bad_gradient_stops_the_run_at_its_step(tiny, tmp_path, inject, value, optimizer, model, reg, foreach):
    _, sets = tiny
    cfg = _path_cfg(sets, optimizer, model, reg, foreach)
    inject(value, at_step=4 + 2)  # 4 steps per epoch: epoch 2, step 2
    with pytest.raises(TrainingError) as err:
        train(cfg, tmp_path / "run")
    msg = str(err.value)
    name, size = TARGET[model]
    assert msg.startswith(f"non-finite gradient of {name} (1 of {size} entries non-finite, e.g. {value}) "
                          f"at epoch 2, step 2 of 4; the checkpoint of epoch 1 in {tmp_path / 'run'} is intact")
    assert "--resume --set nonfinite=skip" in msg
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert len(ck["history"]) == 1 and all(torch.isfinite(v).all() for v in ck["model"].values())


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("optimizer, model, reg, foreach", PATHS)
def test_nonfinite_skip_skips_that_step_and_counts_it(tiny, tmp_path, inject, value, optimizer, model, reg, foreach):
    _, sets = tiny
    cfg = _path_cfg(sets, optimizer, model, reg, foreach, nonfinite="skip")
    inject(value, at_step=6)
    train(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["nonfinite_steps"] for r in rows] == [0, 1]
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert all(torch.isfinite(t).all() for s in ck["optimizer"]["state"].values() for t in s.values()
               if isinstance(t, torch.Tensor))


def test_skip_leaves_the_parameters_as_if_the_step_had_not_been(tiny, tmp_path, inject, monkeypatch):
    """nonfinite=skip: the bad step changes nothing, so a run that skips the 2nd of 4 batches ends
    where the same run ends with that batch's update left out by hand."""
    _, sets = tiny
    cfg = _cfg(sets, nonfinite="skip", scheduler="none")
    inject(float("nan"), at_step=2)
    train(cfg, tmp_path / "skipped")
    monkeypatch.undo()
    real_build, calls = loop.build_optimizer, {"n": 0}

    def build(cfg_, groups):  # a clean run whose 2nd optimizer step is dropped
        opt = real_build(cfg_, groups)
        step = opt.step

        def maybe(*a, **k):
            calls["n"] += 1
            return None if calls["n"] == 2 else step(*a, **k)

        opt.step = maybe
        return opt

    monkeypatch.setattr(loop, "build_optimizer", build)
    train(cfg, tmp_path / "dropped")
    a = torch.load(tmp_path / "skipped" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "dropped" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stop_then_resume_with_skip_finishes(tiny, tmp_path, inject):
    _, sets = tiny
    cfg = _cfg(sets, epochs=2)
    inject(float("nan"), at_step=6)
    with pytest.raises(TrainingError, match="--resume --set nonfinite=skip"):
        train(cfg, tmp_path / "run")
    inject(float("nan"), at_step=2)  # the resumed process meets the same bad batch (epoch 2, step 2)
    summary = train(apply_overrides(cfg, {"nonfinite": "skip"}), tmp_path / "run", resume=True)
    assert summary["finished"]
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["nonfinite_steps"] for r in rows] == [0, 1]


def test_every_step_skipped_is_an_error(tiny, tmp_path):
    _, sets = tiny
    cfg = _cfg(sets, epochs=20, lr=1e6, optimizer="sgd", init_density=1.0, reg_linear="none", nonfinite="skip")
    with pytest.raises(TrainingError, match=r"every one of the 4 steps of epoch \d+ had a non-finite") as err:
        train(cfg, tmp_path / "run")
    assert str(err.value).endswith("lower it (--set lr=...) and start afresh with --overwrite")


# ---------------------------------------------- 4, 6, 8. bad input: one line, no traceback
def _run_dir_with(tmp_path, summary=None, metrics='{"epoch": 1, "val_acc": 0.5}\n'):
    d = tmp_path / "runs" / "r"
    d.mkdir(parents=True)
    (d / "metrics.jsonl").write_text(metrics)
    if summary is not None:
        (d / "summary.json").write_text(summary)
    return d


def _a_file(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    return f


def _garbage(tmp_path, name):
    d = tmp_path / "garbage"
    d.mkdir()
    (d / name).write_bytes(b"PK\x03\x04 not a torch file")
    return d


def _kernels(tmp_path, content):
    d = tmp_path / "kern"
    d.mkdir()
    torch.save(content, d / "kernels.pt")
    return d


def _checkpoint(tmp_path, content):
    d = tmp_path / "ck"
    d.mkdir()
    torch.save(content, d / "checkpoint.pt")
    return d


def _mnist_with(tmp_path, **kw):
    return {"data_root": str(_tiny_mnist(tmp_path / "bad", **kw)), "verify_data": False}


def _cifar_with(tmp_path, labels):
    import pickle

    from bregman.data import get_info

    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in get_info("cifar10").md5:
        batch = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return {"data_root": str(tmp_path / "cifar"), "verify_data": False}


# (case id, argv builder (tmp_path, tiny sets) → argv, words the one error line must hold)
BAD_INPUTS = [
    ("train --out is a file", lambda t, s: ["train", "mnist-mlp", *_argv(s), "--out", _a_file(t)],
     ["--out", "a_file is a file, not a folder"]),
    ("train --out below a file", lambda t, s: ["train", "mnist-mlp", *_argv(s), "--out", _a_file(t) / "run"],
     ["--out", "cannot be written"]),
    ("report --out is a file", lambda t, s: ["report", _run_dir_with(t), "--out", _a_file(t)],
     ["--out", "is a file, not a folder"]),
    ("data fetch --root is a file", lambda t, s: ["data", "fetch", "mnist", "--root", _a_file(t)],
     ["--root", "is a file, not a folder"]),
    ("summary.json a list", lambda t, s: ["report", _run_dir_with(t, summary="[1, 2]"), "--out", t / "rep"],
     ["summary.json holds a JSON list, not an object"]),
    ("summary.json not JSON", lambda t, s: ["report", _run_dir_with(t, summary="{"), "--out", t / "rep"],
     ["summary.json is not valid JSON"]),
    ("metrics line a number", lambda t, s: ["report", _run_dir_with(t, metrics="3\n{}\n"), "--out", t / "rep"],
     ["metrics.jsonl:1: a JSON int, not an object"]),
    ("checkpoint without keys", lambda t, s: ["figure", "denoise", _checkpoint(t, {"model": {}}), "--out", t / "f.png"],
     ["checkpoint.pt is not a checkpoint written by `bregman train` (it lacks config)"]),
    ("checkpoint a tensor", lambda t, s: ["figure", "denoise", _checkpoint(t, torch.zeros(3)), "--out", t / "f.png"],
     ["checkpoint.pt is not a checkpoint", "holds a Tensor"]),
    ("kernels.pt empty", lambda t, s: ["figure", "kernels", _kernels(t, {}), "--out", t / "f.png"],
     ["kernels.pt holds no kernel snapshots"]),
    ("kernels.pt 1-D", lambda t, s: ["figure", "kernels", _kernels(t, {0: {"w": torch.zeros(5)}}), "--out", t / "f.png"],
     ["kernels.pt holds no kernel snapshots"]),
    ("kernels.pt garbage", lambda t, s: ["figure", "kernels", _garbage(t, "kernels.pt"), "--out", t / "f.png"],
     ["kernels.pt cannot be read", "train one, or point at its run directory"]),
    ("kernels.pt missing", lambda t, s: ["figure", "kernels", t, "--out", t / "f.png"],
     ["kernels.pt: kernel snapshots are saved by conv-net runs"]),
    ("figure -n 100000", lambda t, s: ["figure", "denoise", t, "--out", t / "f.png", "-n", "100000"],
     ["-n 100000: images per row must be in 1..64"]),
    ("figure --out a folder", lambda t, s: ["figure", "kernels", t, "--out", t],
     ["is a folder: name a PNG file"]),
    ("labels 200", lambda t, s: ["train", "mnist-mlp", *_argv(s, **_mnist_with(t, labels=np.full(60, 200, np.uint8))),
                                 "--out", t / "r"],
     ["train labels", "lie in 200..200, outside the classes 0..9"]),
    ("labels -3", lambda t, s: ["train", "mnist-mlp", *_argv(s, **_mnist_with(t, labels=np.full(60, -3, np.int8))),
                                "--out", t / "r"],
     ["train labels", "lie in -3..-3, outside the classes 0..9"]),
    ("labels float", lambda t, s: ["train", "mnist-mlp", *_argv(s, **_mnist_with(t, labels=np.full(60, 1.7, ">f4"))),
                                   "--out", t / "r"],
     ["train labels", "are torch.float32, not integers"]),
    ("float IDX images", lambda t, s: ["train", "mnist-mlp",
                                       *_argv(s, **_mnist_with(t, images=np.zeros((60, 28, 28), ">f4"))), "--out", t / "r"],
     ["train images", "are torch.float32, not uint8"]),
    ("CIFAR label 1.7", lambda t, s: ["train", "cifar10-resnet18", *_argv(s, **_cifar_with(t, [1.7, 2.0])),
                                      "--out", t / "r"],
     ["data_batch_1: labels of type float64, not integers"]),
    ("CIFAR labels in a dict", lambda t, s: ["train", "cifar10-resnet18", *_argv(s, **_cifar_with(t, {0: 1, 1: 2})),
                                             "--out", t / "r"],
     ["is not a CIFAR-10 python batch"]),
    ("CIFAR label 10", lambda t, s: ["train", "cifar10-resnet18", *_argv(s, **_cifar_with(t, [10, 1])),
                                     "--out", t / "r"],
     ["labels outside 0..9"]),
    ("threshold an unfinished run", lambda t, s: ["threshold", _run_dir_with(t, summary='{"finished": false}'),
                                                  "--density", "0.1"],
     ["has not finished training", "--resume"]),
]


@pytest.mark.parametrize("build, words", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_problem(tiny, tmp_path, capsys, build, words):
    _, sets = tiny
    argv = [str(a) for a in build(tmp_path, sets)]
    assert main(argv) == 2
    err = _error(capsys)
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("module, argv, words", [
    ("matplotlib", lambda t: ["report", t, "--out", t / "rep"], "bregman report (its plots) needs matplotlib"),
    ("matplotlib", lambda t: ["figure", "kernels", t, "--out", t / "f.png"], "bregman figure needs matplotlib"),
    ("tqdm", lambda t: ["train", "mnist-mlp", "--set", "progress=on", "--out", t / "r"],
     "progress=on needs tqdm"),
])
def test_a_missing_extra_says_how_to_install_it(tmp_path, capsys, monkeypatch, module, argv, words):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    assert main([str(a) for a in argv(tmp_path)]) == 2
    err = _error(capsys)
    assert words in err and "pip install 'bregman[experiments]'" in err
    assert not (tmp_path / "r").exists()  # checked before anything was written


def test_console_errors_are_one_line_and_debug_shows_the_traceback(tiny, tmp_path):
    """What a user sees, as a subprocess each (run side by side): one line, exit status 2."""
    _, sets = tiny
    f = _a_file(tmp_path)
    cases = {
        "out file": (["train", "mnist-mlp", *_argv(sets), "--out", f], "is a file, not a folder"),
        "summary list": (["report", _run_dir_with(tmp_path, summary="[]"), "--out", tmp_path / "rep"],
                         "holds a JSON list"),
        "-n 100000": (["figure", "denoise", tmp_path, "--out", tmp_path / "f.png", "-n", "100000"], "-n 100000"),
        "jobs 0": (["sweep", "fig2", "--jobs", "0"], "argument --jobs: must be ≥ 1, got 0"),
        "both flags": (["train", "mnist-mlp", "--resume", "--overwrite"], "not allowed with argument"),
    }
    procs = {k: _cli(*argv) for k, (argv, _) in cases.items()}
    debug = _cli("--debug", "train", "mnist-mlp", *_argv(sets), "--out", f)
    for k, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (k, err)
        assert "Traceback" not in err, k
        last = err.strip().splitlines()[-1]
        assert last.startswith("bregman") and ": error: " in last, (k, err)  # argparse: "bregman train: error"
        assert cases[k][1] in last, (k, err)
        if not k.startswith(("jobs", "both")):  # argparse adds its usage line above
            assert len(err.strip().splitlines()) == 1, (k, err)
    _, err = debug.communicate(timeout=120)
    assert debug.returncode != 0 and "Traceback" in err and "WriteError" in err


def test_a_sweep_whose_runs_fail_exits_1_and_lists_them(tmp_path):
    sweep = tmp_path / "bad.toml"
    sweep.write_text(f'base = "mnist-mlp"\nseeds = [0]\n[common]\nepochs = 1\nprogress = "off"\n'
                     f'data_root = "{tmp_path / "nodata"}"\n[[run]]\nlabel = "a"\n[[run]]\nlabel = "b"\n')
    proc = subprocess.run([sys.executable, "-m", "bregman.cli", "sweep", str(sweep), "--out", str(tmp_path / "s"),
                           "--jobs", "2", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert err[0].startswith("bregman: error: 2 of 2 runs failed")
    assert err[1:] == [f"  a seed 0: {tmp_path / 's' / 'a' / 'seed0' / 'train.log'}",
                       f"  b seed 0: {tmp_path / 's' / 'b' / 'seed0' / 'train.log'}"]
    assert "bregman data fetch mnist" in (tmp_path / "s" / "a" / "seed0" / "train.log").read_text()


def test_figure_n_is_bounded_by_the_test_set(tmp_path):
    from bregman.figures import denoising_from_runs
    from bregman.train.loop import build_model

    root = _tiny_mnist(tmp_path / "data")
    cfg = apply_overrides(load_config("mnist-denoise"), {"data_root": str(root), "verify_data": False})
    state = build_model(cfg, torch.device("cpu")).state_dict()
    (tmp_path / "run").mkdir()
    torch.save({"config": config_to_dict(cfg), "model": state}, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"-n 21: the test set has 20 images; ask for 1\.\.20"):
        denoising_from_runs({"r": tmp_path / "run"}, tmp_path / "f.png", n=21)
