"""The authors' own optimizers' trajectories (../shared/reference), reproduced to 1e-10."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from bregman import AdaBreg, LinBreg, ProxSGD, regularizers

REF = Path(os.environ.get("BREGMAN_REFERENCE", Path(__file__).resolve().parents[3] / "shared" / "reference"))
TRAJ = REF / "official_trajectories.json"
OPTS = {"LinBreg": LinBreg, "AdaBreg": AdaBreg, "ProxSGD": ProxSGD}
REGS = {"l1": "l1", "rows": "rows", "kernels": "kernels", "none": "none"}


def _cases():
    if not TRAJ.exists():
        pytest.skip(f"reference trajectories not found at {TRAJ} (set BREGMAN_REFERENCE)", allow_module_level=True)
    return json.loads(TRAJ.read_text())["cases"]


CASES = _cases()


def _run(case, foreach):
    meta = case["case"]
    params = [torch.tensor(t, dtype=torch.float64, requires_grad=True) for t in case["init"]]
    A = [torch.tensor(a, dtype=torch.float64) for a in case["A"]]
    b = [torch.tensor(v, dtype=torch.float64) for v in case["b"]]
    hp = dict(meta["hp"])
    if "betas" in hp:
        hp["betas"] = tuple(hp["betas"])
    opt = OPTS[meta["opt"]](params, reg=regularizers.get(REGS[meta["reg"]], meta["lam"]), foreach=foreach, **hp)

    def loss_fn():
        return sum(0.5 * ((Ai @ p.reshape(-1) - bi) ** 2).sum() / Ai.shape[0] for Ai, bi, p in zip(A, b, params))

    iterates, losses = [[p.detach().clone() for p in params]], []
    for _ in range(meta["steps"]):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        losses.append(loss.item())
        opt.step()
        iterates.append([p.detach().clone() for p in params])
    return iterates, losses


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
@pytest.mark.parametrize("case", CASES, ids=[c["case"]["name"] for c in CASES])
def test_reproduces_official_trajectory(case, foreach):
    iterates, losses = _run(case, foreach)
    assert len(iterates) == len(case["iterates"]) == case["case"]["steps"] + 1
    for k, (mine, ref) in enumerate(zip(iterates, case["iterates"])):
        for p, r in zip(mine, ref):
            err = (p - torch.tensor(r, dtype=torch.float64)).abs().max().item()
            assert err <= 1e-10, f"{case['case']['name']}: iterate {k} differs by {err:.3e}"
    assert losses == pytest.approx(case["losses"], abs=1e-10)


def test_all_ten_cases_present():
    assert len(CASES) == 10
    assert {c["case"]["opt"] for c in CASES} == set(OPTS)
