"""The target-density controller: the λ-change rule, both modes, every optimizer and grouping,
schedules, state dicts, bit-identical CLI resume, and bad inputs."""
from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch
from torch import nn

from bregman import AdaBreg, DensityController, LinBreg, ProxSGD, param_groups
from bregman.control import _per_unit, _unit_norms, change_lam_
from bregman.regularizers import GroupL12, L1, Null

F64 = dict(dtype=torch.float64)

#: every sparsity regularizer with a tensor it applies to
REGS = [
    (L1(0.3), (6, 7)),
    (GroupL12(0.3, "rows"), (6, 7)),
    (GroupL12(0.3, "columns"), (6, 7)),
    (GroupL12(0.3, "kernels"), (4, 3, 3, 3)),
    (GroupL12(0.3, "filters"), (4, 3, 3, 3)),
    (GroupL12(0.3, "kernels"), (4, 3, 5)),
    (GroupL12(0.3, "heads", head_dim=2), (6, 4)),
    (GroupL12(0.3, "head_inputs", head_dim=2), (4, 6)),
]
IDS = [f"{r.kind}-{getattr(r, 'groups', '')}-{len(s)}d" for r, s in REGS]


def _dual_state(reg, shape, delta, seed=0):
    """A dual variable v with some units inside and some outside the threshold, and θ = prox_{δJ}(δv)."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(shape, generator=g, **F64)
    norms = _unit_norms(reg, v).unique()
    v *= reg.lam / norms.median() if reg.lam > 0 else 1.0  # about half the units above the threshold
    theta = reg.dual_prox_(torch.empty_like(v), v, delta)
    assert 0 < torch.count_nonzero(theta) < theta.numel()  # both kinds of units are present
    return theta, v


def _in_subdifferential(r, theta, reg):
    """r ∈ ∂J(θ): r = J's subgradient on non-zero units, and its unit norm ≤ λ on zero units."""
    on = theta != 0
    sub = reg.subgradient(theta)
    ok_on = torch.allclose(r[on], sub[on], rtol=1e-12, atol=1e-12)
    ok_off = bool((_unit_norms(reg, r)[~on] <= reg.lam * (1 + 1e-12)).all())
    return ok_on and ok_off


@pytest.mark.parametrize("reg,shape", REGS, ids=IDS)
@pytest.mark.parametrize("factor", [3.0, 0.25])
@pytest.mark.parametrize("delta", [1.0, 0.5])
def test_a_lam_change_keeps_theta_and_the_subgradient_condition(reg, shape, factor, delta):
    theta, v = _dual_state(reg, shape, delta)
    new = dataclasses.replace(reg, lam=reg.lam * factor)
    p, v2 = theta.clone(), v.clone()
    change_lam_(p, v2, reg, new, delta)
    assert torch.equal(p, theta)  # the weights do not move
    assert torch.allclose(new.dual_prox_(torch.empty_like(v2), v2, delta), theta, rtol=0, atol=1e-13)
    assert _in_subdifferential(v2 - theta / delta, theta, new)  # v′ − θ/δ ∈ ∂J′(θ)
    off = theta == 0  # zero units keep their relative dual position v/λ
    assert torch.allclose(v2[off] / new.lam, v[off] / reg.lam, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reg,shape", REGS, ids=IDS)
def test_a_change_from_lam_zero_gives_a_valid_dual(reg, shape):
    zero = dataclasses.replace(reg, lam=0.0)
    theta, v = _dual_state(reg, shape, 1.0)  # any θ; at λ = 0, v = θ/δ
    v0 = theta.clone()
    new = dataclasses.replace(reg, lam=0.2)
    p = theta.clone()
    change_lam_(p, v0, zero, new, 1.0)
    assert torch.equal(p, theta)
    assert torch.allclose(new.dual_prox_(torch.empty_like(v0), v0, 1.0), theta, rtol=0, atol=1e-13)
    assert _in_subdifferential(v0 - theta, theta, new)


@pytest.mark.parametrize("reg,shape", REGS, ids=IDS)
def test_keep_mask_moves_only_the_others(reg, shape):
    theta, v = _dual_state(reg, shape, 1.0)
    new = dataclasses.replace(reg, lam=reg.lam * 1.5)
    keep = (_unit_norms(new, v) > new.lam) & (theta != 0)
    p, v2 = theta.clone(), v.clone()
    change_lam_(p, v2, reg, new, 1.0, keep)
    assert torch.equal(p[keep], theta[keep])  # survivors keep their weights exactly
    assert torch.equal(v2[~keep], v[~keep])  # the rest keep v: θ = prox_{δJ′}(δv)
    assert torch.equal(p[~keep], new.dual_prox_(torch.empty_like(v), v, 1.0)[~keep])
    assert torch.allclose(new.dual_prox_(torch.empty_like(v2), v2, 1.0), p, rtol=0, atol=1e-13)


# ------------------------------------------------------------------------------------ the controller
def _conv_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 6 * 6, 30), nn.ReLU(),
                         nn.Linear(30, 3)).double()


def _data(n=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 1, 8, 8, generator=g, **F64)
    return x, x.flatten(1)[:, :3].argmax(1)


OPTIMIZERS = {
    "linbreg": lambda groups: LinBreg(groups, lr=0.1),
    "linbreg-momentum": lambda groups: LinBreg(groups, lr=0.1, momentum=0.9),
    "adabreg": lambda groups: AdaBreg(groups, lr=3e-3),
}
GROUPINGS = {  # (linear, conv) regularizers
    "l1": (L1(0.05), L1(0.05)),
    "rows+kernels": (GroupL12(0.05, "rows"), GroupL12(0.05, "kernels")),
}


def _train(opt, model, ctrl, steps, x, y):
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ctrl.step()


def _units(model, names, unit):
    ws = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))
          and ("conv" in names if isinstance(m, nn.Conv2d) else "linear" in names)]
    us = [_per_unit(w.detach(), unit) for w in ws]
    return sum(int(torch.count_nonzero(u)) for u in us), sum(u.numel() for u in us)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("grouping", list(GROUPINGS))
@pytest.mark.parametrize("scope", ["N_total", "N_linear", "N_conv"])
def test_exact_mode_holds_exactly_k_units(opt_name, grouping, scope):
    model = _conv_model()
    linear, conv = GROUPINGS[grouping]
    opt = OPTIMIZERS[opt_name](param_groups(model, linear=linear, conv=conv))
    names, unit = {"N_total": (["linear", "conv"], "entries"), "N_linear": (["linear"], "entries"),
                   "N_conv": (["conv"], "kernels")}[scope]
    ctrl = DensityController(opt, 0.3, mode="exact", groups=names, unit=unit, schedule="ramp", ramp_steps=5)
    x, y = _data()
    targets = []
    for _ in range(8):
        _train(opt, model, ctrl, 1, x, y)
        nnz, n = _units(model, names, unit)
        k = round(ctrl.target_at(ctrl.steps) * n)
        group = 1 if grouping == "l1" or unit == "kernels" else 6 * 6 * 6  # entries of the largest group
        assert k - group < nnz <= k, (nnz, k)
        assert ctrl.density == pytest.approx(nnz / n)
        targets.append(ctrl.target_at(ctrl.steps))
    assert targets[-1] == 0.3 and ctrl.done
    lams = ctrl.lams()
    assert set(lams) == set(names) and all(lam >= 0 for lam in lams.values())
    if len(names) == 2:  # one scale: the groups' λ ratio is kept
        assert lams["conv"] == pytest.approx(lams["linear"] * conv.lam / linear.lam)


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("grouping", list(GROUPINGS))
def test_an_exact_step_keeps_the_survivors_and_the_bregman_invariant(opt_name, grouping):
    """After every controller step v − θ/δ ∈ ∂J′(θ) for the new λ, on every unit; the units active
    before and after the step keep their weights exactly."""
    model = _conv_model()
    linear, conv = GROUPINGS[grouping]
    opt = OPTIMIZERS[opt_name](param_groups(model, linear=linear, conv=conv))
    ctrl = DensityController(opt, 0.3, mode="exact", ramp_steps=4)
    x, y = _data()
    for _ in range(6):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        before = {p: p.detach().clone() for _, g in ctrl._groups for p in g["params"]}
        ctrl.step()
        for p, v, g in ctrl._tensors():
            theta = p.detach()
            assert _in_subdifferential(v - theta / g["delta"], theta, g["reg"])
            both = (before[p] != 0) & (theta != 0)
            assert both.any() and torch.equal(theta[both], before[p][both])


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("grouping", list(GROUPINGS))
def test_adaptive_mode_moves_lam_with_the_gap_and_never_jolts(opt_name, grouping):
    model = _conv_model()
    linear, conv = GROUPINGS[grouping]
    opt = OPTIMIZERS[opt_name](param_groups(model, linear=linear, conv=conv))
    ctrl = DensityController(opt, 0.5, mode="adaptive", schedule="fixed", gain=0.2)
    x, y = _data()
    _train(opt, model, ctrl, 1, x, y)
    for _ in range(5):
        before = [p.detach().clone() for p in model.parameters()]
        lam = ctrl.lams()["linear"]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        after_opt = [p.detach().clone() for p in model.parameters()]
        d = ctrl.measure()
        ctrl.step()
        assert all(torch.equal(a, p) for a, p in zip(after_opt, model.parameters()))  # λ moved, θ did not
        assert (ctrl.lams()["linear"] < lam) == (d < 0.5)  # too sparse: λ down; too dense: λ up
        assert any(not torch.equal(b, a) for b, a in zip(before, after_opt))


def test_adaptive_mode_reaches_a_target_from_below():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 3)).double()
    from bregman.init import sparse_init_

    sparse_init_(model, 0.05)
    x = torch.randn(512, 20, **F64)
    y = x[:, :3].argmax(1)
    opt = LinBreg(param_groups(model, linear=L1(0.1)), lr=0.1)
    ctrl = DensityController(opt, 0.2, mode="adaptive", ramp_steps=200, gain=0.05)
    _train(opt, model, ctrl, 300, x, y)
    assert 0.05 < ctrl.start_density < 0.07
    assert ctrl.density == pytest.approx(0.2, rel=0.25)


def test_the_exact_ramp_starts_at_most_at_a_quarter_of_the_target():
    """d_0 = min(measured, d*/4) in exact mode; the adaptive mode, which never cuts, ramps from the measured d_0."""
    from bregman.control import RAMP_START

    model = _conv_model()
    opt = LinBreg(param_groups(model, linear=L1(0.05), conv=L1(0.05)), lr=0.1)
    for mode, d0, start in [("exact", 0.02, 0.02), ("exact", 0.06, 0.1 * RAMP_START), ("exact", 1.0, 0.025),
                            ("adaptive", 0.06, 0.06)]:
        ctrl = DensityController(opt, 0.1, mode=mode, ramp_steps=10)
        assert ctrl.ramp_start is None
        ctrl.start_density = d0
        assert ctrl.ramp_start == pytest.approx(start) and ctrl.target_at(0) == pytest.approx(start)
        assert ctrl.target_at(10) == 0.1


def _support_renewal(opt_name):
    """A 20-50-3 MLP sparse-initialized at 10 %, trained 200 steps to a 10 % target in exact mode:
    the fraction of the final support that was zero at the init."""
    from bregman.init import sparse_init_

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 3)).double()
    sparse_init_(model, 0.1)
    init = [m.weight.detach() != 0 for m in (model[0], model[2])]
    x = torch.randn(512, 20, **F64)
    y = x[:, :3].argmax(1)
    opt = OPTIMIZERS[opt_name](param_groups(model, linear=L1(0.1)))
    ctrl = DensityController(opt, 0.1, ramp_steps=100)
    _train(opt, model, ctrl, 200, x, y)
    assert ctrl.density == 0.1 and ctrl.start_density > 0.1  # the init is at (above) the target
    final = [m.weight.detach() != 0 for m in (model[0], model[2])]
    return sum(int((f & ~i).sum()) for f, i in zip(final, init)) / sum(int(f.sum()) for f in final)


@pytest.mark.parametrize("opt_name", ["linbreg", "adabreg"])
def test_a_target_at_the_init_density_renews_the_support(opt_name):
    """The ramp climbs from d*/4, so the final support is not the random init's (a flat ramp from
    the init density kept 96 % of it: 5 of 115 units new)."""
    assert _support_renewal(opt_name) > 0.2


def test_cubic_ramp_and_fixed_schedule():
    model = _conv_model()
    opt = LinBreg(param_groups(model, linear=L1(0.05), conv=L1(0.05)), lr=0.1)
    ctrl = DensityController(opt, 0.1, ramp_steps=10)
    assert ctrl.target_at(0) == 0.1  # before the first step: no start density measured yet
    ctrl.start_density = 0.02
    ts = [ctrl.target_at(t) for t in range(13)]
    assert ts[0] == pytest.approx(0.02) and ts[10:] == [0.1] * 3
    assert all(a < b for a, b in zip(ts[:10], ts[1:11]))
    assert ts[5] == pytest.approx(0.1 - 0.08 * 0.5**3)  # d* + (d0 − d*)(1 − t/T)³
    assert ts[1] - ts[0] > ts[9] - ts[8]  # fast first, slow last
    fixed = DensityController(opt, 0.1, schedule="fixed")
    fixed.start_density = 0.02
    assert fixed.target_at(1) == 0.1 and fixed.done


def test_foreach_and_reference_paths_agree_under_control():
    def run(foreach):
        model = _conv_model()
        opt = LinBreg(param_groups(model, linear=L1(0.05), conv=GroupL12(0.05, "kernels")), lr=0.1,
                      foreach=foreach)
        ctrl = DensityController(opt, 0.3, mode="adaptive", ramp_steps=4, gain=0.3)
        _train(opt, model, ctrl, 6, *_data())
        return [p.detach() for p in model.parameters()], ctrl.lams()

    (a, la), (b, lb) = run(True), run(False)
    assert la == lb
    assert all(torch.allclose(x, y, rtol=0, atol=1e-13) for x, y in zip(a, b))


@pytest.mark.parametrize("mode", ["exact", "adaptive"])
def test_state_dict_round_trip_resumes_bit_identically(mode):
    x, y = _data()

    def build():
        model = _conv_model()
        opt = AdaBreg(param_groups(model, linear=L1(0.05), conv=GroupL12(0.05, "kernels")), lr=3e-3)
        return model, opt, DensityController(opt, 0.3, mode=mode, ramp_steps=6, gain=0.2)

    model, opt, ctrl = build()
    _train(opt, model, ctrl, 4, x, y)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "ctrl": ctrl.state_dict()}, buf)
    _train(opt, model, ctrl, 4, x, y)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # plain values only
    model2, opt2, ctrl2 = build()
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    ctrl2.load_state_dict(saved["ctrl"])
    assert ctrl2.state_dict() == saved["ctrl"]
    _train(opt2, model2, ctrl2, 4, x, y)
    assert ctrl2.state_dict() == ctrl.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters()))


def test_loading_another_controllers_state_is_an_error():
    model = _conv_model()
    opt = LinBreg(param_groups(model, linear=L1(0.05), conv=L1(0.05)), lr=0.1)
    state = DensityController(opt, 0.3).state_dict()
    with pytest.raises(ValueError, match="target=0.3.*0.2"):
        DensityController(opt, 0.2).load_state_dict(state)


# ---------------------------------------------------------------------------------------- bad input
def _opt():
    return LinBreg(param_groups(_conv_model(), linear=L1(0.05), conv=L1(0.05)), lr=0.1)


@pytest.mark.parametrize("target", [0, 0.0, -0.1, 1.5, math.nan, math.inf, -math.inf, True, "0.5", None])
def test_bad_targets_are_clear_errors(target):
    with pytest.raises(ValueError, match=r"Invalid target density: .*\(0, 1\]"):
        DensityController(_opt(), target)


def test_a_target_of_one_is_allowed():
    assert DensityController(_opt(), 1.0).target == 1.0


@pytest.mark.parametrize("make,message", [
    (lambda m: ProxSGD(param_groups(m, linear=L1(0.05)), lr=0.1), "got ProxSGD .*not the prox of a dual"),
    (lambda m: torch.optim.SGD(m.parameters(), lr=0.1), "got SGD .*no regularizer"),
    (lambda m: torch.optim.Adam(m.parameters(), lr=0.1), "got Adam .*no regularizer"),
    (lambda m: LinBreg(param_groups(m), lr=0.1), "no regularized weights"),
    (lambda m: AdaBreg(m.parameters(), lr=0.1), "no regularized weights"),
])
def test_optimizers_without_a_dual_or_a_regularizer_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        DensityController(make(_conv_model()), 0.1)


@pytest.mark.parametrize("kwargs,message", [
    (dict(groups=["conv", "dense"]), r"no param group named \['dense'\]"),
    (dict(groups=["other"]), "'other' has no regularizer"),
    (dict(mode="quantile"), "Invalid mode: 'quantile'"),
    (dict(unit="rows"), "Invalid unit: 'rows'"),
    (dict(schedule="linear"), "Invalid schedule: 'linear'"),
    (dict(ramp_steps=0), "Invalid ramp_steps: 0"),
    (dict(gain=-1.0), "Invalid gain: -1.0"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DensityController(_opt(), 0.1, **kwargs)


def test_a_group_with_lam_zero_is_a_clear_error():
    opt = LinBreg(param_groups(_conv_model(), linear=L1(0.0), conv=L1(0.05)), lr=0.1)
    with pytest.raises(ValueError, match="'linear' has λ = 0.0"):
        DensityController(opt, 0.1)


def test_null_groups_are_left_out_by_default():
    opt = LinBreg(param_groups(_conv_model(), linear=L1(0.05), conv=Null()), lr=0.1)
    assert DensityController(opt, 0.1).group_names == ["linear"]


# --------------------------------------------------------------------------- config, CLI and report
@pytest.mark.parametrize("override,message", [
    ("target_density=0", r"'target_density': 0.0 \(must be in \(0.0, 1.0\]\)"),
    ("target_density=1.5", r"'target_density': 1.5 \(must be in \(0.0, 1.0\]\)"),
    ("target_density=nan", "a finite float"),
    ("target_density=-inf", "a finite float"),
    ("target_measure=N_rows", "target_measure"),
    ("target_mode=quantile", "target_mode"),
])
def test_config_rejects_bad_targets(override, message):
    from bregman.train.config import ConfigError, apply_overrides, load_config

    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_config("mnist-mlp"), [override])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "proxsgd"])
def test_config_rejects_a_target_without_a_bregman_optimizer(optimizer):
    from bregman.train.config import ConfigError, apply_overrides, load_config

    with pytest.raises(ConfigError, match=f"target_density needs optimizer linbreg or adabreg, got '{optimizer}'"):
        apply_overrides(load_config("mnist-mlp"), [f"optimizer={optimizer}", "target_density=0.05"])


def test_config_rejects_a_target_with_pruning():
    from bregman.train.config import ConfigError, apply_overrides, load_config

    with pytest.raises(ConfigError, match="target_density and prune_target"):
        apply_overrides(load_config("mnist-mlp"), ["prune_target=0.1", "target_density=0.05"])


@pytest.mark.parametrize("overrides,message", [
    (["target_measure=N_conv"], "target_measure='N_conv', but model 'mlp' has no such weights"),
    (["reg_linear=none"], "'linear' has no regularizer .*reg_linear='none'"),
])
def test_training_with_an_unreachable_target_is_a_clear_error(mnist_root, tmp_path, capsys, overrides, message):
    from bregman.cli import main

    rc = main(["train", "mnist-mlp", "--set", "target_density=0.05", *sum((["--set", o] for o in overrides), []),
               "--set", f"data_root={mnist_root}", "--set", "progress=off", "--out", str(tmp_path / "r")])
    assert rc != 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    import re

    assert re.search(message, err), err


@pytest.mark.parametrize("mode,every", [("exact", "batch"), ("adaptive", "epoch")])
def test_cli_resume_is_bit_identical(mnist_root, tmp_path, mode, every):
    """2 epochs, resumed to 3, against 3 straight: the same weights, λ, controller state and history."""
    from bregman.cli import main

    def train(out, epochs, *extra):
        args = ["train", "mnist-mlp", "--out", str(out), "--set", f"epochs={epochs}", "--set", "threads=1",
                "--set", "target_density=0.05", "--set", f"target_mode={mode}", "--set", f"target_every={every}",
                "--set", "target_ramp_epochs=2", "--set", f"data_root={mnist_root}", "--set", "progress=off",
                *extra]
        assert main(args) == 0

    train(tmp_path / "straight", 3)
    train(tmp_path / "resumed", 2)
    train(tmp_path / "resumed", 3, "--resume")
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["controller"] == b["controller"] and a["controller"]["steps"] > 0
    assert [g["reg"] for g in a["optimizer"]["param_groups"]] == [g["reg"] for g in b["optimizer"]["param_groups"]]
    strip = [{k: v for k, v in m.items() if k != "seconds"} for m in a["history"]]
    assert strip == [{k: v for k, v in m.items() if k != "seconds"} for m in b["history"]]
    last = a["history"][-1]
    assert last["target_density"] == 0.05 and set(last["lam"]) == {"linear"}
    if mode == "exact":
        assert last["N_total"] == pytest.approx(0.05, abs=1e-5)


def test_report_shows_target_beside_the_density_reached(tmp_path):
    import json

    from bregman.report import write_report

    for seed in (0, 1):
        d = tmp_path / f"s{seed}"
        d.mkdir()
        rows = [{"epoch": e, "train_loss": 0.1, "val_acc": 0.97, "N_total": 0.049, "target_density": 0.05}
                for e in (1, 2)]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary = {"name": "t", "label": "LinBreg 5%", "seed": seed, "epochs": 2, "finished": True,
                   "epochs_done": 2, "best_epoch": 2, "best_val_acc": 0.97, "N_total": 0.049, "test_acc": 0.97,
                   "final": {"N_total": 0.049, "val_acc": 0.97}, "target_density": 0.05,
                   "target_measure": "N_total"}
        (d / "summary.json").write_text(json.dumps(summary))
    write_report([tmp_path / "s0", tmp_path / "s1"], tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    for table in md.split("## ")[1:3]:
        header = next(line for line in table.splitlines() if line.startswith("| label"))
        assert "target %" in header and "N_total %" in header
        assert "5.00 ± 0.00" in table and "4.90 ± 0.00" in table
