"""The `edit` and `export` commands: their exact interface, one-line errors, and nothing written on error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_edits import make_dataset, with_planted_leaks

from fer_core.cli import main
from fer_core.curation import edits
from fer_core.curation.export import write_csv
from fer_core.dataset.loading import load

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_csv(tmp_path, monkeypatch) -> Path:
    """A 12-sample fer2013.csv (ids row:0..row:11); FER_DATA unset so tests choose how the data is found."""
    monkeypatch.delenv("FER_DATA", raising=False)
    path = tmp_path / "data" / "fer2013.csv"
    path.parent.mkdir()
    write_csv(make_dataset(12, usages=["Training"] * 8 + ["PublicTest"] * 2 + ["PrivateTest"] * 2), path)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def history_json(capsys) -> list[dict]:
    code, out, _ = run(capsys, "edit", "history", "--json")
    assert code == 0
    return json.loads(out)


def test_relabel_drop_restore_undo_and_history(workspace, data_csv, capsys):
    code, out, _ = run(capsys, "edit", "relabel", "row:0", "Happy", "--reason", "smiling", "--data", str(data_csv),
                       "--author", "ana")
    assert code == 0 and "#1 relabel row:0 (angry -> happy)" in out
    # the workspace now knows its data: no --data needed any more
    assert run(capsys, "edit", "drop", "row:1", "row:2", "--reason", "not faces")[0] == 0
    assert run(capsys, "edit", "restore", "row:2")[0] == 0
    code, out, _ = run(capsys, "edit", "undo", "1", "--reason", "was right")
    assert code == 0 and "#5 undo of #1 row:0 (happy -> angry)" in out

    rows = history_json(capsys)
    assert [(row["edit_id"], row["action"], row["active"]) for row in rows] == [
        (1, "relabel", False), (2, "drop", True), (3, "drop", True), (4, "restore", True), (5, "undo", True)]
    assert rows[0]["author"] == "ana" and rows[0]["reason"] == "smiling" and rows[4]["undoes"] == 1
    assert rows[1]["batch_id"] == rows[2]["batch_id"] != rows[3]["batch_id"]
    code, out, _ = run(capsys, "edit", "history")
    assert code == 0 and "relabel" in out and "smiling" in out
    curated = edits.curated_dataset(load(data_csv, workspace=workspace))
    assert len(curated) == 11 and curated.labels[0] == 0


def test_data_from_environment(workspace, data_csv, capsys, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(data_csv))
    assert run(capsys, "edit", "drop", "row:3", "--reason", "blank")[0] == 0
    assert edits.read_workspace_meta()["data_path"] == str(data_csv.resolve())


@pytest.mark.parametrize("argv, message", [
    (["edit", "relabel", "row:99", "happy", "--reason", "r"], "unknown sample id 'row:99'"),
    (["edit", "relabel", "row:0", "joyful", "--reason", "r"],
     "unknown emotion 'joyful'; expected one of angry, disgust, fear, happy, sad, surprise, neutral"),
    (["edit", "drop", "row:0", "row:123", "--reason", "r"], "unknown sample id 'row:123'"),
    (["edit", "restore", "row:0"], "not dropped"),
    (["edit", "undo", "7"], "unknown edit id 7"),
    (["edit", "relabel", "row:0", "happy", "--reason", " "], "reason is required"),
])
def test_user_errors_are_one_line_exit_2_and_write_nothing(workspace, data_csv, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("FER_DATA", str(data_csv))
    code, out, err = run(capsys, *argv)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (workspace / edits.DATABASE_NAME).exists()


def test_no_dataset_known_is_an_error(workspace, data_csv, capsys):
    code, _, err = run(capsys, "edit", "drop", "row:0", "--reason", "r")
    assert code == 2 and "--data" in err and "FER_DATA" in err


def test_a_workspace_made_for_another_dataset_is_refused(workspace, data_csv, tmp_path, capsys):
    assert run(capsys, "edit", "drop", "row:0", "--reason", "r", "--data", str(data_csv))[0] == 0
    other = tmp_path / "other.csv"
    write_csv(make_dataset(12, seed=9), other)
    before = (workspace / edits.DATABASE_NAME).read_bytes()
    for argv in (["edit", "drop", "row:1", "--reason", "r", "--data", str(other)],
                 ["edit", "resolve-leaks", str(other)],
                 ["export", str(other), "--format", "csv", "--out", str(tmp_path / "x.csv")]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "made for another dataset" in err
    assert (workspace / edits.DATABASE_NAME).read_bytes() == before
    assert not (tmp_path / "x.csv").exists()


def test_resolve_leaks_dry_run_then_for_real(workspace, tmp_path, capsys):
    dataset, planted = with_planted_leaks()
    data = tmp_path / "leaky.csv"
    write_csv(dataset, data)
    code, out, _ = run(capsys, "edit", "resolve-leaks", str(data), "--dry-run")
    assert code == 0 and "dry run: 2 edit(s) planned, nothing written" in out
    assert not (workspace / edits.DATABASE_NAME).exists()
    code, out, _ = run(capsys, "edit", "resolve-leaks", str(data), "--workspace", str(workspace))
    assert code == 0 and "2 edit(s) written" in out
    assert {row["sample_id"] for row in history_json(capsys)} == {"row:16", "row:17"}
    code, out, _ = run(capsys, "edit", "resolve-leaks", str(data))
    assert code == 0 and "nothing to do" in out


def test_resolve_group_command(workspace, tmp_path, capsys):
    """keep_one keeps the test copy of a group (rows 0, 1 and 8 are exact copies; ids must be one group)."""
    from fer_core.dataset.loading import Dataset

    base = make_dataset(12, usages=["Training"] * 8 + ["PublicTest"] * 2 + ["PrivateTest"] * 2)
    pixels = base.pixels.copy()
    pixels[[1, 8]] = pixels[0]
    data = tmp_path / "group.csv"
    write_csv(Dataset(ids=base.ids, pixels=pixels, labels=base.labels, usages=base.usages), data)
    code, out, _ = run(capsys, "edit", "resolve-group", "row:0", "row:1", "row:8", "--resolution", "keep_one",
                       "--reason", "same face", "--data", str(data))
    assert code == 0 and "drop row:0" in out and "drop row:1" in out and "row:8" not in out.split("batch")[0]


def test_export_command_and_overwrite_guard(workspace, data_csv, tmp_path, capsys):
    assert run(capsys, "edit", "drop", "row:4", "--reason", "bad", "--data", str(data_csv))[0] == 0
    out_csv, out_folders = tmp_path / "exports" / "curated.csv", tmp_path / "exports" / "curated"
    code, out, _ = run(capsys, "export", str(data_csv), "--format", "csv", "--out", str(out_csv))
    assert code == 0 and "exported 11 of 12 samples" in out
    assert len(load(out_csv, use_cache=False)) == 11
    assert run(capsys, "export", str(data_csv), "--format", "folders", "--out", str(out_folders))[0] == 0
    assert len(load(out_folders, use_cache=False)) == 11
    code, _, err = run(capsys, "export", str(data_csv), "--format", "folders", "--out", str(out_folders))
    assert code == 2 and "--overwrite" in err
    assert run(capsys, "export", str(data_csv), "--format", "folders", "--out", str(out_folders), "--overwrite")[0] == 0


def test_reason_is_required_by_relabel_and_drop(workspace, data_csv, capsys):
    for argv in (["edit", "relabel", "row:0", "happy"], ["edit", "drop", "row:0"]):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2 and "--reason" in capsys.readouterr().err


def test_module_entry_point_exit_status(workspace, data_csv):
    env = {**os.environ, "FER_DATA": str(data_csv), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "fer_core", "edit", "relabel", "row:0", "happy", "--reason", "r"],
                          env=env, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    wrong = subprocess.run([sys.executable, "-m", "fer_core", "edit", "undo", "99"],
                           env=env, capture_output=True, text=True, cwd=REPO)
    assert wrong.returncode == 2 and wrong.stderr == "error: unknown edit id 99; edit ids in this workspace: 1..1\n"


def test_resolve_leaks_uses_the_audits_verified_leaks_by_default(workspace, tmp_path, capsys):
    """The CLI drops the same Training copies the audit and the app show: a mirrored test copy's
    original is a leak (verified on pixels) that the pHash alone misses."""
    from synthetic import make_synthetic_near

    from fer_core.dataset.loading import Dataset

    base, _, near = make_synthetic_near(seed=0)
    original, copy = (base.index_of(sample_id) for sample_id in near.copies["mirrored"])
    usages = base.usages.copy()
    usages[copy] = "PublicTest"
    data = tmp_path / "mirrored.csv"
    write_csv(Dataset(ids=base.ids, pixels=base.pixels, labels=base.labels, usages=usages), data)
    original_row = f"row:{original}"  # a CSV's ids are its data rows
    code, verified, _ = run(capsys, "edit", "resolve-leaks", str(data), "--dry-run")
    assert code == 0 and f"drop {original_row} (" in verified
    code, by_hash, _ = run(capsys, "edit", "resolve-leaks", str(data), "--dry-run", "--near-mode", "hash")
    assert code == 0 and f"drop {original_row} (" not in by_hash
