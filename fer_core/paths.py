"""Check where a command will write before it does any work.

An audit that decodes 36k images and then finds that `--out` is a file has wasted the user's
time and ended in a traceback; these checks run first and raise `ValueError` (one line, naming
the option and the path). They only look: nothing is created.

`check_output_apart` keeps what a command writes away from what it must never replace or mix
with: the workspace (the edit log, caches, runs) and the source data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_WORKSPACE = "workspace"


def check_output_folder(path: str | os.PathLike, option: str, writable: bool = True) -> Path:
    """`path` if it is a folder, or could be made one: not a file, not under a file, writable
    (unless `writable` is False)."""
    path = Path(check_path_given(path, option))
    if os.path.lexists(path) and not path.exists():
        raise ValueError(f"{option} {path} is a symlink that leads nowhere")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    _check_existing_ancestor(path, path, option, writable)
    return path


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """`path` if a file could be written there: not a folder, its folder not a file, writable."""
    path = Path(check_path_given(path, option))
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder, not a file")
    _check_existing_ancestor(path, path.parent, option)
    return path


def check_workspace(path: str | os.PathLike | None = None, option: str = "--workspace",
                    data: str | os.PathLike | None = None) -> Path:
    """The workspace folder `workspace.resolve_workspace` would use: not a file, not under a file, and
    not the source data nor inside it (`data`, when given: caches and the edit log would be written
    into the images' tree, e.g. `DATA=.` with the default ./workspace). It may be read-only: an audit
    whose caches are all there only reads it."""
    path, option = locate_workspace(path, option)
    if data is not None and os.fspath(data).strip() and Path(data).is_dir():
        where, kept = _resolve(path, option), _resolve(Path(data), "the source data")
        if where == kept or kept in where.parents:
            relation = "is" if where == kept else "lies inside"
            raise ValueError(f"{option} {path} {relation} the source data {data}; FER Audit never writes into "
                             f"the data: choose another {option}")
    return check_output_folder(path, option, writable=False)


def locate_workspace(path: str | os.PathLike | None = None, option: str = "--workspace") -> tuple[Path, str]:
    """The workspace a command uses and what chose it: `path` (the option), else $FER_AUDIT_HOME, else
    ./workspace. Nothing is created; an empty `path` is a ValueError (it would mean the current folder)."""
    if path is not None:
        return Path(check_path_given(path, option)), option
    if os.environ.get("FER_AUDIT_HOME"):
        return Path(os.environ["FER_AUDIT_HOME"]), "FER_AUDIT_HOME"
    return Path(DEFAULT_WORKSPACE), option


def check_path_given(path: str | os.PathLike, option: str) -> str | os.PathLike:
    """`path`, or ValueError when it is empty or blank: `Path("")` is the current folder, which nobody means."""
    if not os.fspath(path).strip():
        raise ValueError(f"{option} is empty")
    return path


def protected_places(workspace: str | os.PathLike | None = None,
                     data: str | os.PathLike | None = None) -> dict[str, Path]:
    """What an output must stay apart from: the workspace the command uses, and the source data when given."""
    places = {"the source data": Path(data)} if data is not None and os.fspath(data).strip() else {}
    places["the workspace"] = locate_workspace(workspace)[0]
    return places


def check_output_apart(path: str | os.PathLike, option: str, protected: Mapping[str, str | os.PathLike]) -> Path:
    """`path`, or ValueError when it is, contains, or lies inside one of `protected` (a name such as
    "the workspace" → its path): replacing it could delete the edit log or the images, writing into
    it mixes outputs with caches or data. Links and `..` are resolved on both sides first."""
    target = _resolve(Path(check_path_given(path, option)), option)
    for name, place in protected.items():
        kept = _resolve(Path(place), name)
        if target == kept:
            relation = "is"
        elif kept in target.parents:
            relation = "lies inside"
        elif target in kept.parents:
            relation = "contains"
        else:
            continue
        raise ValueError(f"{option} {path} {relation} {name} {place}; choose another {option}")
    return Path(path)


def _resolve(path: Path, option: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop
        raise ValueError(f"{option} {path}: cannot follow its links ({error})") from None


def _check_existing_ancestor(path: Path, start: Path, option: str, writable: bool = True) -> None:
    """The nearest folder above (or at) `start` that exists must be a folder (we may write in)."""
    existing = start.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {path} lies under {existing}, which is a file, not a folder")
    if writable and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in {existing} (permission denied or read-only)")
