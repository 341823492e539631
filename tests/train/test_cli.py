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
