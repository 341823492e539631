"""The import graph of ``src/bregman``: no cycles (function-local imports included: every module's AST
is read, not what happens to be imported), and the arrows of ARCHITECTURE.md: the library core imports
nothing of the experiment code, and ``import bregman`` loads nothing heavy."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import bregman

ROOT = Path(bregman.__file__).resolve().parent
#: the library core (ARCHITECTURE.md) and what it must never reach, directly or through another module
CORE = ("bregman.regularizers", "bregman.optim", "bregman.control", "bregman.init", "bregman.metrics",
        "bregman.params", "bregman.compact")
EXPERIMENT = ("bregman.data", "bregman.models", "bregman.train", "bregman.report", "bregman.cli")
#: modules ``import bregman`` must not load
HEAVY = ("matplotlib", "tqdm", "onnx", "onnxruntime", "torch_pruning", *EXPERIMENT, "bregman.export",
         "bregman.figures")


def _module_name(path: Path) -> str:
    parts = ("bregman", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _imports(name: str, path: Path) -> set[str]:
    """The ``bregman`` modules that ``name`` imports anywhere in its source (``from pkg import mod``
    counts as ``pkg.mod`` where that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _reach(start: str) -> dict[str, str]:
    """Every module reachable from ``start``, with the module that imports it on the way."""
    seen, todo = {start: ""}, [start]
    while todo:
        v = todo.pop()
        for w in GRAPH[v]:
            if w not in seen:
                seen[w] = v
                todo.append(w)
    return seen


def test_the_walk_sees_the_package():
    assert "bregman.train.loop" in MODULES and "bregman.train.build" in GRAPH["bregman.train.loop"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_core_imports_no_experiment_code():
    bad = {}
    for core in (m for m in MODULES if _under(m, CORE)):
        reach = _reach(core)
        bad.update({f"{core} → … {reach[m]} → {m}": m for m in reach if _under(m, EXPERIMENT)})
    assert not bad, sorted(bad)


def test_import_bregman_is_light():
    """What ``import bregman`` adds to ``import torch`` (torch itself loads tqdm, through torch.hub)."""
    code = (f"import sys, torch; before = set(sys.modules); import bregman; "
            f"print([m for m in {list(HEAVY)!r} if m in sys.modules and m not in before])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
