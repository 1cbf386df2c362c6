"""Writes the disk refuses (issue 22): a full disk, a read-only workspace, cache paths of the wrong type, a
cached mislabel summary of the wrong shape. A writer ends in one line naming the path (exit 2) and leaves
no partial file; a reader still reads.

The tests run as root here, and root ignores permissions, so the file system's refusals are injected as
the OSError it raises: `disk_fills_up` lets writes under a folder land their first bytes and then fail
with ENOSPC (as a full disk does, through Python's open: our helpers, Keras' save, the export's CSV);
`read_only` refuses every write under a folder with EROFS. By hand, on a small tmpfs filled with `dd`
and on one remounted read-only, the commands print the same lines.
"""

import builtins
import errno
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from synthetic import make_synthetic, write_folders

from fer_core import store
from fer_core.cli import main
from fer_core.dataset.loading import load

# ---------------------------------------------------------------------------------------------
# Fixtures: data, a workspace with its audit cached, and the injected refusals


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    return write_folders(make_synthetic(seed=2)[0], tmp_path_factory.mktemp("failed_writes_data"))


@pytest.fixture(scope="module")
def primed_workspace(data_folder, tmp_path_factory) -> Path:
    """A workspace where the data was loaded and audited (--fast) once: every cache is there."""
    home = tmp_path_factory.mktemp("primed") / "workspace"
    assert main(["audit", str(data_folder), "--out", str(home.parent / "audit"), "--fast", "--quiet",
                 "--workspace", str(home)]) == 0
    return home


@pytest.fixture
def cached_workspace(primed_workspace, tmp_path) -> Path:
    return Path(shutil.copytree(primed_workspace, tmp_path / "cached_workspace"))


def _inside(path, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).absolute().is_relative_to(folder)
    except TypeError:  # a file descriptor
        return False


class FillingFile(io.FileIO):
    """A file on a disk with `room` bytes left: a write past them lands what fits, then fails with ENOSPC."""

    def __init__(self, path, mode: str, room: int):
        super().__init__(path, mode.replace("b", "").replace("t", ""))
        self.room = room

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        left = max(0, self.room - self.tell())
        if len(view) > left:
            super().write(view[:left])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(view)


def _writing(mode: str) -> bool:
    return any(flag in mode for flag in "wxa+")


def disk_fills_up(monkeypatch, folder: Path, room: int = 100) -> None:
    """Every file opened for writing under `folder` through Python's open takes `room` bytes, then ENOSPC."""
    folder, real_open = folder.absolute(), builtins.open

    def filling_open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None, *args, **kwargs):
        if not (_writing(mode) and _inside(file, folder)):
            return real_open(file, mode, buffering, encoding, errors, newline, *args, **kwargs)
        binary = io.BufferedWriter(FillingFile(file, mode, room))
        return binary if "b" in mode else io.TextIOWrapper(binary, encoding=encoding or "utf-8", newline=newline)

    monkeypatch.setattr(builtins, "open", filling_open)
    monkeypatch.setattr(io, "open", filling_open)  # pathlib's write_text and write_bytes


def read_only(monkeypatch, folder: Path) -> None:
    """Every write under `folder` (open for writing, mkdir of a new folder, rename, unlink) fails with EROFS."""
    folder, real_open, real_mkdir = folder.absolute(), builtins.open, os.mkdir

    def refuse(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    def guarded_open(file, mode="r", *args, **kwargs):
        if _writing(mode) and _inside(file, folder):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if _inside(path, folder) and not os.path.lexists(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)  # an existing folder: EEXIST, as on a read-only disk

    def guarded(real):
        def call(source, *args, **kwargs):
            if _inside(source, folder):
                refuse(source)
            return real(source, *args, **kwargs)
        return call

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)
    for name in ("replace", "rename", "unlink", "rmdir"):
        monkeypatch.setattr(os, name, guarded(getattr(os, name)))


def everything_under(folder: Path) -> list[str]:
    """Every file and folder under `folder`, hidden temporaries included."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


def command(name: str, data_folder: Path, out: Path, workspace: Path) -> list[str]:
    """`audit` or `report` of `data_folder` into `out`, quick (--fast) and quiet."""
    return [name, str(data_folder), "--out", str(out), "--fast", "--quiet", "--workspace", str(workspace)]


def full_disk_line(path: Path) -> str:
    return f"error: disk full writing {path} (No space left on device); nothing was written there"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


# ---------------------------------------------------------------------------------------------
# 1. A full disk: one line naming the file, nothing half-written


def test_audit_on_a_full_disk_names_the_file_and_leaves_nothing(data_folder, cached_workspace, tmp_path,
                                                              monkeypatch, capsys):
    """Guards: a full disk while writing samples.csv was a traceback (OSError from the atomic writer)."""
    out = tmp_path / "full" / "audit"
    disk_fills_up(monkeypatch, tmp_path / "full")
    assert main(command("audit", data_folder, out, cached_workspace)) == 2
    assert one_error_line(capsys) == full_disk_line(out / "samples.csv")
    assert everything_under(out) == []  # the temporary is gone


@pytest.mark.parametrize("export_format, name", [("csv", "curated.csv"), ("folders", "curated")])
def test_export_on_a_full_disk_names_the_output_and_leaves_nothing(data_folder, cached_workspace, tmp_path,
                                                                  monkeypatch, capsys, export_format, name):
    """Guards: a full disk during export was a traceback (csv); for folders, cv2.imwrite reported success for
    an empty PNG, so a disk that filled up between images could leave a "successful" export of empty files."""
    out = tmp_path / "full" / name
    out.parent.mkdir()
    disk_fills_up(monkeypatch, tmp_path / "full", room=300)
    code = main(["export", str(data_folder), "--format", export_format, "--out", str(out),
                 "--workspace", str(cached_workspace)])
    assert code == 2
    assert one_error_line(capsys) == full_disk_line(out)
    assert everything_under(out.parent) == []


def test_report_on_a_full_disk_names_the_file_and_leaves_nothing(data_folder, cached_workspace, tmp_path,
                                                               monkeypatch, capsys):
    """Guards: a full disk while writing the report was a traceback."""
    out = tmp_path / "full" / "report.html"
    disk_fills_up(monkeypatch, tmp_path / "full")
    assert main(command("report", data_folder, out, cached_workspace)) == 2
    assert one_error_line(capsys) == full_disk_line(out)
    assert everything_under(out.parent) == []


def test_train_on_a_full_disk_leaves_no_truncated_model(data_folder, cached_workspace, tmp_path, monkeypatch, capsys):
    """Guards: Keras wrote model.keras in place, so a full disk left a truncated model.keras (and a traceback)."""
    out = tmp_path / "full" / "run"
    disk_fills_up(monkeypatch, tmp_path / "full", room=4096)
    code = main(["train", str(data_folder), "--model", "cnn", "--sampling", "none", "--size", "tiny", "--epochs", "1",
                 "--batch-size", "16", "--out", str(out), "--workspace", str(cached_workspace)])
    assert code == 2
    assert capsys.readouterr().err.strip() == full_disk_line(out / "model.keras")
    assert everything_under(out) == []  # no model.keras, no hidden folder of the save


def test_mislabels_on_a_full_disk_names_the_file_and_leaves_nothing(data_folder, cached_workspace, tmp_path,
                                                                   monkeypatch, capsys):
    """Guards: a full disk while writing mislabels.csv (from a cached result) was a traceback."""
    from test_mislabels import stored_result

    stored_result(load(data_folder, workspace=cached_workspace), {}, cached_workspace)
    out = tmp_path / "full" / "mislabels"
    disk_fills_up(monkeypatch, tmp_path / "full")
    code = main(["mislabels", str(data_folder), "--out", str(out), "--quiet", "--workspace", str(cached_workspace)])
    assert code == 2
    assert one_error_line(capsys) == full_disk_line(out / "mislabels.csv")
    assert everything_under(out) == []


def test_a_full_database_is_the_disk_full_line_not_read_only(workspace):
    """Guards: SQLite's "database or disk is full" read "the workspace is read-only"; a real SQLITE_FULL here
    (the database capped at its size with max_page_count), no mount needed."""
    from fer_core.jobs.records import RUNS_SCHEMA

    database = workspace / store.DATABASE_NAME
    with pytest.raises(ValueError) as refused:
        with store.writing(workspace, RUNS_SCHEMA) as connection:
            pages = connection.execute("PRAGMA page_count").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {pages}")
            with store.transaction(connection):
                connection.execute("INSERT INTO runs (run_id, created_at, state, backend, data_path, config_json, "
                                   "out_dir) VALUES ('r', 'now', 'queued', 'local', '/d', ?, '/o')", ("x" * 200_000,))
    assert str(refused.value) == (f"disk full writing {database} (database or disk is full); "
                                  "nothing was written there")


def test_an_io_error_on_a_full_disk_is_the_disk_full_line(workspace, monkeypatch):
    """Guards: SQLite's "disk I/O error" opening the database on a full disk (its -shm file cannot grow) read
    "cannot read … (disk I/O error)"."""
    from fer_core.jobs.records import RUNS_SCHEMA

    with store.writing(workspace, RUNS_SCHEMA):
        pass
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"

    def failing_probe(uri):
        raise error

    monkeypatch.setattr(store, "_probe", failing_probe)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=1 << 30, used=1 << 30, free=0))
    with pytest.raises(ValueError) as refused:
        with store.reading(workspace):
            pass
    assert str(refused.value) == (f"disk full writing {workspace / store.DATABASE_NAME} (disk I/O error); "
                                  "nothing was written there")


# ---------------------------------------------------------------------------------------------
# 2. A read-only workspace: writers say so in one line, readers read


def test_an_uncached_audit_in_a_read_only_workspace_is_one_line(data_folder, tmp_path, monkeypatch, capsys):
    """Guards: the first cache write in a read-only workspace was a traceback (OSError: Read-only file system)."""
    home = tmp_path / "workspace"
    home.mkdir()
    read_only(monkeypatch, home)
    assert main(command("audit", data_folder, tmp_path / "out", home)) == 2
    assert one_error_line(capsys) == f"error: cannot write {home / 'cache'}: read-only file system"


def test_report_on_a_cached_audit_in_a_read_only_workspace_only_reads(data_folder, cached_workspace, tmp_path,
                                                                     monkeypatch, capsys):
    """Guards: the report created cache/mislabels just to look for a result, so it failed in a read-only
    workspace although reading needs no write."""
    out = tmp_path / "writable" / "report.html"
    before = everything_under(cached_workspace)
    read_only(monkeypatch, cached_workspace)
    assert main(command("report", data_folder, out, cached_workspace)) == 0, capsys.readouterr().err
    assert out.stat().st_size > 0
    assert everything_under(cached_workspace) == before


def test_mislabels_in_a_read_only_workspace_is_one_line(data_folder, cached_workspace, tmp_path, monkeypatch, capsys):
    """Guards: mislabels (a writer: its result is cached) in a read-only workspace was a traceback."""
    read_only(monkeypatch, cached_workspace)
    code = main(["mislabels", str(data_folder), "--out", str(tmp_path / "out"), "--folds", "2", "--size", "tiny",
                 "--epochs", "1", "--quiet", "--workspace", str(cached_workspace)])
    assert code == 2
    folder = cached_workspace / "cache" / "mislabels"
    assert one_error_line(capsys) == f"error: cannot write {folder}: read-only file system"


def test_train_in_an_uncached_read_only_workspace_is_one_line(data_folder, tmp_path, monkeypatch, capsys):
    """Guards: train in a read-only workspace without the data's caches was a traceback."""
    home = tmp_path / "workspace"
    home.mkdir()
    read_only(monkeypatch, home)
    code = main(["train", str(data_folder), "--model", "cnn", "--sampling", "none", "--size", "tiny", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--workspace", str(home)])
    assert code == 2
    assert one_error_line(capsys) == f"error: cannot write {home / 'cache'}: read-only file system"


# ---------------------------------------------------------------------------------------------
# 3. Cache paths of the wrong type


def test_a_folder_in_place_of_a_cache_file_is_recomputed_and_replaced(data_folder, cached_workspace, tmp_path, capsys):
    """Guards: a folder named like a detector's cache file made the audit end in IsADirectoryError."""
    cached = next((cached_workspace / "cache").glob("phash-*.parquet"))
    cached.unlink()
    cached.mkdir()
    (cached / "part-0.parquet").write_bytes(b"not parquet")
    assert main(command("audit", data_folder, tmp_path / "out", cached_workspace)) == 0, capsys.readouterr().err
    assert cached.is_file()
    assert "phash" in json.loads((tmp_path / "out" / "summary.json").read_text())["seconds_by_stage"]  # recomputed


def test_a_file_in_place_of_the_cache_folder_is_one_line_naming_it_and_the_fix(data_folder, tmp_path, capsys):
    """Guards: `cache` being a file made every command end in FileExistsError."""
    home = tmp_path / "workspace"
    home.mkdir()
    (home / "cache").write_text("someone's notes")
    assert main(command("audit", data_folder, tmp_path / "out", home)) == 2
    assert one_error_line(capsys) == (f"error: {home / 'cache'} is a file, not FER Audit's cache folder: move it away "
                                      "(the caches are rebuilt) or use another --workspace")
    assert (home / "cache").read_text() == "someone's notes"


# ---------------------------------------------------------------------------------------------
# 4. A cached mislabel summary of the wrong shape


@pytest.mark.parametrize("document", [[], {}, {"images": "many"}, None])
def test_a_cached_mislabel_summary_of_the_wrong_shape_counts_as_absent(data_folder, cached_workspace, tmp_path,
                                                                      monkeypatch, capsys, document):
    """Guards: valid JSON of the wrong shape in the cached summary.json ended the CLI in TypeError/KeyError
    after the outputs were written, and took the app's Overview cards down (AttributeError)."""
    from test_mislabels import stored_result

    from fer_core.mislabels import results, run
    from fer_core.mislabels.config import MislabelConfig

    dataset = load(data_folder, workspace=cached_workspace)
    config = MislabelConfig(folds=2, size="tiny", epochs=1)
    fresh = stored_result(dataset, {}, cached_workspace, config)
    summary_path = results.cache_root(cached_workspace) / results.cache_key(dataset, config) / "summary.json"
    summary_path.write_text(json.dumps(document))
    assert results.read_cached_result(results.cache_key(dataset, config), cached_workspace) is None
    assert results.latest_result(dataset, cached_workspace) is None

    monkeypatch.setattr(run, "find_mislabels", lambda data, config, **options: fresh)  # the recompute, quick
    out = tmp_path / "out"
    code = main(["mislabels", str(data_folder), "--out", str(out), "--folds", "2", "--size", "tiny", "--epochs", "1",
                 "--quiet", "--workspace", str(cached_workspace)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["from_cache"] is False
    assert results.latest_result(dataset, cached_workspace) is not None  # the damaged entry was replaced
