"""The `audit` command on bad input: odd trees are listed in summary.json, and a bad --out or
--workspace is one `error:` line with exit status 2 before any work (nothing decoded, nothing written)."""

from __future__ import annotations

import json

import pytest
from test_dataset import image_tree

from fer_core.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summary_lists_unreadable_and_skipped_entries_with_reasons(tmp_path, workspace, capsys):
    root = image_tree(tmp_path / "data")
    (root / "train" / "happy" / "x.jpg").symlink_to("x.jpg")
    (root / "train" / "happy" / "notes.txt").write_text("not an image")
    (root / "train" / "happy" / "Training_9.jpg").write_text("not an image either")
    code, out, _ = run(capsys, "audit", root, "--out", tmp_path / "out", "--quiet")
    assert code == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == 3
    assert summary["unreadable"] == ["train/happy/Training_9.jpg", "train/happy/x.jpg"]
    assert "symlink loop" in summary["unreadable_reasons"]["train/happy/x.jpg"]
    assert summary["unreadable_reasons"]["train/happy/Training_9.jpg"].endswith("not an image (or an unsupported format)")
    assert summary["skipped"] == ["train/happy/notes.txt"]
    assert "not an image file name" in summary["skipped_reasons"]["train/happy/notes.txt"]
    assert "unreadable: 2" in out and "skipped (not images): 1" in out


@pytest.mark.parametrize("option, make, message", [
    ("--out", "file", "--out {path} is a file, not a folder"),
    ("--out", "under a file", "--out {path} lies under {blocker}, which is a file, not a folder"),
    ("--workspace", "file", "--workspace {path} is a file, not a folder"),
])
def test_bad_output_paths_fail_in_one_line_before_any_work(tmp_path, workspace, capsys, option, make, message):
    root = image_tree(tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    path = blocker if make == "file" else blocker / "sub"
    out = path if option == "--out" else tmp_path / "out"
    extra = ["--workspace", path] if option == "--workspace" else []
    code, _, err = run(capsys, "audit", root, "--out", out, "--quiet", *extra)
    assert code == 2
    assert err.splitlines() == [f"error: {message.format(path=path, blocker=blocker)}"]
    assert blocker.read_text() == "keep me"
    assert not (workspace / "cache").exists(), "the data was loaded before the paths were checked"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["edit", "history"], ["jobs", "list"]])
def test_a_workspace_that_is_a_file_is_one_line_in_every_command(tmp_path, workspace, capsys, argv):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    for path, message in ((blocker, f"workspace {blocker} is a file, not a folder"),
                          (blocker / "sub", f"workspace {blocker / 'sub'} lies under {blocker}, which is a file")):
        code, _, err = run(capsys, *argv, "--workspace", path)
        assert code == 2
        assert len(err.splitlines()) == 1 and message in err
    assert blocker.read_text() == "keep me"
