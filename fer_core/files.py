"""Atomic writes: every file the project writes goes to a temporary sibling first, then is renamed
over its target, so a reader (another process, a crash, a second app session) never sees half a file.

One helper for each kind of content, all through `write_atomically`:

* `write_atomically(path, write)`: `write(handle)` fills a binary handle (numpy's `np.save`,
  pandas' `to_parquet`, Arrow's CSV writer, ...).
* `write_bytes_atomically`, `write_text_atomically`, `write_json_atomically`: the common cases.
* `replace_atomically(target, build)`: `build(temporary_path)` creates a file or a whole folder,
  which then takes the target's place (a folder is swapped in with two renames).

The temporary name is unique per call (not just per process), so two threads of the app writing
the same cache file do not clobber each other's half-written temporary. It carries the writer's
process id, so `replace_atomically` can remove the temporaries of its target that a killed process
(SIGKILL, power loss) left behind, and nothing else (`remove_stale_temporaries`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _unique_sibling(target: Path, kind: str) -> Path:
    """A hidden name beside `target`, unique per call (process id and a random token)."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove what killed writers left beside `target`: only names `_unique_sibling` makes for `target`,
    only when their process is gone. A half-built temporary (`tmp`) always goes; an earlier output set
    aside to be replaced (`old`) only while `target` exists: until then it may be the only copy.
    Returns the paths removed."""
    target = Path(target)
    kinds = "tmp|old" if os.path.lexists(target) else "tmp"
    pattern = re.compile(re.escape(f".{target.name}.") + f"(?:{kinds})-" + r"(\d+)-[0-9a-f]{8}")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _process_alive(int(match[1])):
            remove_path(target.parent / name)
            removed.append(target.parent / name)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether process `pid` exists (True when unsure, so a live writer's temporary is never removed)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Fill a temporary sibling of `path` through `write(binary_handle)`, then rename it over `path`.

    On any error the temporary is removed and `path` is left as it was. Returns `path`.
    """
    target = Path(path)
    temporary = _unique_sibling(target, "tmp")
    handle = open(temporary, "xb")  # "x": never write through a file someone else put there
    try:
        with handle:
            write(handle)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return write_atomically(path, lambda handle: handle.write(data))


def write_text_atomically(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (UTF-8 by default)."""
    return write_bytes_atomically(path, text.encode(encoding))


def write_json_atomically(path: str | os.PathLike, document: Any, indent: int | None = 2) -> Path:
    """Write `document` as JSON (with a final newline) to `path` atomically."""
    return write_text_atomically(path, json.dumps(document, indent=indent) + "\n")


def replace_atomically(target: str | os.PathLike, build: Callable[[Path], None]) -> Path:
    """Let `build(temporary)` create a file or a folder at a hidden sibling path, then put it in `target`'s place.

    A folder cannot be renamed over a non-empty folder (or a file over a folder), so an existing
    target is first renamed aside and restored if the swap fails. On failure only the temporary goes.
    """
    target = Path(target)
    remove_stale_temporaries(target)
    temporary, aside = _unique_sibling(target, "tmp"), _unique_sibling(target, "old")
    try:
        build(temporary)
        if target.exists() and (target.is_dir() or temporary.is_dir()):
            os.replace(target, aside)
            try:
                os.replace(temporary, target)
            except BaseException:
                os.replace(aside, target)
                raise
        else:
            os.replace(temporary, target)
    finally:
        remove_path(temporary)
        remove_path(aside)
    return target


def remove_path(path: Path) -> None:
    """Remove a file, a link or a folder tree; nothing if it does not exist."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
