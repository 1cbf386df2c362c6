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

A write the disk refuses (full, read-only, no permission) is a one-line ValueError naming the
target (`write_failure`): the user can fix it, and the temporary is gone, so nothing was written.
`save_atomically` is for a library that insists on its own file name (Keras' `*.keras`);
`make_folder` creates an output folder under the same rule.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    with reporting_write_errors(target):
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
        with reporting_write_errors(target):
            _swap_in(target, temporary, aside, build)
    finally:
        remove_path(temporary)
        remove_path(aside)
    return target


def _swap_in(target: Path, temporary: Path, aside: Path, build: Callable[[Path], None]) -> None:
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


def save_atomically(path: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """Let `save(file)` write a file of `path`'s very name (Keras accepts only `*.keras`) inside a hidden
    folder beside `path`, then rename it over `path`: a full disk never leaves a truncated file there.
    The folder goes whatever happens; errors as in `write_atomically`."""
    target = Path(path)
    with reporting_write_errors(target), tempfile.TemporaryDirectory(dir=target.parent,
                                                                     prefix=f".{target.name}.save-") as folder:
        saved = Path(folder) / target.name
        save(saved)
        os.replace(saved, target)
    return target


def make_folder(path: str | os.PathLike) -> Path:
    """`path` as a folder (created with its parents); a refusal of the disk is one line (`write_failure`)."""
    folder = Path(path)
    with reporting_write_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------------------------------------
# Writes the disk refuses

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE_ERRNOS = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                     errno.EPERM: "permission denied"}


LOW_DISK_BYTES = 1 << 20  # less free space than this: a write there has likely just failed for want of it


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the file system holding `path` (or its nearest existing parent); None if unknown."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_is_full(path: str | os.PathLike) -> bool:
    """Whether the file system holding `path` has (almost) no space left: less than LOW_DISK_BYTES."""
    free = free_bytes(path)
    return free is not None and free < LOW_DISK_BYTES


def disk_full_message(path: str | os.PathLike, reason: str) -> str:
    """The one line for a write to `path` that found the disk full (`reason`: what the system said)."""
    return f"disk full writing {path} ({reason}); nothing was written there"


def write_failure(error: OSError, path: str | os.PathLike) -> str | None:
    """The one line for an OSError a user can fix while writing `path` (disk full, read-only file system,
    permission denied); None for any other error."""
    if error.errno in DISK_FULL_ERRNOS:
        return disk_full_message(path, os.strerror(error.errno))
    if error.errno in UNWRITABLE_ERRNOS:
        return f"cannot write {path}: {UNWRITABLE_ERRNOS[error.errno]}"
    return None


@contextmanager
def reporting_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """Raise an OSError that `write_failure` describes as a one-line ValueError naming `path`
    (not the temporary the error names, if any); any other error unchanged."""
    try:
        yield
    except OSError as error:
        message = write_failure(error, path)
        if message is None:
            raise
        raise ValueError(message) from error


def remove_path(path: Path) -> None:
    """Remove a file, a link or a folder tree; nothing if it does not exist."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
