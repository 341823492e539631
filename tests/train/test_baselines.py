"""The baselines of Tables 1–3: magnitude pruning, thresholding, Lasso by SGD, CIFAR-10 end to end,
and the kernel figure (Fig. 1)."""
from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from bregman import metrics
from bregman.figures import plot_kernels
from bregman.optim import create_optimizer
from bregman.params import param_groups
from bregman.regularizers import L1
from bregman.train.config import Config, apply_overrides, load_config
from bregman.train.sweep import load_sweep
from bregman.train.prune import Pruner, apply_masks_, magnitude_mask, prune_schedule
from bregman.train.threshold import threshold_, threshold_run, thresholded_state


@pytest.fixture(autouse=True)
def _one_thread():
    """Tensors here are tiny: torch's intra-op threads cost more than they give (on a busy
    two-core machine, 50× more), so these tests run single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(seed: int = 0) -> nn.Module:
    """conv 1→6 (3×3) and two linear layers: 54 + 768 + 40 weights, 6 kernels."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Linear(96, 8), nn.ReLU(), nn.Linear(8, 5))


def _kernel_all_or_nothing(w: torch.Tensor) -> bool:
    nz = w.flatten(2) != 0
    return bool((nz.all(dim=2) | ~nz.any(dim=2)).all())


# ----------------------------------------------------------------------------------------- pruning
@pytest.mark.parametrize("density", [0.5, 0.1, 0.03])
def test_unstructured_mask_hits_the_target_globally(density):
    model = _tiny()
    apply_masks_(model, magnitude_mask(model, density))
    n = sum(w.numel() for _, _, w in metrics.weights(model))
    assert metrics.n_total(model) == round(density * n) / n
    kept = torch.cat([w[w != 0].abs() for _, _, w in metrics.weights(model)])
    dropped = torch.cat([w.abs().flatten() for _, _, w in metrics.weights(_tiny())])
    assert kept.min() >= dropped.sort(descending=True).values[len(kept) - 1]  # the largest survive


@pytest.mark.parametrize("density", [0.5, 0.2])
def test_structured_mask_keeps_whole_kernels_and_hits_both_targets(density):
    model = _tiny()
    masks = magnitude_mask(model, density, structured=True)
    assert set(masks) == {"0.weight", "4.weight", "6.weight"}
    apply_masks_(model, masks)
    assert _kernel_all_or_nothing(model[0].weight)
    assert metrics.n_conv(model) == round(density * 6) / 6
    assert metrics.n_linear(model) == round(density * 808) / 808


def test_schedule_is_dense_first_then_geometric_rounds():
    assert prune_schedule(100, 5) == [50, 60, 70, 80, 90]
    assert prune_schedule(2, 2) == [1, 1]
    assert prune_schedule(1, 3) == [0, 0, 0]  # one epoch: prune before training
    p = Pruner(_tiny(), 0.05, 5, 100)
    assert [round(p.density(k), 4) for k in range(6)] == [1.0, 0.5493, 0.3017, 0.1657, 0.091, 0.05]
    with pytest.raises(ValueError, match="Invalid prune target: 1.5"):
        Pruner(_tiny(), 1.5, 5, 100)


@pytest.mark.parametrize("name, hp", [("sgd", {"lr": 0.1, "momentum": 0.9}), ("adam", {"lr": 0.01}),
                                      ("linbreg", {"lr": 0.1, "momentum": 0.9})])
def test_masks_stay_enforced_through_momentum_steps(name, hp):
    model = _tiny()
    groups = param_groups(model, linear=L1(1e-4), conv=L1(1e-4))
    opt = create_optimizer(name, groups, **hp)
    pruner = Pruner(model, 0.1, 2, 4)  # rounds after epochs 2 and 3
    pruner.attach(opt)
    gen = torch.Generator().manual_seed(0)

    def steps(k):
        for _ in range(k):
            x, y = torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 5, (16,), generator=gen)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    steps(3)  # dense: momentum builds up everywhere
    assert not pruner.update(1) and pruner.round == 0
    assert pruner.update(2) and pruner.round == 1
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    steps(5)
    assert pruner.update(3) and pruner.done
    steps(5)
    params = dict(model.named_parameters())
    for n, mask in pruner.masks.items():
        assert not params[n][~mask].any(), n
        for v in opt.state[params[n]].values():
            if torch.is_tensor(v) and v.shape == mask.shape:
                assert not v[~mask].any(), n
    assert metrics.n_total(model) <= 0.1 + 1e-9
    assert any(not torch.equal(before[n], p) for n, p in params.items())  # training goes on


def test_pruner_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    model = _tiny()
    pruner = Pruner(model, 0.2, 2, 2, structured=True)
    pruner.update(1)
    torch.save(pruner.state_dict(), tmp_path / "p.pt")
    other = Pruner(_tiny(1), 0.2, 2, 2, structured=True)
    other.load_state_dict(torch.load(tmp_path / "p.pt", weights_only=True))
    assert other.round == 2 and other.done
    assert all(torch.equal(other.masks[k], m) for k, m in pruner.masks.items())


# ------------------------------------------------------------------------------------ thresholding
def test_thresholding_hits_the_target_and_leaves_the_input_alone():
    model = _tiny()
    state = copy.deepcopy(model.state_dict())
    out, thr = thresholded_state(model, state, 0.1)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # nothing changed
    n = sum(w.numel() for _, _, w in metrics.weights(model))
    weights = torch.cat([out[k].flatten() for k in ("0.weight", "4.weight", "6.weight")])
    assert torch.count_nonzero(weights) == round(0.1 * n)
    assert weights[weights != 0].abs().min() == thr
    assert torch.equal(out["4.bias"], state["4.bias"])  # biases are never thresholded
    assert threshold_(model, 0.1) == thr and metrics.n_total(model) == round(0.1 * n) / n


def test_structured_thresholding_and_a_sparser_net_is_left_as_it_is():
    model = _tiny()
    thr = threshold_(model, 0.5, structured=True)
    assert set(thr) == {"conv", "linear"}
    assert _kernel_all_or_nothing(model[0].weight) and metrics.n_conv(model) == 0.5
    before = copy.deepcopy(model.state_dict())
    threshold_(model, 0.9)  # denser than the net: no change
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------------------- Lasso
def test_lasso_penalty_carries_its_gradient_through_the_training_step():
    """One SGD step of train_epoch with penalty='loss' moves w by −τ(∇L + λ·sign w)."""
    from bregman.train.distributed import DistInfo
    from bregman.train.loop import train_epoch
    from bregman.train.tasks import task_for

    lam, lr = 0.05, 0.1
    cfg = Config(name="t", model="mlp", dataset="mnist", optimizer="sgd", lr=lr, penalty="loss", lam=lam,
                 lam_conv=lam, reg_conv="l1", init_density=1.0)
    task = task_for("mnist")
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))
    ref = copy.deepcopy(model)
    x, y = torch.randn(8, 1, 3, 4), torch.randint(0, 3, (8,))
    task.loss(ref(x), y).backward()
    groups = param_groups(model, linear=L1(lam))
    opt = create_optimizer("sgd", groups, lr=lr)
    train_epoch(model, model, opt, [(x, y)], task, cfg, groups, DistInfo(), torch.device("cpu"))
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        pen = lam * torch.sign(q.detach()) if name.endswith("weight") else 0.0
        torch.testing.assert_close(p.detach(), q.detach() - lr * (q.grad + pen), msg=name)


# ------------------------------------------------------------------------------ fabricated data
def _write_cifar(root, n_per_batch: int, n_test: int, seed: int = 0):
    """CIFAR-10 in the official layout and pickle format (dict with b"data" N×3072 uint8, b"labels")."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [*((f"data_batch_{k}", n_per_batch) for k in range(1, 6)), ("test_batch", n_test)]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return root


def _write_fmnist(root, n_train: int, n_test: int, seed: int = 0):
    """Fashion-MNIST in the IDX format: uint8 images with the class as a bright block, so a few
    epochs learn something."""
    rng = np.random.default_rng(seed)
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c:2 * c + 8, 4:24] = 255
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + arr.tobytes())
    return root


FAST = {"verify_data": False, "progress": "off", "batch_size": 16, "eval_batch_size": 64}


@pytest.fixture(scope="module")
def fmnist_root(tmp_path_factory):
    return _write_fmnist(tmp_path_factory.mktemp("fmnist"), 40, 10)


# ---------------------------------------------------------------- Tables 1–2 rows, end to end
@pytest.mark.parametrize("table", ["table1", "table2"])
def test_every_row_of_tables_1_and_2_trains_on_fabricated_fmnist(table, fmnist_root, tmp_path):
    from bregman.train.loop import train

    sweep = load_sweep(table)
    for label, _, cfg in sweep.expand():
        # τ ≤ 0.01: on 36 made-up images a few steps at the sweeps' τ = 0.1 can overshoot
        cfg = apply_overrides(cfg, {**FAST, "data_root": str(fmnist_root), "epochs": 3, "prune_steps": 2,
                                    "lr": min(cfg.lr, 0.01)})
        summary = train(cfg, tmp_path / cfg.name)
        assert summary["finished"], label
        if cfg.prune_target is not None:  # epoch 1 dense, rounds after epochs 1 and 2
            assert summary["best_epoch"] >= 2, label
            key = "N_linear" if cfg.prune_structured else "N_total"
            assert abs(summary[key] - cfg.prune_target) < 1e-3, label
            if cfg.prune_structured:
                assert abs(summary["N_conv"] - cfg.prune_target) < 1e-3, label
        if cfg.threshold_target is not None:
            t = summary["thresh"]
            assert {"test_acc", "val_acc", "train_acc", "N_total", "N_linear", "N_conv", "threshold"} <= set(t)
            key = "N_linear" if cfg.threshold_structured else "N_total"
            assert abs(t[key] - cfg.threshold_target) < 1e-3, label
            assert summary["extra"]["thresh_test_acc"] == t["test_acc"]
            assert summary["N_total"] > 0.5  # the unthresholded Lasso net, reported beside
        if cfg.optimizer == "adam" and cfg.penalty == "none":
            assert summary["test_acc"] > 0.5, label  # the bright block is easy
        assert {r.label: r.paper for r in sweep.runs}[label], label


def test_an_interrupted_pruned_run_resumes_bit_for_bit(fmnist_root, tmp_path, monkeypatch):
    from bregman.train.loop import train

    cfg = apply_overrides(load_config("fmnist-cnn"), {
        **FAST, "data_root": str(fmnist_root), "epochs": 4, "optimizer": "sgd", "momentum": 0.9, "lr": 0.01,
        "reg_linear": "none", "reg_conv": "none", "lam": 0.0, "lam_conv": 0.0, "init_density": 1.0,
        "weight_scale": "none", "prune_target": 0.1, "prune_steps": 2})
    train(cfg, tmp_path / "straight")  # rounds after epochs 2 and 3
    update = Pruner.update

    def interrupt(self, epoch):
        if epoch == 3:  # Ctrl-C in epoch 3: the checkpoint of epoch 2 (between the rounds) stays
            raise KeyboardInterrupt
        return update(self, epoch)

    with monkeypatch.context() as m:
        m.setattr(Pruner, "update", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["pruner"]["round"] == 1
    train(cfg, tmp_path / "resumed", resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["pruner"]["round"] == b["pruner"]["round"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    snaps = torch.load(tmp_path / "straight" / "kernels.pt", weights_only=True)
    assert sorted(snaps) == [0, 4] and snaps[4]["features.conv1.weight"].shape == (64, 1, 5, 5)


# ------------------------------------------------------------------------ CIFAR-10 / Table 3
def test_cifar10_preset_trains_one_epoch_on_fabricated_batches_from_the_cli(tmp_path, capsys):
    from bregman.cli import main

    root = _write_cifar(tmp_path / "data", 2, 2)  # 10 training images: 9 train, 1 validation
    base = ["train", "cifar10-resnet18", "--set", f"data_root={root}", "--set", "epochs=1",
            "--set", "batch_size=16", "--set", "eval_batch_size=16", "--set", "progress=off"]
    assert main([*base, "--out", str(tmp_path / "bad")]) == 2  # made-up files fail the md5
    assert "md5" in capsys.readouterr().err.lower()
    assert main([*base, "--set", "verify_data=false", "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["finished"] and 0.0 <= summary["test_acc"] <= 1.0
    snaps = torch.load(tmp_path / "run" / "kernels.pt", weights_only=True)
    assert sorted(snaps) == [0, 1] and snaps[1]["conv1.weight"].shape == (64, 3, 3, 3)


def test_every_row_of_table3_trains_one_epoch_on_fabricated_cifar(tmp_path):
    """The sweep's six trainings (ten table rows) end to end, then a finished run thresholded
    afterwards to another density, without retraining."""
    from bregman.train.loop import train

    root = _write_cifar(tmp_path / "data", 1, 1)  # 5 training images: 4 train, 1 validation
    sweep = load_sweep("table3")
    fast = {**FAST, "data_root": str(root), "epochs": 1, "augment": False, "channels_last": False}
    seen = set()
    for label, _, cfg in sweep.expand():
        cfg = apply_overrides(cfg, fast)
        summary = train(cfg, tmp_path / cfg.name)
        assert summary["finished"], label
        assert {r.label: r.paper for r in sweep.runs}[label], label
        seen.add(cfg.optimizer)
        if cfg.threshold_target is not None:  # the "+ thresh." row of the table
            t = summary["thresh"]
            assert {"test_acc", "val_acc", "train_acc", "N_conv", "threshold"} <= set(t), label
            assert t["N_total"] <= cfg.threshold_target + 1e-6, label  # a sparser net stays as it is
            assert summary["extra"]["thresh_N_total"] == t["N_total"]
            if cfg.penalty == "loss":  # Lasso / Adam: dense, so thresholding hits the target
                assert summary["N_total"] > 0.9 and abs(t["N_total"] - cfg.threshold_target) < 1e-6
    assert seen == {"sgd", "adam", "linbreg", "adabreg"}

    run = tmp_path / "table3-vanilla-adam"
    t = threshold_run(run, 0.05, device="cpu")
    assert abs(t["N_total"] - 0.05) < 1e-6
    saved = json.loads((run / "summary.json").read_text())
    assert saved["thresh"]["N_total"] == t["N_total"] and saved["extra"]["thresh_N_total"] == t["N_total"]


# ------------------------------------------------------------------------------------------ figure
def test_kernel_figure_is_a_png(tmp_path):
    w = torch.randn(64, 1, 5, 5)
    w[::3] = 0  # zero kernels are drawn blank
    out = plot_kernels({0: {"conv1.weight": torch.randn(64, 1, 5, 5)}, 5: {"conv1.weight": w}, 20: w},
                       "conv1.weight", tmp_path / "fig1.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_denoising_figure_is_written(tmp_path):
    from bregman.figures import plot_denoising

    x = torch.rand(8, 1, 28, 28)
    out = plot_denoising(x, x, x, tmp_path / "denoise.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
