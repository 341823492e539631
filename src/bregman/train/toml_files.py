"""TOML files: the shipped presets and sweeps (found by name), any file by path, and flat tables as text.

A name is looked up in the package's ``configs`` folder (``configs/sweeps`` for sweeps), which works
from a wheel as from a checkout; anything ending in ``.toml`` or holding a slash is a path. Reading
gives the table with the name to quote in errors; writing goes through ``tomli_w``.
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from bregman.train.validate import ConfigError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["configs_dir", "is_toml_path", "list_toml", "read_toml", "to_toml"]


def configs_dir() -> Any:
    """The shipped ``configs`` folder (a Traversable: works from a wheel as from a checkout)."""
    return resources.files("bregman.configs")


def is_toml_path(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` is a file path rather than the name of a shipped file."""
    s = str(name_or_path)
    return isinstance(name_or_path, Path) or s.endswith(".toml") or "/" in s or "\\" in s


def list_toml(folder: Any) -> list[str]:
    """The names (stems) of the TOML files in ``folder``, sorted."""
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def read_toml(name_or_path: str | Path, kind: str) -> tuple[dict[str, Any], str, Path | None]:
    """(table, display name, file path or None for a shipped resource) of a ``kind`` ("preset" or
    "sweep") given by name or path.

    Raises:
        ConfigError: a missing file, an unknown name (naming the nearest known one), invalid TOML.
    """
    if is_toml_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"{kind} file not found: {str(path)!r}")
        text, where, file = path.read_text(encoding="utf-8"), str(path), path.resolve()
    else:
        folder = configs_dir() if kind == "preset" else configs_dir().joinpath("sweeps")
        resource = folder.joinpath(f"{name_or_path}.toml")
        if not resource.is_file():
            known = list_toml(folder)
            hint = did_you_mean(str(name_or_path), known)
            raise ConfigError(f"unknown {kind} {str(name_or_path)!r}; {hint + ' ' if hint else ''}"
                              f"known: {', '.join(known)}")
        text, where, file = resource.read_text(encoding="utf-8"), f"{name_or_path}.toml", None
    try:
        return tomllib.loads(text), where, file
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: invalid TOML: {err}") from None


def to_toml(table: dict[str, Any], header: str) -> str:
    """A flat ``table`` as TOML text (``tomli_w``) under a ``# header`` line; ``None`` is written as
    ``"none"`` (TOML has no null)."""
    return f"# {header}\n" + tomli_w.dumps({k: "none" if v is None else v for k, v in table.items()})
