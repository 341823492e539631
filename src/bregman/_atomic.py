"""Files that survive a crash: atomic writes, line-by-line appends, tolerant reads, writable folders.

* :func:`write_atomic` writes a temporary file in the same folder, flushes and fsyncs it, then
  renames it over ``path`` (and fsyncs the folder, so the rename survives a power cut). An interrupted write (Ctrl-C, kill -9, a full disk, ``ulimit -f``)
  never leaves a truncated file under the final name; what was there before stays intact.
* :func:`append_line` appends one line to a JSONL file and fsyncs it: a crash loses at most the
  line being written, and leaves at most a torn last line, which :func:`read_jsonl` drops with a
  warning that names the file.
* :func:`read_json_object` / :func:`read_jsonl` refuse a file of the wrong JSON type with a one-line
  error naming the file, instead of failing later on ``.get``.
* :func:`writable_dir` checks an output folder before any work is done.

Everything here is standard library only (``import bregman`` stays light).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

__all__ = ["WriteError", "write_atomic", "write_text_atomic", "append_line", "read_json_object", "read_jsonl",
           "writable_dir", "save_figure"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: permissions of new files: what ``open()`` would give (mkstemp alone gives 0600)
_FILE_MODE = 0o666 & ~_umask()


class WriteError(OSError):
    """A file could not be written; the message names it and says the old one is intact."""


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object], *, mode: int | None = None) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, flush, fsync, rename to ``path``.

    Raises:
        WriteError: the folder or the file cannot be written (full disk, file size limit,
            permissions); ``path`` is as it was and no temporary file is left behind.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE if mode is None else mode)  # mkstemp makes 0600
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WriteError(f"cannot write {path} ({e.strerror or e}); any earlier {path.name} is intact: "
                         f"free disk space or choose another output folder") from e
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open a folder; else a no-op)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_atomic` of ``text`` (UTF-8)."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` (no newline in it) and a newline to ``path``, then fsync.

    A file that does not end in a newline (a torn line from a crash) gets one first, so the new
    line is never glued to the torn one."""
    path = Path(path)
    try:
        with open(path, "ab+") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise WriteError(f"cannot append to {path} ({e.strerror or e}): free disk space or choose another "
                         f"output folder") from e


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object (dict) in ``path``.

    Raises:
        ValueError: the file is not JSON, or holds another JSON type; the message names the file.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}): restore it, or delete it to have it rewritten") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a JSON {type(obj).__name__}, not an object: restore it, or delete "
                         f"it to have it rewritten")
    return obj


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per line (blank lines skipped).

    A last line that is not valid JSON (torn by a crash, or a run still writing it) is dropped with
    a ``UserWarning`` that names the file.

    Raises:
        ValueError: a line before the last is not JSON, or a line holds another JSON type.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                warnings.warn(f"{path}: the last line ({i + 1}) is incomplete and was dropped (a run still "
                              f"writing it, or one that was killed)", stacklevel=2)
                break
            raise ValueError(f"{path}:{i + 1}: not JSON ({e}): restore the file, or remove that line") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{i + 1}: a JSON {type(obj).__name__}, not an object: restore the file, "
                             f"or remove that line")
        out.append(obj)
    return out


def writable_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents) if needed and check that files can be made in it.

    Raises:
        WriteError: ``path`` (or a parent) is a file, or the folder cannot be created or written;
            the message names ``flag`` and the path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(f"{flag} {path} is a file, not a folder: choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".write-test.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise WriteError(f"{flag} {path} cannot be written ({e.strerror or e}): choose another folder") from None
    return path


def save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` (a matplotlib figure) through :func:`write_atomic`, in the format the
    suffix of ``path`` names (PNG without one)."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return write_atomic(path, lambda f: fig.savefig(f, format=fmt, **savefig_kwargs))
