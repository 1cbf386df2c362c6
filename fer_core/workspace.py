"""Where FER Audit keeps its state: the edit/run database, decoded caches and run folders."""

import os
from pathlib import Path

from .paths import check_output_folder


def resolve_workspace(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: `path` if given, else $FER_AUDIT_HOME, else ./workspace. Created if missing;
    ValueError (one line, naming the path) when it is a file, lies under one, or cannot be created."""
    chosen = Path(path if path is not None else os.environ.get("FER_AUDIT_HOME", "workspace"))
    try:
        chosen.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        check_output_folder(chosen, "workspace")  # names the file in the way, or the unwritable folder
        raise ValueError(f"cannot create workspace {chosen}: {error.strerror}") from None
    return chosen


def cache_dir(workspace: str | os.PathLike | None = None) -> Path:
    folder = resolve_workspace(workspace) / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
