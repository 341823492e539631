"""The training pipeline on real MNIST: accuracy, sparsity, resume bit-identity, run directory."""
from __future__ import annotations

import json

import pytest
import torch

from bregman.train.config import apply_overrides, load_config
from bregman.train.loop import TrainingError, train


def _cfg(mnist_root, **kw):
    over = {"data_root": mnist_root, "progress": "off", **kw}
    return apply_overrides(load_config("mnist-mlp"), over)


def test_one_epoch_linbreg_is_accurate_and_sparse(mnist_root, tmp_path):
    summary = train(_cfg(mnist_root, epochs=1, lam=0.1), tmp_path / "run")
    assert summary["best_val_acc"] >= 0.85
    assert summary["N_total"] < 0.05
    assert summary["test_acc"] >= 0.85
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.toml", "metrics.jsonl", "summary.json", "checkpoint.pt"} <= files
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "N_total", "N_linear", "N_conv",
                "active_neurons", "l1_norm", "lr", "seconds"):
        assert key in row
    assert set(row["active_neurons"]) == {"layers.fc1.weight", "layers.fc2.weight", "layers.fc3.weight"}
    loaded = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert loaded["history"][0]["epoch"] == 1


def test_resume_two_plus_two_equals_four_bit_for_bit(mnist_root, tmp_path):
    cfg4 = _cfg(mnist_root, epochs=4, lam=0.1, plateau_patience=0)  # the LR decays: scheduler state matters
    train(cfg4, tmp_path / "straight")
    train(apply_overrides(cfg4, {"epochs": 2}), tmp_path / "resumed")
    train(cfg4, tmp_path / "resumed", resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in a["history"]]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in b["history"]]


def test_refuses_to_overwrite_and_to_resume_a_different_config(mnist_root, tmp_path):
    cfg = _cfg(mnist_root, epochs=1)
    train(cfg, tmp_path / "run")
    with pytest.raises(TrainingError, match="already holds a run"):
        train(cfg, tmp_path / "run")
    with pytest.raises(TrainingError, match=r"differs in lam: 0\.1 → 0\.5"):
        train(apply_overrides(cfg, {"lam": 0.5, "epochs": 2}), tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "checkpoint.pt").exists()  # nothing saved was lost


def test_nonfinite_loss_is_a_clear_error_and_keeps_the_checkpoint(mnist_root, tmp_path):
    cfg = _cfg(mnist_root, epochs=1, optimizer="sgd", init_density=1.0, reg_linear="none")
    train(cfg, tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(TrainingError, match="non-finite training loss.*lower it"):
        train(apply_overrides(cfg, {"epochs": 2, "lr": 1e6}), tmp_path / "run2")
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_matches(mnist_root, tmp_path, monkeypatch):
    import bregman.train.loop as loop

    cfg = _cfg(mnist_root, epochs=2, lam=0.1)
    train(cfg, tmp_path / "straight")
    real_evaluate, calls = loop.evaluate, {"n": 0}

    def interrupted_evaluate(*args, **kwargs):  # Ctrl-C during epoch 2, before its checkpoint
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", interrupted_evaluate)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run")
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert len(ck["history"]) == 1  # epoch 1's checkpoint, intact
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    train(cfg, tmp_path / "run", resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
