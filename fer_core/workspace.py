"""Where FER Audit keeps its state: the edit/run database, decoded caches and run folders."""

import os
from pathlib import Path

from fer_core.files import make_folder
from fer_core.paths import check_output_folder, locate_workspace


def resolve_workspace(path: str | os.PathLike | None = None) -> Path:
    """The workspace folder: `path` if given, else $FER_AUDIT_HOME, else ./workspace. Created if missing;
    ValueError (one line, naming the path) when it is empty, a file, lies under one, or cannot be created."""
    chosen, _ = locate_workspace(path)
    try:
        chosen.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        check_output_folder(chosen, "workspace")  # names the file in the way, or the unwritable folder
        raise ValueError(f"cannot create workspace {chosen}: {error.strerror}") from None
    return chosen


def cache_dir(workspace: str | os.PathLike | None = None, create: bool = True) -> Path:
    """`<workspace>/cache`, created unless `create` is False (a reader: a read-only workspace stays
    readable); one-line ValueError when a file is in its place or the disk refuses the folder."""
    folder = check_cache_folder(resolve_workspace(workspace) / "cache")
    return make_folder(folder) if create else folder


def check_cache_folder(folder: Path) -> Path:
    """`folder`, or ValueError naming it and the fix when something other than a folder is in its place."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not FER Audit's cache folder: move it away (the caches are "
                         f"rebuilt) or use another --workspace")
    return folder


DATA_ROOT_ENV = "FER_AUDIT_DATA_ROOT"


def data_root() -> Path:
    """The folder that paths typed in the browser must lie under (the CLI takes any path).

    $FER_AUDIT_DATA_ROOT, else the folder holding $FER_DATA, else the working directory.
    """
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser().resolve()
    if os.environ.get("FER_DATA"):
        return Path(os.environ["FER_DATA"]).expanduser().resolve().parent
    return Path.cwd().resolve()


def check_under_data_root(path: str | os.PathLike, root: Path) -> Path:
    """`path` resolved (links followed, relative to `root`), or ValueError when it lies outside `root`.

    Checked before the path is looked at, so the browser learns nothing about files outside the root.
    """
    text = str(path).strip()
    if not text:
        raise ValueError("no data path given")
    resolved = (root / Path(text).expanduser()).resolve()  # an absolute path replaces `root`
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"{text} is outside the data folder {root}; the app opens data under it only "
                         f"(start it with {DATA_ROOT_ENV}=/another/folder to change that)")
    return resolved
