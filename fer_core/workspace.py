"""Where FER Audit keeps its state: the edit/run database, decoded caches and run folders."""

import os
from pathlib import Path


def resolve_workspace(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: `path` if given, else $FER_AUDIT_HOME, else ./workspace. Created if missing."""
    chosen = Path(path if path is not None else os.environ.get("FER_AUDIT_HOME", "workspace"))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


def cache_dir(workspace: str | os.PathLike | None = None) -> Path:
    folder = resolve_workspace(workspace) / "cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
