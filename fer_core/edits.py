"""The curation log: every relabel, drop, restore, undo and review mark is one row in SQLite.

Decisions must never be lost and must stay explainable, so the log is append-only (undo is a
new row that reverses an earlier one) and lives in `<workspace>/fer_audit.db`, next to the
tables other modules own. Source files are never touched: the curated data is a view,
`apply_edits(dataset, edits)`, computed from the raw `Dataset` and the log.

Every write is one short `BEGIN IMMEDIATE` transaction that validates against the current
state and then inserts its rows, so concurrent writers (CLI, app, scripts) serialize cleanly
and a killed writer leaves all of its batch or none of it. A workspace is bound to the
fingerprint of the first dataset edited in it; edits against another dataset are refused.
"""

from __future__ import annotations

import getpass
import os
import random
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, NamedTuple, Sequence

import numpy as np

from .dataset import Dataset
from .labels import EMOTIONS, TEST_USAGES, TRAINING, emotion_index
from .workspace import resolve_workspace

if TYPE_CHECKING:
    import pandas as pd

DATABASE_NAME = "fer_audit.db"
APPLICATION_ID = 0x46455241  # "FERA": marks a database as FER Audit's (PRAGMA application_id)
SCHEMA_VERSION = "1"
BUSY_TIMEOUT_SECONDS = 30.0
# WAL + NORMAL: a commit survives the writing process being killed and never corrupts the file;
# only an OS crash or power cut can roll back the last commits. FULL adds an fsync per commit
# (4-8 ms here), which made concurrent writers queue three times longer.
SYNCHRONOUS = "NORMAL"
# Tables FER Audit modules create in the shared database; a file holding none of them is foreign.
KNOWN_TABLES = frozenset({"workspace_meta", "edits", "runs", "run_events", "jobs", "job_events"})
EDIT_COLUMNS = ("edit_id", "batch_id", "sample_id", "action", "old_label", "new_label", "reason",
                "author", "created_at", "fingerprint", "undoes")
TEST_PAUSE_ENV = "FER_AUDIT_TEST_PAUSE_FILE"  # test hook: pause mid-transaction, see _pause_for_tests
DEFAULT_LEAK_REASON = "train-test leak: Training copy of a test image"

RELABEL, DROP, RESTORE, UNDO, REVIEW_OK = "relabel", "drop", "restore", "undo", "review_ok"
ACTIONS = (RELABEL, DROP, RESTORE, UNDO, REVIEW_OK)
Resolution = Literal["keep_one", "relabel", "relabel_majority", "drop_all"]
RESOLUTIONS: tuple[str, ...] = ("keep_one", "relabel", "relabel_majority", "drop_all")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS workspace_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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
"""


@dataclass(frozen=True)
class Edit:
    """One row of the log. `edit_id` is None for a planned (dry-run) edit; labels are emotion names."""

    edit_id: int | None
    batch_id: str
    sample_id: str
    action: str
    old_label: str | None
    new_label: str | None
    reason: str
    author: str
    created_at: str
    fingerprint: str
    undoes: int | None = None


@dataclass(frozen=True)
class CurationState:
    """What the active edits amount to: current labels of relabeled samples, dropped and reviewed ids."""

    labels: dict[str, int]
    dropped: frozenset[str]
    reviewed: frozenset[str]

    def label_of(self, dataset: Dataset, sample_id: str) -> int:
        return self.labels.get(sample_id, int(dataset.labels[dataset.index_of(sample_id)]))


class Change(NamedTuple):
    """A planned edit before it gets a batch, author, time and id."""

    sample_id: str
    action: str
    old_label: int | str | None
    new_label: int | str | None
    undoes: int | None = None


Planner = Callable[[CurationState, list[Edit]], list[Change]]

# ---------------------------------------------------------------------------------------------
# Database


def database_path(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / DATABASE_NAME


def connect_database(workspace: str | os.PathLike | None = None) -> sqlite3.Connection:
    """Open the workspace database for writing: refuses a damaged or foreign file, creates the schema.

    The connection is in autocommit mode (callers open explicit transactions), WAL, with a busy
    timeout so concurrent writers wait instead of failing.
    """
    path = database_path(workspace)
    _check_sqlite_header(path)
    connection = _open(path)
    try:
        _prepare_for_writing(connection, _check_is_ours(path, connection))
    except BaseException:
        connection.close()
        raise
    return connection


def read_workspace_meta(workspace: str | os.PathLike | None = None) -> dict[str, str]:
    """The workspace's key/value facts (dataset_fingerprint, data_path, ...); empty when none yet."""
    with _existing(workspace) as (connection, tables):
        return _read_log(connection, tables)[0]


def _open(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    return connection


def _check_sqlite_header(path: Path) -> None:
    """Refuse a non-empty file that is not SQLite before a writable connection gets a chance to touch it.

    The check reads through a read-only SQLite connection, never a plain open()/close(): closing
    any other descriptor of the database file would drop every POSIX lock this process holds on
    it (those of connections open in other threads included) and let another process checkpoint
    the WAL under them, which corrupts the database ("How To Corrupt An SQLite Database", 2.2).
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            probe.execute("PRAGMA schema_version").fetchone()
        finally:
            probe.close()
    except sqlite3.DatabaseError as error:
        if "not a database" not in str(error):
            raise  # locked, unreadable, ...: not a verdict on the file's content
        raise ValueError(f"{path} is not a SQLite database (damaged or another file); "
                         f"FER Audit will not overwrite it: move it away or use another --workspace") from None


def _check_is_ours(path: Path, connection: sqlite3.Connection) -> set[str]:
    """The database's table names, after checking it is empty or FER Audit's; ValueError otherwise."""
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = {name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        edit_columns = {row[1] for row in connection.execute("PRAGMA table_info(edits)")}
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path} is not a readable SQLite database ({error}); FER Audit will not "
                         f"overwrite it: move it away or use another --workspace") from None
    if application_id == APPLICATION_ID or not tables:
        return tables
    foreign = application_id != 0 or not tables & KNOWN_TABLES
    if "edits" in tables and not set(EDIT_COLUMNS) <= edit_columns:
        foreign = True
    if foreign:
        shown = ", ".join(sorted(tables)[:5])
        raise ValueError(f"{path} is another application's SQLite database (tables: {shown}); "
                         f"FER Audit will not touch it: move it away or use another --workspace")
    return tables


def _prepare_for_writing(connection: sqlite3.Connection, tables: set[str]) -> None:
    connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
    if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        connection.execute("PRAGMA journal_mode = WAL")
    if not {"workspace_meta", "edits"} <= tables:
        _create_schema(connection)


def _create_schema(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute("INSERT OR IGNORE INTO workspace_meta (key, value) VALUES ('schema_version', ?)",
                           (SCHEMA_VERSION,))
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


@contextmanager
def _existing(workspace: str | os.PathLike | None) -> Iterator[tuple[sqlite3.Connection | None, set[str]]]:
    """The workspace's database and its tables when there is one (checked to be ours), else None; creates nothing."""
    path = database_path(workspace)
    _check_sqlite_header(path)
    if not path.exists():
        yield None, set()
        return
    connection = _open(path)
    try:
        yield connection, _check_is_ours(path, connection)
    finally:
        connection.close()


def _read_log(connection: sqlite3.Connection | None, tables: set[str]) -> tuple[dict[str, str], list[Edit]]:
    """Workspace facts and every edit; empty when the edit tables do not exist yet."""
    if connection is None or not {"workspace_meta", "edits"} <= tables:
        return {}, []
    return _select_meta(connection), _select_edits(connection)


def _select_meta(connection: sqlite3.Connection) -> dict[str, str]:
    return dict(connection.execute("SELECT key, value FROM workspace_meta").fetchall())


def _begin_immediate(connection: sqlite3.Connection) -> None:
    """Take the write lock, retrying every millisecond or two until the busy timeout.

    SQLite's own busy handler sleeps in steps growing to 100 ms, so writers queueing behind
    transactions that last a few milliseconds would wait far longer than the work takes.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.0005, 0.002))
    finally:
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")


def _select_edits(connection: sqlite3.Connection) -> list[Edit]:
    rows = connection.execute(f"SELECT {', '.join(EDIT_COLUMNS)} FROM edits ORDER BY edit_id").fetchall()
    return [Edit(*row) for row in rows]


def _insert_edits(connection: sqlite3.Connection, edits: list[Edit]) -> list[Edit]:
    """Insert planned edits, returning them with their ids."""
    placeholders = ", ".join("?" for _ in EDIT_COLUMNS[1:])
    statement = f"INSERT INTO edits ({', '.join(EDIT_COLUMNS[1:])}) VALUES ({placeholders})"
    written = []
    for position, edit in enumerate(edits):
        if position == len(edits) // 2:
            _pause_for_tests()
        cursor = connection.execute(statement, (edit.batch_id, edit.sample_id, edit.action, edit.old_label,
                                                edit.new_label, edit.reason, edit.author, edit.created_at,
                                                edit.fingerprint, edit.undoes))
        written.append(Edit(cursor.lastrowid, *[getattr(edit, column) for column in EDIT_COLUMNS[1:]]))
    return written


def _pause_for_tests() -> None:
    """Test hook: with $FER_AUDIT_TEST_PAUSE_FILE set, announce (create that file) and stall mid-batch.

    Lets the reliability test kill a writer at a known point inside its transaction.
    """
    marker = os.environ.get(TEST_PAUSE_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
        time.sleep(120)


# ---------------------------------------------------------------------------------------------
# Reading the log and the curated view


def read_edits(workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Every row of the log in order (undone ones and undo rows included); [] when there is no log."""
    with _existing(workspace) as (connection, tables):
        return _read_log(connection, tables)[1]


def find_active_edits(edits: Sequence[Edit]) -> list[Edit]:
    """The edits still in effect: not undone by an undo that is itself in effect (undo of undo = redo)."""
    undone: set[int] = set()
    for edit in reversed(edits):  # an undo always comes after what it undoes
        if edit.edit_id not in undone and edit.action == UNDO:
            undone.add(edit.undoes)
    return [edit for edit in edits if edit.edit_id is None or edit.edit_id not in undone]


def replay_edits(edits: Sequence[Edit]) -> CurationState:
    """Fold the active edits, in order, into current labels and dropped/reviewed sets."""
    labels: dict[str, int] = {}
    dropped: set[str] = set()
    reviewed: set[str] = set()
    for edit in find_active_edits(edits):
        if edit.action == RELABEL:
            labels[edit.sample_id] = emotion_index(edit.new_label)
        elif edit.action == DROP:
            dropped.add(edit.sample_id)
        elif edit.action == RESTORE:
            dropped.discard(edit.sample_id)
        elif edit.action == REVIEW_OK:
            reviewed.add(edit.sample_id)
    return CurationState(labels=labels, dropped=frozenset(dropped), reviewed=frozenset(reviewed))


def apply_edits(dataset: Dataset, edits: Sequence[Edit]) -> Dataset:
    """The curated view (pure): relabeled samples carry their new label, dropped samples are gone."""
    state = replay_edits(edits)
    unknown = sorted(sample_id for sample_id in (*state.labels, *state.dropped) if not dataset.has_id(sample_id))
    if unknown:
        raise ValueError(f"{len(unknown)} edited sample id(s) are not in {dataset.source or 'this dataset'}, "
                         f"e.g. {unknown[0]!r}; the edits were made for another dataset")
    if not state.labels and not state.dropped:
        return dataset
    labels = dataset.labels.copy()
    for sample_id, label in state.labels.items():
        labels[dataset.index_of(sample_id)] = label
    keep = ~np.isin(dataset.ids, list(state.dropped)) if state.dropped else np.ones(len(dataset), dtype=bool)
    return Dataset(ids=dataset.ids[keep], pixels=dataset.pixels[keep], labels=labels[keep],
                   usages=dataset.usages[keep], source=dataset.source)


def read_curation(dataset: Dataset, workspace: str | os.PathLike | None = None) -> tuple[Dataset, list[Edit]]:
    """The curated view and the log it came from, read once so both agree (export uses both)."""
    with _existing(workspace) as (connection, tables):
        meta, edits = _read_log(connection, tables)
    if not edits:
        return dataset, edits
    _check_fingerprint(meta, dataset, workspace)
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


# ---------------------------------------------------------------------------------------------
# Writing: every operation is a planner run inside one transaction (or alone, for a dry run)


def relabel(dataset: Dataset, sample_id: str, emotion: str | int, reason: str, *, author: str | None = None,
            workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Give one sample a new label."""
    target = _emotion(emotion)
    sample_id = _known_ids(dataset, [sample_id])[0]

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        _require_live(state, [sample_id])
        current = state.label_of(dataset, sample_id)
        if current == target:
            raise ValueError(f"sample {sample_id!r} is already labelled {EMOTIONS[target]}")
        return [Change(sample_id, RELABEL, current, target)]

    return _run(dataset, plan, _require_reason(reason), author, workspace, dry_run)


def drop(dataset: Dataset, sample_ids: Iterable[str], reason: str, *, author: str | None = None,
         workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Remove samples from the curated view (one batch)."""
    members = _known_ids(dataset, sample_ids)

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        _require_live(state, members)
        return [Change(member, DROP, state.label_of(dataset, member), None) for member in members]

    return _run(dataset, plan, _require_reason(reason), author, workspace, dry_run)


def restore(dataset: Dataset, sample_ids: Iterable[str], reason: str = "", *, author: str | None = None,
            workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Bring dropped samples back (one batch)."""
    members = _known_ids(dataset, sample_ids)

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        not_dropped = [member for member in members if member not in state.dropped]
        if not_dropped:
            raise ValueError(f"not dropped, nothing to restore: {_shorten(not_dropped)}")
        return [Change(member, RESTORE, None, state.label_of(dataset, member)) for member in members]

    return _run(dataset, plan, reason, author, workspace, dry_run)


def undo(edit_id: int, reason: str = "", *, author: str | None = None,
         workspace: str | os.PathLike | None = None) -> Edit:
    """Reverse one edit by appending an undo row (undoing an undo re-applies the original)."""
    return undo_edits([edit_id], reason, author=author, workspace=workspace)[0]


def undo_batch(batch_id: str, reason: str = "", *, author: str | None = None,
               workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Reverse every still-active edit of a batch (e.g. a whole group resolution) in one new batch."""
    edits = read_edits(workspace)
    active = {edit.edit_id for edit in find_active_edits(edits)}
    members = [edit.edit_id for edit in edits if edit.batch_id == batch_id and edit.edit_id in active]
    if not members:
        raise ValueError(f"no active edits in batch {batch_id!r}")
    return undo_edits(members, reason, author=author, workspace=workspace)


def undo_edits(edit_ids: Sequence[int], reason: str = "", *, author: str | None = None,
               workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Append undo rows for the given edits in one batch; ValueError for unknown or already undone ids."""

    def plan(_: CurationState, edits: list[Edit]) -> list[Change]:
        by_id = {edit.edit_id: edit for edit in edits}
        active = {edit.edit_id for edit in find_active_edits(edits)}
        changes = []
        for edit_id in edit_ids:
            target = by_id.get(edit_id)
            if target is None:
                known = f"1..{edits[-1].edit_id}" if edits else "none yet"
                raise ValueError(f"unknown edit id {edit_id}; edit ids in this workspace: {known}")
            if edit_id not in active:
                raise ValueError(f"edit {edit_id} is already undone")
            changes.append(Change(target.sample_id, UNDO, target.new_label, target.old_label, undoes=edit_id))
        return changes

    return _run(None, plan, reason, author, workspace, dry_run=False)


def mark_group_reviewed(dataset: Dataset, member_ids: Iterable[str], reason: str = "", *,
                        author: str | None = None, workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Record that a reviewer looked at a group and found it OK, so pages can hide it."""
    members = _known_ids(dataset, member_ids)

    def plan(_: CurationState, __: list[Edit]) -> list[Change]:
        return [Change(member, REVIEW_OK, None, None) for member in members]

    return _run(dataset, plan, reason, author, workspace, dry_run=False)


def resolve_group(dataset: Dataset, member_ids: Iterable[str], resolution: Resolution, reason: str, *,
                  emotion: str | int | None = None, keep_id: str | None = None, author: str | None = None,
                  workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Resolve a duplicate group in one batch; members already dropped are left alone.

    keep_one: keep `keep_id`, or a test-split copy when there is one (so Training holds no copy of a
    test image), else the first member; drop the rest. relabel: all to `emotion`. relabel_majority:
    all to the members' most common label (a tie is an error: choose an emotion). drop_all.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {', '.join(RESOLUTIONS)}")
    if (resolution == "relabel") != (emotion is not None):
        raise ValueError("an emotion is needed for resolution 'relabel', and only for it")
    target = None if emotion is None else _emotion(emotion)
    members = _known_ids(dataset, member_ids)
    if keep_id is not None and keep_id not in members:
        raise ValueError(f"keep id {keep_id!r} is not a member of the group ({_shorten(members)})")

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        live = [member for member in members if member not in state.dropped]
        labels = {member: state.label_of(dataset, member) for member in live}
        if resolution == "drop_all":
            return [Change(member, DROP, labels[member], None) for member in live]
        if resolution == "keep_one":
            keeper = _choose_keeper(dataset, live, keep_id)
            return [Change(member, DROP, labels[member], None) for member in live if member != keeper]
        label = target if target is not None else _majority_label(labels)
        return [Change(member, RELABEL, labels[member], label) for member in live if labels[member] != label]

    return _run(dataset, plan, _require_reason(reason), author, workspace, dry_run)


def resolve_leaks(dataset: Dataset, reason: str = DEFAULT_LEAK_REASON, *, max_hamming_distance: int | None = None,
                  curated: bool = True, hashes: np.ndarray | None = None, author: str | None = None,
                  workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Drop every Training copy (exact or near) of a PublicTest/PrivateTest image, in one batch.

    Leaks are searched in the curated view by default, so dropped samples neither leak nor get
    dropped again; `curated=False` searches the raw data (still skipping rows already dropped).
    `hashes` (pHashes of the raw dataset's rows, e.g. from the audit) skip rehashing. The slow
    search runs before the transaction, which stays short.
    """
    from .duplicates import DEFAULT_NEAR_THRESHOLD, find_leaks  # lazily: hashing is only needed here

    _check_fingerprint(read_workspace_meta(workspace), dataset, workspace)  # before the slow search
    distance = DEFAULT_NEAR_THRESHOLD if max_hamming_distance is None else max_hamming_distance
    view = curated_dataset(dataset, workspace) if curated else dataset
    if hashes is not None and view is not dataset:
        hashes = np.asarray(hashes)[[dataset.index_of(sample_id) for sample_id in view.ids.tolist()]]
    leaks = find_leaks(view, distance, hashes=hashes)
    rows = np.unique(np.asarray(leaks.train_rows, dtype=np.int64))
    rows = rows[view.usages[rows] == TRAINING]
    leaking = view.ids[rows].tolist()

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        return [Change(sample_id, DROP, state.label_of(dataset, sample_id), None)
                for sample_id in leaking if sample_id not in state.dropped]

    return _run(dataset, plan, _require_reason(reason), author, workspace, dry_run)


def _run(dataset: Dataset | None, plan: Planner, reason: str, author: str | None,
         workspace: str | os.PathLike | None, dry_run: bool) -> list[Edit]:
    """Plan against the current log and write the plan as one batch in one transaction.

    Planning happens inside the transaction, against the state it locked, so concurrent writers
    cannot slip in between and an error rolls everything back. Before the first write, the plan
    is also tried from a plain read, so a predictable error creates no database file.
    """
    author = author or _default_author()
    with _existing(workspace) as (connection, tables):
        if connection is not None and not dry_run:
            _prepare_for_writing(connection, tables)
            return _write_batch(connection, dataset, plan, reason, author, workspace)
        meta, edits = _read_log(connection, tables)
        if dataset is not None:
            _check_fingerprint(meta, dataset, workspace)
        planned = _finish(plan(replay_edits(edits), edits), "dry-run", reason, author, dataset, meta)
        if dry_run or not planned:
            return planned
    connection = connect_database(workspace)  # the first write creates the database
    try:
        return _write_batch(connection, dataset, plan, reason, author, workspace)
    finally:
        connection.close()


def _write_batch(connection: sqlite3.Connection, dataset: Dataset | None, plan: Planner, reason: str,
                 author: str, workspace: str | os.PathLike | None) -> list[Edit]:
    """One short write transaction; rolled back on any error so nothing is half written."""
    _begin_immediate(connection)
    try:
        meta = _select_meta(connection)
        if dataset is not None:
            _check_fingerprint(meta, dataset, workspace)
            meta = _bind(connection, meta, dataset)
        edits = _select_edits(connection)
        planned = _finish(plan(replay_edits(edits), edits), uuid.uuid4().hex[:12], reason, author, dataset, meta)
        written = _insert_edits(connection, planned)
        connection.execute("COMMIT")
        return written
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _finish(changes: list[Change], batch_id: str, reason: str, author: str, dataset: Dataset | None,
            meta: dict[str, str]) -> list[Edit]:
    created_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    fingerprint = dataset.fingerprint if dataset is not None else meta.get("dataset_fingerprint", "")
    return [Edit(None, batch_id, str(change.sample_id), change.action, _label_name(change.old_label),
                 _label_name(change.new_label), reason, author, created_at, fingerprint, change.undoes)
            for change in changes]


def _check_fingerprint(meta: dict[str, str], dataset: Dataset, workspace: str | os.PathLike | None) -> None:
    bound = meta.get("dataset_fingerprint")
    if bound is not None and bound != dataset.fingerprint:
        raise ValueError(f"workspace {resolve_workspace(workspace)} was made for another dataset "
                         f"(fingerprint {bound}, {meta.get('data_path', 'unknown path')}); "
                         f"{dataset.source or 'this dataset'} has fingerprint {dataset.fingerprint}: "
                         f"use another --workspace")


def _bind(connection: sqlite3.Connection, meta: dict[str, str], dataset: Dataset) -> dict[str, str]:
    """Record the dataset a workspace is for, the first time one is edited in it."""
    if "dataset_fingerprint" in meta:
        return meta
    facts = {"dataset_fingerprint": dataset.fingerprint,
             "data_path": str(Path(dataset.source).resolve()) if dataset.source else "",
             "bound_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    connection.executemany("INSERT OR REPLACE INTO workspace_meta (key, value) VALUES (?, ?)", facts.items())
    return {**meta, **facts}


# ---------------------------------------------------------------------------------------------
# Validation helpers


def _known_ids(dataset: Dataset, sample_ids: Iterable[str]) -> list[str]:
    """Unique ids in given order; ValueError naming the first unknown one."""
    members = list(dict.fromkeys(str(sample_id) for sample_id in sample_ids))
    if not members:
        raise ValueError("no sample ids given")
    for member in members:
        dataset.index_of(member)
    return members


def _require_live(state: CurationState, sample_ids: Sequence[str]) -> None:
    dropped = [sample_id for sample_id in sample_ids if sample_id in state.dropped]
    if dropped:
        raise ValueError(f"already dropped (restore first): {_shorten(dropped)}")


def _require_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ValueError("a reason is required (say why, for the history)")
    return reason.strip()


def _emotion(emotion: str | int) -> int:
    if isinstance(emotion, (int, np.integer)) and not isinstance(emotion, bool):
        if 0 <= int(emotion) < len(EMOTIONS):
            return int(emotion)
        raise ValueError(f"unknown emotion {emotion!r}; expected 0..{len(EMOTIONS) - 1} or one of {', '.join(EMOTIONS)}")
    return emotion_index(str(emotion))


def _label_name(label: int | str | None) -> str | None:
    return EMOTIONS[label] if isinstance(label, (int, np.integer)) else label


def _choose_keeper(dataset: Dataset, live: list[str], keep_id: str | None) -> str | None:
    if keep_id is not None:
        if keep_id not in live:
            raise ValueError(f"keep id {keep_id!r} is dropped; restore it first or keep another member")
        return keep_id
    test_copies = [member for member in live if dataset.usages[dataset.index_of(member)] in TEST_USAGES]
    return (test_copies or live or [None])[0]


def _majority_label(labels: dict[str, int]) -> int:
    if not labels:
        return 0  # nothing live to relabel: the plan is empty whatever the label
    counts = np.bincount(list(labels.values()), minlength=len(EMOTIONS))
    winners = np.flatnonzero(counts == counts.max())
    if len(winners) > 1:
        raise ValueError(f"no majority label (tie between {', '.join(EMOTIONS[i] for i in winners)}); "
                         f"choose an emotion with resolution 'relabel'")
    return int(winners[0])


def _shorten(items: Sequence[str], shown: int = 5) -> str:
    text = ", ".join(repr(item) for item in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"
