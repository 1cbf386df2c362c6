"""The workspace database (`<workspace>/fer_audit.db`): the only module that opens it.

Owners (the edit log, the jobs) declare their tables as a `Schema` and pass it when they open
the database for writing; the store creates what is missing, once, in one transaction. The
store refuses what is not FER Audit's database before anything can write to it: a directory, a
file that is not SQLite, a damaged (e.g. truncated) file, another application's database; each
is one ValueError naming the file, which is left untouched, with no `-wal`/`-shm` beside it.
A read-only workspace can still be read; a write there is one ValueError. So is a full disk
(SQLite's "database or disk is full", or its "disk I/O error" with no space left): the disk-full line
of fer_core.files, never "read-only" or "cannot read".

Connections are in autocommit mode, WAL, synchronous NORMAL, with a busy timeout; every write is
one `transaction(connection)`: BEGIN IMMEDIATE (retried every millisecond or two) ... COMMIT,
rolled back on any error, so concurrent writers serialize and a killed writer leaves nothing.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fer_core.files import disk_full_message, disk_is_full
from fer_core.workspace import resolve_workspace

DATABASE_NAME = "fer_audit.db"
APPLICATION_ID = 0x46455241  # "FERA": marks a database as FER Audit's (PRAGMA application_id)
SCHEMA_VERSION = "1"
BUSY_TIMEOUT_SECONDS = 30.0
# WAL + NORMAL: a commit survives the writing process being killed and never corrupts the file;
# only an OS crash or power cut can roll back the last commits. FULL adds an fsync per commit
# (4-8 ms here), which made concurrent writers queue three times longer.
SYNCHRONOUS = "NORMAL"
# SQLite result codes (Python 3.11's `sqlite_errorname`) that say something about the file itself.
DAMAGED_ERRORS = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
UNWRITABLE_ERRORS = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR", "SQLITE_FULL")
SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class Schema:
    """The tables one owner module keeps in the workspace database (idempotent CREATE statements)."""

    owner: str
    tables: tuple[str, ...]
    statements: str
    # Columns added after a table was first shipped: (table, column, definition), added when missing.
    added_columns: tuple[tuple[str, str, str], ...] = ()


META_SCHEMA = Schema("store", ("workspace_meta",), """
CREATE TABLE IF NOT EXISTS workspace_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
""")


def database_path(workspace: str | os.PathLike | None = None) -> Path:
    return resolve_workspace(workspace) / DATABASE_NAME


# ---------------------------------------------------------------------------------------------
# Opening


@contextmanager
def reading(workspace: str | os.PathLike | None = None) -> Iterator[sqlite3.Connection | None]:
    """The database for reading (checked to be ours), or None when there is none yet; creates nothing.

    In a read-only workspace a WAL database cannot get its `-shm` file, so it is opened
    immutable: nothing can write there either, so nothing can change under the reader.
    """
    path = database_path(workspace)
    if not _check_file(path):
        yield None
        return
    connection = _open_checked(path)
    try:
        with _translated_errors(path):
            yield connection
    finally:
        connection.close()


@contextmanager
def writing(workspace: str | os.PathLike | None, *schemas: Schema) -> Iterator[sqlite3.Connection]:
    """The database for writing, with the owners' tables created if missing; closed on exit."""
    connection = connect(workspace, *schemas)
    try:
        with _translated_errors(Path(connection_path(connection))):
            yield connection
    finally:
        connection.close()


def connect(workspace: str | os.PathLike | None, *schemas: Schema) -> sqlite3.Connection:
    """A long-lived writable connection (the caller closes it); see `writing`."""
    path = database_path(workspace)
    exists = _check_file(path)
    if exists:
        _open_checked(path).close()
    if not workspace_writable(workspace):
        raise ValueError(_read_only_message(path))
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        with _translated_errors(path):
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            ensure_schemas(connection, (META_SCHEMA, *schemas))
    except BaseException:
        connection.close()
        raise
    return connection


def connection_path(connection: sqlite3.Connection) -> str:
    return connection.execute("PRAGMA database_list").fetchone()[2]


def table_names(connection: sqlite3.Connection | None) -> set[str]:
    if connection is None:
        return set()
    return {name for (name,) in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def ensure_schemas(connection: sqlite3.Connection, schemas: tuple[Schema, ...]) -> None:
    """Create the tables and added columns of `schemas` that are missing (one transaction); mark the file ours."""
    present = table_names(connection)
    missing = [schema for schema in schemas if not set(schema.tables) <= present]
    columns = [(table, column, definition) for schema in schemas for table, column, definition in schema.added_columns
               if table in present and column not in _column_names(connection, table)]
    if not missing and not columns:
        return
    with transaction(connection):
        for schema in missing:
            for statement in schema.statements.split(";"):
                if statement.strip():
                    connection.execute(statement)
        for table, column, definition in columns:
            if column not in _column_names(connection, table):  # another process may have added it meanwhile
                connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        connection.execute("INSERT OR IGNORE INTO workspace_meta (key, value) VALUES ('schema_version', ?)",
                           (SCHEMA_VERSION,))
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _column_names(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


# ---------------------------------------------------------------------------------------------
# Transactions


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE (retried), COMMIT on success, ROLLBACK on any error."""
    begin_immediate(connection)
    try:
        yield connection
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def begin_immediate(connection: sqlite3.Connection) -> None:
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


# ---------------------------------------------------------------------------------------------
# Checks


def _check_file(path: Path) -> bool:
    """Whether there is a database file to open (False: none, or an empty one); ValueError for a non-file."""
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{path} is a broken symbolic link, not FER Audit's database: move it away "
                         f"or use another --workspace")
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} is a directory (or another non-file), not FER Audit's database: "
                         f"move it away or use another --workspace")
    return path.exists() and path.stat().st_size > 0


def _open_checked(path: Path) -> sqlite3.Connection:
    """A read-only connection to `path`, after checking that it is an intact FER Audit database.

    The check goes through SQLite, never a plain open()/close(): closing any other descriptor of
    the database file would drop every POSIX lock this process holds on it (those of connections
    open in other threads included) and let another process checkpoint the WAL under them, which
    corrupts the database ("How To Corrupt An SQLite Database", 2.2).
    """
    existing_side_files = {suffix for suffix in SIDE_FILES if Path(f"{path}{suffix}").exists()}
    try:
        connection = _open_read_only(path)
    except sqlite3.DatabaseError as error:
        _remove_side_files_made_by_probe(path, existing_side_files)
        if getattr(error, "sqlite_errorname", "") in DAMAGED_ERRORS or "not a database" in str(error):
            raise ValueError(_damaged_message(path, error)) from None
        raise ValueError(_disk_full_message(path, error) or f"cannot read {path} ({error})") from None
    try:
        _check_is_ours(path, connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _open_read_only(path: Path) -> sqlite3.Connection:
    """Read-only, or immutable when the folder cannot hold the -shm file that WAL readers need."""
    uri = path.resolve().as_uri()
    try:
        return _probe(f"{uri}?mode=ro")
    except sqlite3.OperationalError as error:
        if getattr(error, "sqlite_errorname", "") != "SQLITE_CANTOPEN" or os.access(path.parent, os.W_OK):
            raise
    return _probe(f"{uri}?mode=ro&immutable=1")


def _probe(uri: str) -> sqlite3.Connection:
    """A connection that has read the schema (SQLite opens files lazily); closed again if that fails."""
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("PRAGMA schema_version").fetchone()
    except BaseException:
        connection.close()
        raise
    return connection


def _remove_side_files_made_by_probe(path: Path, existing: set[str]) -> None:
    """A failed read-only probe of a WAL-headed file leaves fresh -wal/-shm files: take back only those."""
    for suffix in SIDE_FILES:
        side = Path(f"{path}{suffix}")
        if suffix not in existing and side.exists() and (suffix == "-shm" or side.stat().st_size == 0):
            try:
                side.unlink()
            except OSError:
                pass  # a read-only folder: nothing could have been created there anyway


def _check_is_ours(path: Path, connection: sqlite3.Connection) -> None:
    """ValueError unless the database is empty or carries FER Audit's application id.

    Every database FER Audit creates gets the id in the same transaction as its first tables.
    """
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = table_names(connection)
    except sqlite3.DatabaseError as error:
        raise ValueError(_damaged_message(path, error)) from None
    if application_id == APPLICATION_ID or not tables:
        return
    shown = ", ".join(sorted(tables)[:5])
    raise ValueError(f"{path} is another application's SQLite database (tables: {shown}); "
                     f"FER Audit will not touch it: move it away or use another --workspace")


@contextmanager
def _translated_errors(path: Path) -> Iterator[None]:
    """Errors about the file itself (damaged, read-only) as one-line ValueErrors; others unchanged."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        name = getattr(error, "sqlite_errorname", "")
        if name in DAMAGED_ERRORS:
            raise ValueError(_damaged_message(path, error)) from None
        if full := _disk_full_message(path, error):
            raise ValueError(full) from None
        if any(name.startswith(prefix) for prefix in UNWRITABLE_ERRORS):
            raise ValueError(f"{_read_only_message(path)} ({error})") from None
        raise


def _disk_full_message(path: Path, error: sqlite3.DatabaseError) -> str | None:
    """The disk-full line for SQLITE_FULL, and for SQLITE_IOERR on a disk with (almost) no space left."""
    name = getattr(error, "sqlite_errorname", "")
    if name.startswith("SQLITE_FULL") or (name.startswith("SQLITE_IOERR") and disk_is_full(path.parent)):
        return disk_full_message(path, str(error))
    return None


def _damaged_message(path: Path, error: Exception) -> str:
    return (f"{path} is not a readable FER Audit database (damaged, truncated or another file: {error}); "
            f"FER Audit will not overwrite it: move it away or use another --workspace")


def _read_only_message(path: Path) -> str:
    return (f"cannot write to {path}: the workspace is read-only (reading works; use another --workspace "
            f"to make changes)")


def workspace_writable(workspace: str | os.PathLike | None = None) -> bool:
    """Whether this process may write in the workspace (False for a read-only folder or file system)."""
    path = database_path(workspace)
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def database_exists(workspace: str | os.PathLike | None = None) -> bool:
    """Whether the workspace has a (non-empty) database file; ValueError when something else is in its place."""
    return _check_file(database_path(workspace))
