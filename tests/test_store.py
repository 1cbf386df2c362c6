"""The workspace database's owner: files that are not an intact FER Audit database, read-only workspaces."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from test_edits import make_dataset

from fer_core import store
from fer_core.cli import main
from fer_core.curation import edits


def fill_workspace(workspace: Path, count: int = 60) -> None:
    """A real edit log large enough that its first 4 KiB are not the whole database, and one queued run."""
    from fer_core.jobs import records
    from fer_core.training.config import TrainConfig

    dataset = make_dataset(count)
    for index in range(count):
        edits.relabel(dataset, dataset.ids[index], "sad" if index % 7 != 4 else "happy", f"reason {index} " * 20,
                      workspace=workspace)
    records.insert_runs(workspace, [{"run_id": "20260101-000000-abcdef", "kind": "train", "backend": "local",
                                     "data_path": "/data", "config_json": TrainConfig(epochs=3).to_json(),
                                     "out_dir": str(workspace / "runs" / "20260101-000000-abcdef")}])


def run_cli(arguments: list[str], capsys) -> tuple[int, str, str]:
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *patterns: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for pattern in patterns:
        assert pattern in err, err


def side_files(path: Path) -> list[Path]:
    return [Path(f"{path}{suffix}") for suffix in store.SIDE_FILES if Path(f"{path}{suffix}").exists()]


READING_COMMANDS = [["edit", "history"], ["edit", "history", "--json"], ["jobs", "list"], ["jobs", "list", "--json"],
                    ["jobs", "show", "20260101-000000-abcdef"]]
WRITING_COMMANDS = [["edit", "undo", "1", "--reason", "r"], ["jobs", "cancel", "20260101-000000-abcdef"],
                    ["jobs", "submit", "DATA", "--model", "cnn", "--sampling", "none", "--epochs", "1"],
                    ["jobs", "drain"]]


def with_data(command: list[str], data: Path) -> list[str]:
    return [str(data) if part == "DATA" else part for part in command]


def test_a_truncated_database_is_one_line_left_untouched_with_no_side_files(tmp_path, capsys):
    workspace = tmp_path / "workspace"
    fill_workspace(workspace)
    database = workspace / store.DATABASE_NAME
    assert database.stat().st_size > 4096 and not side_files(database)
    database.write_bytes(database.read_bytes()[:4096])  # `head -c 4096`
    before = database.read_bytes()
    for command in READING_COMMANDS + WRITING_COMMANDS:
        code, out, err = run_cli([*with_data(command, tmp_path), "--workspace", str(workspace)], capsys)
        assert_one_line_error(code, err, str(database), "damaged, truncated")
        assert out == ""
    assert database.read_bytes() == before
    assert side_files(database) == []


def test_a_directory_in_place_of_the_database_is_one_line(tmp_path, capsys):
    workspace = tmp_path / "workspace"
    (workspace / store.DATABASE_NAME).mkdir(parents=True)
    for command in READING_COMMANDS + WRITING_COMMANDS:
        code, _, err = run_cli([*with_data(command, tmp_path), "--workspace", str(workspace)], capsys)
        assert_one_line_error(code, err, "is a directory")
    assert sorted(path.name for path in workspace.iterdir()) == [store.DATABASE_NAME]


@pytest.fixture
def make_read_only(tmp_path):
    """Make a folder read-only for this process: a read-only bind mount as root (who ignores modes), else chmod."""
    mounted: list[Path] = []
    changed: list[Path] = []

    def read_only(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            changed.append(folder)
            return folder
        view = tmp_path / f"{folder.name}_read_only"
        view.mkdir()
        for command in (["mount", "--bind", str(folder), str(view)], ["mount", "-o", "remount,bind,ro", str(view)]):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                if mounted:
                    subprocess.run(["umount", str(view)], check=False)
                pytest.skip(f"running as root, and a read-only bind mount failed ({result.stderr.strip()}): "
                            f"cannot make a read-only workspace here")
            if command[1] == "--bind":
                mounted.append(view)
        return view

    yield read_only
    for view in mounted:
        subprocess.run(["umount", str(view)], check=False)
    for folder in changed:
        folder.chmod(0o755)


def test_a_read_only_workspace_can_be_read_but_not_written(tmp_path, capsys, make_read_only):
    source = tmp_path / "workspace"
    fill_workspace(source, count=5)
    assert not side_files(source / store.DATABASE_NAME)  # closed cleanly: WAL files gone, as after any session
    workspace = make_read_only(source)
    database = workspace / store.DATABASE_NAME
    before = database.read_bytes()

    code, out, err = run_cli(["edit", "history", "--json", "--workspace", str(workspace)], capsys)
    assert code == 0, err
    assert '"reason": "reason 4' in out
    for command in READING_COMMANDS:
        code, out, err = run_cli([*command, "--workspace", str(workspace)], capsys)
        assert code == 0 and out and not err, err
    assert "20260101-000000-abcdef  queued" in run_cli(["jobs", "list", "--workspace", str(workspace)], capsys)[1]
    assert edits.read_workspace_meta(workspace)["dataset_fingerprint"]
    for command in WRITING_COMMANDS:
        code, out, err = run_cli([*with_data(command, tmp_path), "--workspace", str(workspace)], capsys)
        assert_one_line_error(code, err, "read-only")
    assert database.read_bytes() == before and not side_files(database)


def test_another_process_sees_every_commit_of_a_connection_opened_before(tmp_path):
    """The read path must not change the file: a long-lived writer keeps working after readers came and went."""
    workspace = tmp_path / "workspace"
    dataset = make_dataset(4)
    writer = edits.connect_database(workspace)
    try:
        edits.relabel(dataset, dataset.ids[0], "sad", "one", workspace=workspace)
        assert len(edits.read_edits(workspace)) == 1
        with store.transaction(writer):
            writer.execute("INSERT INTO workspace_meta (key, value) VALUES ('probe', 'x')")
        assert edits.read_workspace_meta(workspace)["probe"] == "x"
    finally:
        writer.close()


def test_a_failed_transaction_leaves_nothing(tmp_path):
    workspace = tmp_path / "workspace"
    with store.writing(workspace) as connection:
        with pytest.raises(RuntimeError):
            with store.transaction(connection):
                connection.execute("INSERT INTO workspace_meta (key, value) VALUES ('half', 'written')")
                raise RuntimeError("stop")
        assert connection.execute("SELECT count(*) FROM workspace_meta WHERE key = 'half'").fetchone() == (0,)


def test_an_empty_file_becomes_a_database_and_schemas_are_created_once(tmp_path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / store.DATABASE_NAME).touch()
    schema = store.Schema("test", ("things",), "CREATE TABLE IF NOT EXISTS things (name TEXT)")
    for _ in range(2):
        with store.writing(workspace, schema) as connection:
            assert {"workspace_meta", "things"} <= store.table_names(connection)
    with sqlite3.connect(workspace / store.DATABASE_NAME) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID
    connection.close()
