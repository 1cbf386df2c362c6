"""Check where a command will write before it does any work.

An audit that decodes 36k images and then finds that `--out` is a file has wasted the user's
time and ended in a traceback; these checks run first and raise `ValueError` (one line, naming
the option and the path). They only look: nothing is created.
"""

from __future__ import annotations

import os
from pathlib import Path


def check_output_folder(path: str | os.PathLike, option: str, writable: bool = True) -> Path:
    """`path` if it is a folder, or could be made one: not a file, not under a file, writable
    (unless `writable` is False)."""
    path = Path(path)
    if os.path.lexists(path) and not path.exists():
        raise ValueError(f"{option} {path} is a symlink that leads nowhere")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    _check_existing_ancestor(path, path, option, writable)
    return path


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """`path` if a file could be written there: not a folder, its folder not a file, writable."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder, not a file")
    _check_existing_ancestor(path, path.parent, option)
    return path


def check_workspace(path: str | os.PathLike | None = None, option: str = "--workspace") -> Path:
    """The workspace folder `workspace.resolve_workspace` would use: not a file, not under a file.
    It may be read-only: an audit whose caches are all there only reads it."""
    if path is None and os.environ.get("FER_AUDIT_HOME"):
        path, option = os.environ["FER_AUDIT_HOME"], "FER_AUDIT_HOME"
    return check_output_folder("workspace" if path is None else path, option, writable=False)


def _check_existing_ancestor(path: Path, start: Path, option: str, writable: bool = True) -> None:
    """The nearest folder above (or at) `start` that exists must be a folder (we may write in)."""
    existing = start.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {path} lies under {existing}, which is a file, not a folder")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in {existing} (permission denied or read-only)")
