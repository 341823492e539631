"""The command line: config errors name the key, a missing data set names the fix, reports."""
from __future__ import annotations

import json

import pytest

from bregman.cli import main


def test_unknown_key_names_the_nearest(capsys):
    assert main(["train", "mnist-mlp", "--set", "lamda=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'lamda'" in err and "'lam'" in err


def test_bad_value_is_type_checked(capsys):
    assert main(["train", "mnist-mlp", "--set", "epochs=many"]) == 2
    assert "epochs" in capsys.readouterr().err


def test_missing_data_names_the_fetch_command(tmp_path, capsys):
    rc = main(["train", "mnist-mlp", "--set", f"data_root={tmp_path}", "--out", str(tmp_path / "r")])
    assert rc == 2
    assert "bregman data fetch mnist" in capsys.readouterr().err


def test_train_and_report_two_tiny_runs(mnist_root, tmp_path, capsys):
    for lam, seed in [(0.1, 0), (0.1, 1)]:
        rc = main(["train", "mnist-mlp", "--set", "epochs=1", "--set", f"lam={lam}", "--set", f"seed={seed}",
                   "--set", f"data_root={mnist_root}", "--set", "progress=off",
                   "--out", str(tmp_path / f"s{seed}"), "--label", "LinBreg λ=1e-1"])
        assert rc == 0
    assert main(["report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "LinBreg λ=1e-1" in out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep  # aggregated numbers
    assert (tmp_path / "rep" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_denoise_draws_each_run_on_the_test_images(mnist_root, tmp_path, capsys):
    import torch

    from bregman.train.config import apply_overrides, config_to_dict, load_config
    from bregman.train.loop import build_model

    for name, density in [("sparse", 0.01), ("dense", 1.0)]:
        cfg = apply_overrides(load_config("mnist-denoise"), {"data_root": mnist_root, "init_density": density})
        state = build_model(cfg, torch.device("cpu")).state_dict()
        (tmp_path / name).mkdir()
        torch.save({"config": config_to_dict(cfg), "model": state, "best": {"state": state}},
                   tmp_path / name / "checkpoint.pt")
    out = tmp_path / "fig5.png"
    assert main(["figure", "denoise", f"AdaBreg={tmp_path / 'sparse'}", str(tmp_path / "dense"),
                 "--out", str(out), "-n", "4"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Not a denoising run: a clear error, exit status 2.
    cfg = apply_overrides(load_config("mnist-mlp"), {"data_root": mnist_root})
    (tmp_path / "mlp").mkdir()
    torch.save({"config": config_to_dict(cfg), "model": build_model(cfg, torch.device("cpu")).state_dict()},
               tmp_path / "mlp" / "checkpoint.pt")
    assert main(["figure", "denoise", str(tmp_path / "mlp"), "--out", str(out)]) == 2
    assert "not a denoising one" in capsys.readouterr().err


def test_figure_kernels_from_a_runs_snapshots(tmp_path, capsys):
    import torch

    w = torch.randn(64, 1, 5, 5)
    w[::2] = 0
    torch.save({0: {"features.conv1.weight": w}, 5: {"features.conv1.weight": w}}, tmp_path / "kernels.pt")
    assert main(["figure", "kernels", str(tmp_path), "--out", str(tmp_path / "fig1.png")]) == 0
    assert (tmp_path / "fig1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "mlp").mkdir()
    assert main(["figure", "kernels", str(tmp_path / "mlp"), "--out", str(tmp_path / "x.png")]) == 2
    assert "kernel snapshots are saved by conv-net runs" in capsys.readouterr().err
