r"""Export a (compacted) net to a deployable file, and check the file computes what the net does.

Two formats, each with a dynamic batch dimension:

* ``"onnx"``: ``torch.onnx.export(..., dynamo=True)`` (needs ``onnx`` and ``onnxscript``), checked by
  running the file in ``onnxruntime``;
* ``"pt"``: a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``), checked by
  loading it back with ``torch.export.load``.

:func:`export_model` writes the file atomically and returns the largest absolute difference
between the file's outputs and the model's on the example inputs; it raises when that exceeds
``tol`` (relative to ``max(1, max |model(x)|)``). :func:`export_run` does it for a finished
training run: it compacts the run's best-validation model (:func:`bregman.compact.compact`),
exports the dense and the compacted net, and compares both files with the PyTorch model on test
images.

The optional dependencies (the ``export`` extra: ``pip install 'bregman[export]'``) are imported
only here, when a function runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bregman._atomic import write_atomic
from bregman.compact import SparseLinear, compact, count_parameters, require_extra

__all__ = ["FORMATS", "export_model", "load_exported", "export_run", "ExportReport", "sparse_initializers_"]

#: format → file suffix
FORMATS = {"onnx": ".onnx", "pt": ".pt2"}


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known formats: {', '.join(FORMATS)}")


def _dynamic_batch(example: Tensor) -> tuple[dict[int, Any], ...]:
    return ({0: torch.export.Dim("batch", min=1, max=1 << 16)} if example.dim() else {},)


def _exported_program(model: nn.Module, example: Tensor):
    return torch.export.export(model.eval(), (example,), dynamic_shapes=_dynamic_batch(example))


def sparse_initializers_(proto, max_density: float = 1 / 3, min_size: int = 1024) -> int:
    """Store, in place, every initializer of the ONNX ``proto`` with at least ``min_size`` entries
    of which at most ``max_density`` are non-zero as a sparse initializer (COO: the non-zero values
    and their int64 flat indices, 12 bytes per non-zero against 4 per dense float32 entry, so it
    pays below a third). onnxruntime makes them dense when it loads the file: smaller files, the
    same outputs and speed. Returns how many were converted."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph, n = proto.graph, 0
    for init in list(graph.initializer):
        a = numpy_helper.to_array(init)
        if a.size < min_size or np.count_nonzero(a) > max_density * a.size:
            continue
        flat = a.reshape(-1)
        idx = np.flatnonzero(flat)
        graph.sparse_initializer.append(helper.make_sparse_tensor(
            numpy_helper.from_array(flat[idx], name=init.name),
            numpy_helper.from_array(idx.astype(np.int64), name=f"{init.name}.indices"), list(a.shape)))
        graph.initializer.remove(init)
        n += 1
    return n


def _write(model: nn.Module, example: Tensor, path: Path, fmt: str, sparse_weights: bool) -> None:
    if fmt == "onnx":
        require_extra("onnxscript")
        require_extra("onnx")
        with _quiet():
            program = torch.onnx.export(_exported_program(model, example), (example,), dynamo=True,
                                        optimize=True, verbose=False)
        proto = program.model_proto
        if sparse_weights:
            sparse_initializers_(proto)
        write_atomic(path, lambda f: f.write(proto.SerializeToString()))
    else:
        with _quiet():
            program = _exported_program(model, example)
        write_atomic(path, lambda f: torch.export.save(program, f))


@contextlib.contextmanager
def _quiet():
    """The exporter logs that torchvision's operators are not registered, and warns about its own
    deprecated internals: not the user's concern."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def load_exported(path: str | os.PathLike, fmt: str | None = None) -> Callable[[Tensor], Tensor]:
    """A function ``x ↦ y`` that runs the exported file (``onnxruntime`` for ONNX, the loaded
    ``torch.export`` program for ``.pt2``); ``fmt`` defaults to the file's suffix."""
    path = Path(path)
    fmt = fmt or next((k for k, s in FORMATS.items() if path.suffix == s), None)
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path} from its suffix; pass one of {', '.join(FORMATS)}")
    _check_format(fmt)
    if fmt == "pt":
        with open(path, "rb") as f:
            module = torch.export.load(f).module()
        return lambda x: module(x)
    ort = require_extra("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy()})[0])


def _compare(model: nn.Module, run: Callable[[Tensor], Tensor], x: Tensor) -> tuple[float, float, Tensor]:
    """Max |file(x) − model(x)|, the scale ``max(1, max |model(x)|)``, and the file's output."""
    with torch.inference_mode():
        want = model(x.clone())
        got = run(x.clone())
    return (got.double() - want.double()).abs().max().item(), max(1.0, want.abs().max().item()), got


def export_model(model: nn.Module, example: Tensor, path: str | os.PathLike, fmt: str | None = None, *,
                 sparse_weights: bool = False, tol: float = 1e-4) -> float:
    """Write ``model`` (eval mode, batch dimension dynamic) to ``path`` and run the file on
    ``example``; returns ``max |file(example) − model(example)|``. ``fmt`` defaults to the
    suffix's (``.onnx``, ``.pt2``); ``sparse_weights`` stores mostly-zero ONNX weights as sparse
    initializers (:func:`sparse_initializers_`).

    Raises:
        RuntimeError: the file's outputs differ by more than ``tol · max(1, max |model(example)|)``
            (the file is removed).
        ImportError: the export extra is missing.
    """
    path = Path(path)
    fmt = fmt or next((k for k, s in FORMATS.items() if path.suffix == s), "onnx")
    _check_format(fmt)
    if any(isinstance(m, SparseLinear) for m in model.modules()):
        raise ValueError("sparse-format layers (SparseLinear) do not export; compact without sparse_below")
    if sparse_weights and fmt != "onnx":
        raise ValueError(f"sparse_weights applies to ONNX files only, not {fmt!r}")
    model.eval()
    _write(model, example, path, fmt, sparse_weights)
    diff, scale, _ = _compare(model, load_exported(path, fmt), example)
    if not diff <= tol * scale:
        path.unlink(missing_ok=True)
        raise RuntimeError(f"the exported {fmt} file's outputs differ from PyTorch's by {diff:.3g} "
                           f"(allowed {tol * scale:.3g}); nothing written")
    return diff


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_run` wrote and measured (sizes in bytes)."""
    path: str
    format: str
    dense_bytes: int
    compact_bytes: int
    dense_parameters: int
    compact_parameters: int
    max_abs_diff: float  # file vs the run's PyTorch model, on the test images
    agreement: float | None  # fraction of equal arg-max predictions (classifiers), else None
    images: int
    sparse_weights: bool  # the compacted ONNX file stores mostly-zero weights as sparse initializers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_model_and_images(run_dir: Path, n: int) -> tuple[nn.Module, Tensor, bool]:
    """The run's best-validation model (plain layers, eval mode) and its first ``n`` test images
    as floats in [0, 1]; and whether it is a classifier."""
    from bregman.data import load_dataset, noisy_splits
    from bregman.data.loader import to_float
    from bregman.models import create_model
    from bregman.train.checkpoint import load_checkpoint
    from bregman.train.config import Config, config_from_dict

    ck = load_checkpoint(run_dir / "checkpoint.pt")
    # Keys a later version retired (execution settings) do not change what the model computes.
    known = {f.name for f in dataclasses.fields(Config)}
    cfg = config_from_dict({k: v for k, v in ck["config"].items() if k in known})
    state = (ck.get("best") or {}).get("state") or ck.get("model")
    if state is None:
        raise ValueError(f"{run_dir}/checkpoint.pt holds no model")
    model = create_model(cfg.model)  # the plain layers: speed settings change how, not what, it computes
    model.load_state_dict(state)
    denoise = cfg.dataset == "mnist-denoise"
    splits = load_dataset("mnist" if denoise else cfg.dataset, cfg.data_root, split=cfg.split, seed=cfg.split_seed)
    if denoise:
        splits = noisy_splits(splits, cfg.noise_std, seed=cfg.split_seed)
    return model.eval(), to_float(splits.test.images[:n]), not denoise


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, fmt: str = "onnx", *, images: int = 256,
               sparse_weights: bool = True, tol: float = 1e-4) -> ExportReport:
    """Compact the best-validation model of the run in ``run_dir``, export it to ``out`` and check
    the file on the first ``images`` test images against the run's PyTorch model. The dense model
    is exported too (as it is, without sparse initializers), to a temporary file, for its size.
    ``sparse_weights``: mostly-zero weights of an ONNX file as sparse initializers.

    Raises:
        FileNotFoundError: no ``checkpoint.pt`` in ``run_dir``.
        CompactionError / RuntimeError: the compacted model or the file does not compute the
            model's outputs.
    """
    _check_format(fmt)
    for module in ("torch_pruning", "onnx", "onnxscript", "onnxruntime") if fmt == "onnx" else ("torch_pruning",):
        require_extra(module)  # before any data is loaded
    run_dir, out = Path(run_dir), Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: name a file, e.g. {out / ('model' + FORMATS[fmt])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    model, x, classifier = _run_model_and_images(run_dir, images)
    small = compact(model, x)
    export_model(small, x, out, fmt, sparse_weights=sparse_weights and fmt == "onnx", tol=tol)
    with tempfile.TemporaryDirectory() as tmp:
        dense_path = Path(tmp) / f"dense{FORMATS[fmt]}"
        export_model(model, x, dense_path, fmt, tol=tol)
        dense_bytes = dense_path.stat().st_size
    diff, _, got = _compare(model, load_exported(out, fmt), x)
    agreement = None
    if classifier:
        with torch.inference_mode():
            agreement = (got.argmax(1) == model(x.clone()).argmax(1)).double().mean().item()
    return ExportReport(str(out), fmt, dense_bytes, out.stat().st_size, count_parameters(model),
                        count_parameters(small), diff, agreement, x.shape[0], sparse_weights and fmt == "onnx")

