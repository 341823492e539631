"""Export: the compacted paper models as ONNX files (run in onnxruntime) and torch.export programs
compute what PyTorch does; `bregman export` on a trained run directory."""
from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

for _extra in ("torch_pruning", "onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_extra, reason=f"the export extra ({_extra}) is not installed")

from bregman.cli import main  # noqa: E402
from bregman.compact import compact  # noqa: E402
from bregman.export import export_model, load_exported  # noqa: E402
from bregman.models import create_model  # noqa: E402

TOL = 1e-4
SHAPES = {"mlp": (1, 28, 28), "convnet": (1, 28, 28), "denoise_mlp": (1, 28, 28), "resnet18": (3, 32, 32)}


def _sparse_model(name: str, seed: int = 0) -> nn.Module:
    """A paper model with a random half of the rows / filters of every hidden layer zero."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = create_model(name).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.shape[0] > 10:
                m.weight[torch.rand(m.weight.shape[0], generator=g) < 0.5] = 0
    return model


def _assert_file_computes(model: nn.Module, path, shape: tuple[int, ...]) -> None:
    x = torch.rand(shape)
    with torch.no_grad():
        want = model(x.clone())
    got = load_exported(path)(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= TOL * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("name", list(SHAPES))
def test_compacted_onnx_in_onnxruntime_equals_pytorch(name, tmp_path):
    model = _sparse_model(name)
    small = compact(model, torch.rand((4, *SHAPES[name])))
    path = tmp_path / f"{name}.onnx"
    export_model(small, torch.rand((4, *SHAPES[name])), path)
    _assert_file_computes(model, path, (3, *SHAPES[name]))  # another batch size: the batch dimension is dynamic
    _assert_file_computes(model, path, (1, *SHAPES[name]))


def test_torch_export_program_equals_pytorch(tmp_path):
    model = _sparse_model("convnet", seed=1)
    small = compact(model, torch.rand(4, 1, 28, 28))
    path = tmp_path / "convnet.pt2"
    export_model(small, torch.rand(4, 1, 28, 28), path)
    _assert_file_computes(model, path, (5, 1, 28, 28))


def test_sparse_initializers_shrink_the_file_not_the_outputs(tmp_path):
    torch.manual_seed(2)
    model = create_model("mlp").eval()
    with torch.no_grad():
        for fc in (model.layers.fc1, model.layers.fc2):
            fc.weight.mul_(torch.rand(fc.weight.shape) < 0.05)
    x = torch.rand(4, 1, 28, 28)
    export_model(model, x, tmp_path / "dense.onnx")
    export_model(model, x, tmp_path / "sparse.onnx", sparse_weights=True)
    dense, sparse = (tmp_path / "dense.onnx").stat().st_size, (tmp_path / "sparse.onnx").stat().st_size
    assert sparse < dense / 4  # 5 % of the weights at 12 bytes each, against 4 bytes for every weight
    _assert_file_computes(model, tmp_path / "sparse.onnx", (6, 1, 28, 28))


def test_bad_requests_are_clear_errors(tmp_path):
    model = create_model("mlp").eval()
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, x, tmp_path / "m.onnx", "tflite")
    with pytest.raises(ValueError, match="ONNX files only"):
        export_model(model, x, tmp_path / "m.pt2", sparse_weights=True)
    with pytest.raises(ValueError, match="SparseLinear"):
        export_model(compact(model, x, sparse_below=1.0), x, tmp_path / "m.onnx")


@pytest.mark.slow
def test_cli_exports_a_trained_run(mnist_root, tmp_path, capsys):
    run = tmp_path / "demo"
    # What `make demo` writes (the mnist-mlp preset), one epoch.
    assert main(["train", "mnist-mlp", "--set", "epochs=1", "--set", f"data_root={mnist_root}",
                 "--set", "progress=off", "--out", str(run)]) == 0
    capsys.readouterr()
    for fmt, name in [("onnx", "mlp.onnx"), ("pt", "mlp.pt2")]:
        assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path / name), "--images", "64"]) == 0
        out = capsys.readouterr().out
        assert f"{fmt} file: dense" in out and "same prediction on 100.00 %" in out
        assert (tmp_path / name).stat().st_size > 0
    x = torch.rand(2, 1, 28, 28)
    assert load_exported(tmp_path / "mlp.onnx")(x).shape == (2, 10)
    # A run written before an execution setting was retired still exports.
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    ck["config"]["fuse_conv_pool"] = True
    torch.save(ck, run / "checkpoint.pt")
    assert main(["export", str(run), "--format", "pt", "--out", str(tmp_path / "old.pt2"), "--images", "8"]) == 0


def test_cli_missing_extra_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'bregman[export]'" in err and len(err.strip().splitlines()) == 1
