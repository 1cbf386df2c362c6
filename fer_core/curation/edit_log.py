"""The edit log in the workspace database: its table, reading it, and writing one planned batch.

The log is append-only (undo is a new row that reverses an earlier one) and lives in the
workspace database (store.py), next to the tables other modules own. Every write is one short
transaction (`store.transaction`) that plans against the state it locked and then inserts its
rows, so concurrent writers (CLI, app, scripts) serialize cleanly and a killed writer leaves all
of its batch or none of it. A workspace is bound to the fingerprint of the first dataset edited
in it; edits against another dataset are refused. The operations users call are in edits.py.
"""

from __future__ import annotations

import getpass
import os
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from fer_core import store
from fer_core.curation.replay import ACTIONS, CurationState, Edit, apply_edits, find_active_edits, replay_edits
from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS
from fer_core.workspace import resolve_workspace

if TYPE_CHECKING:
    import pandas as pd

EDIT_COLUMNS = ("edit_id", "batch_id", "sample_id", "action", "old_label", "new_label", "reason",
                "author", "created_at", "fingerprint", "undoes")


MAX_REASON_CHARACTERS = 1000  # a reason is a sentence for the history, not a document


EDITS_SCHEMA = store.Schema("edits", ("edits",), f"""
CREATE TABLE IF NOT EXISTS edits (
    edit_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id    TEXT NOT NULL,
    sample_id   TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ({", ".join(f"'{action}'" for action in ACTIONS)})),
    old_label   TEXT,
    new_label   TEXT,
    reason      TEXT NOT NULL,
    author      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    undoes      INTEGER REFERENCES edits (edit_id)
);
CREATE INDEX IF NOT EXISTS edits_by_sample ON edits (sample_id);
CREATE INDEX IF NOT EXISTS edits_by_batch ON edits (batch_id);
""")


class Change(NamedTuple):
    """A planned edit before it gets a batch, author, time and id."""

    sample_id: str
    action: str
    old_label: int | str | None
    new_label: int | str | None
    undoes: int | None = None


Planner = Callable[[CurationState, list[Edit]], list[Change]]


def connect_database(workspace: str | os.PathLike | None = None) -> sqlite3.Connection:
    """A writable connection with the edit tables (the caller closes it); see store.connect."""
    return store.connect(workspace, EDITS_SCHEMA)


def read_workspace_meta(workspace: str | os.PathLike | None = None) -> dict[str, str]:
    """The workspace's key/value facts (dataset_fingerprint, data_path, ...); empty when none yet."""
    with store.reading(workspace) as connection:
        return _read_log(connection)[0]


def _read_log(connection: sqlite3.Connection | None) -> tuple[dict[str, str], list[Edit]]:
    """Workspace facts and every edit; empty when the tables do not exist yet."""
    tables = store.table_names(connection)
    meta = _select_meta(connection) if "workspace_meta" in tables else {}
    return meta, (_select_edits(connection) if "edits" in tables else [])


def _select_meta(connection: sqlite3.Connection) -> dict[str, str]:
    return dict(connection.execute("SELECT key, value FROM workspace_meta").fetchall())


def _select_edits(connection: sqlite3.Connection) -> list[Edit]:
    rows = connection.execute(f"SELECT {', '.join(EDIT_COLUMNS)} FROM edits ORDER BY edit_id").fetchall()
    return [Edit(*row) for row in rows]


def insert_edits(connection: sqlite3.Connection, edits: list[Edit]) -> list[Edit]:
    """Insert planned edits (inside the caller's transaction), returning them with their ids."""
    placeholders = ", ".join("?" for _ in EDIT_COLUMNS[1:])
    statement = f"INSERT INTO edits ({', '.join(EDIT_COLUMNS[1:])}) VALUES ({placeholders})"
    written = []
    for edit in edits:
        cursor = connection.execute(statement, (edit.batch_id, edit.sample_id, edit.action, edit.old_label,
                                                edit.new_label, edit.reason, edit.author, edit.created_at,
                                                edit.fingerprint, edit.undoes))
        written.append(Edit(cursor.lastrowid, *[getattr(edit, column) for column in EDIT_COLUMNS[1:]]))
    return written


def read_edits(workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Every row of the log in order (undone ones and undo rows included); [] when there is no log."""
    with store.reading(workspace) as connection:
        return _read_log(connection)[1]


def read_curation(dataset: Dataset, workspace: str | os.PathLike | None = None) -> tuple[Dataset, list[Edit]]:
    """The curated view and the log it came from, read once so both agree (export uses both)."""
    with store.reading(workspace) as connection:
        meta, edits = _read_log(connection)
    if not edits:
        return dataset, edits
    check_fingerprint(meta, dataset, workspace)
    return apply_edits(dataset, edits), edits


def curated_dataset(dataset: Dataset, workspace: str | os.PathLike | None = None) -> Dataset:
    """The dataset with the workspace's edits applied; the raw dataset when there is no log or no edit."""
    return read_curation(dataset, workspace)[0]


def read_state(workspace: str | os.PathLike | None = None) -> CurationState:
    """Current labels, dropped and reviewed ids according to the workspace's log."""
    return replay_edits(read_edits(workspace))


def history(workspace: str | os.PathLike | None = None, sample_id: str | None = None) -> "pd.DataFrame":
    """The log as a pandas DataFrame, one row per edit, with `active` False for undone edits."""
    import pandas as pd

    edits = read_edits(workspace)
    active = {edit.edit_id for edit in find_active_edits(edits)}
    if sample_id is not None:
        edits = [edit for edit in edits if edit.sample_id == sample_id]
    table = pd.DataFrame([edit.__dict__ for edit in edits], columns=list(EDIT_COLUMNS))
    table["undoes"] = table["undoes"].astype("Int64")
    table["active"] = [edit.edit_id in active for edit in edits]
    return table


def run_plan(dataset: Dataset | None, plan: Planner, reason: str, author: str | None,
         workspace: str | os.PathLike | None, dry_run: bool) -> list[Edit]:
    """Plan against the current log and write the plan as one batch in one transaction.

    Planning happens inside the transaction, against the state it locked, so concurrent writers
    cannot slip in between and an error rolls everything back. Before the first write (no
    database yet) and for a dry run, the plan is tried from a plain read, so a predictable error
    creates no database file.
    """
    _check_reason_length(reason)
    author = resolve_author(author)
    if dry_run or not store.database_exists(workspace):
        with store.reading(workspace) as connection:
            meta, edits = _read_log(connection)
        if dataset is not None:
            check_fingerprint(meta, dataset, workspace)
        planned = _finish(plan(replay_edits(edits), edits), "dry-run", reason, author, dataset, meta)
        if dry_run or not planned:
            return planned
    with store.writing(workspace, EDITS_SCHEMA) as connection:
        return _write_batch(connection, dataset, plan, reason, author, workspace)


def _write_batch(connection: sqlite3.Connection, dataset: Dataset | None, plan: Planner, reason: str,
                 author: str, workspace: str | os.PathLike | None) -> list[Edit]:
    """One short write transaction; rolled back on any error so nothing is half written."""
    with store.transaction(connection):
        meta = _select_meta(connection)
        if dataset is not None:
            check_fingerprint(meta, dataset, workspace)
            meta = bind_dataset(connection, meta, dataset)
        edits = _select_edits(connection)
        planned = _finish(plan(replay_edits(edits), edits), uuid.uuid4().hex[:12], reason, author, dataset, meta)
        return insert_edits(connection, planned)


def _finish(changes: list[Change], batch_id: str, reason: str, author: str, dataset: Dataset | None,
            meta: dict[str, str]) -> list[Edit]:
    created_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    fingerprint = dataset.fingerprint if dataset is not None else meta.get("dataset_fingerprint", "")
    emotions = dataset.emotions if dataset is not None else EMOTIONS  # no dataset: an undo, whose labels are names
    return [Edit(None, batch_id, str(change.sample_id), change.action, _label_name(change.old_label, emotions),
                 _label_name(change.new_label, emotions), reason, author, created_at, fingerprint, change.undoes)
            for change in changes]


def check_workspace_dataset(dataset: Dataset, workspace: str | os.PathLike | None = None) -> None:
    """ValueError when the workspace holds edits of another dataset (a different fingerprint)."""
    check_fingerprint(read_workspace_meta(workspace), dataset, workspace)


def check_fingerprint(meta: dict[str, str], dataset: Dataset, workspace: str | os.PathLike | None) -> None:
    bound = meta.get("dataset_fingerprint")
    if bound is not None and bound != dataset.fingerprint:
        raise ValueError(f"workspace {resolve_workspace(workspace)} was made for another dataset "
                         f"(fingerprint {bound}, {meta.get('data_path', 'unknown path')}); "
                         f"{dataset.source or 'this dataset'} has fingerprint {dataset.fingerprint}: "
                         f"use another --workspace")


def bind_dataset(connection: sqlite3.Connection, meta: dict[str, str], dataset: Dataset) -> dict[str, str]:
    """Record the dataset a workspace is for, the first time one is edited (or tagged) in it; inside the
    caller's transaction."""
    if "dataset_fingerprint" in meta:
        return meta
    facts = {"dataset_fingerprint": dataset.fingerprint,
             "data_path": str(Path(dataset.source).resolve()) if dataset.source else "",
             "bound_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    connection.executemany("INSERT OR REPLACE INTO workspace_meta (key, value) VALUES (?, ?)", facts.items())
    return {**meta, **facts}


def _check_reason_length(reason: str) -> None:
    if len(reason) > MAX_REASON_CHARACTERS:
        raise ValueError(f"the reason is {len(reason):,} characters long; at most {MAX_REASON_CHARACTERS:,} "
                         f"are kept (say why in a sentence or two)")


def _check_author_length(author: str) -> None:
    """The same cap as a reason: an author is a name, and `edit history` prints it on every row."""
    if len(author) > MAX_REASON_CHARACTERS:
        raise ValueError(f"the author is {len(author):,} characters long; at most {MAX_REASON_CHARACTERS:,} "
                         f"are kept (a name or a handle)")


def _label_name(label: int | str | None, emotions: tuple[str, ...]) -> str | None:
    return emotions[label] if isinstance(label, (int, np.integer)) else label


def resolve_author(author: str | None) -> str:
    """`author`, else the default (`default_author`); ValueError when it is over the cap."""
    author = author or default_author()
    _check_author_length(author)
    return author


def default_author() -> str:
    """Who edits when nobody says: $FER_AUDIT_AUTHOR, else the OS user (in a container often just 'root')."""
    named = os.environ.get("FER_AUDIT_AUTHOR", "").strip()
    if named:
        return named
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"

