"""`edit tag`, `edit untag`, `edit tags`: their interface, one-line errors, nothing written on error."""

from __future__ import annotations

import getpass
import json

import pytest
from test_cli_edit import data_csv, run  # noqa: F401 (data_csv is a fixture)

from fer_core.curation import edits, tags
from fer_core.store import database_path


def test_tag_untag_and_list(workspace, data_csv, capsys):
    code, out, _ = run(capsys, "edit", "tag", str(data_csv), "--ids", "row:0", "row:1", "--tag", "blurry",
                       "--author", "ana")
    assert code == 0 and out.startswith("tagged 2 image(s) 'blurry' in batch ")
    ids_file = data_csv.parent / "ids.txt"
    ids_file.write_text("row:1\n\nrow:2\n")
    # the workspace now knows its data: DATA may be left out
    code, out, _ = run(capsys, "edit", "tag", "--ids-file", str(ids_file), "--tag", "blurry")
    assert code == 0 and "tagged 1 image(s) 'blurry'" in out and "(1 had it already)" in out
    assert run(capsys, "edit", "tag", "--ids", "row:0", "--tag", "Ask Ana")[0] == 0

    code, out, _ = run(capsys, "edit", "tags")
    assert code == 0 and out.split("\n")[:2] == ["      1  Ask Ana", "      3  blurry"]
    code, out, _ = run(capsys, "edit", "tags", "--json")
    assert json.loads(out) == [{"tag": "Ask Ana", "images": 1}, {"tag": "blurry", "images": 3}]
    code, out, _ = run(capsys, "edit", "tags", "--tag", "blurry")
    assert out.split() == ["row:0", "row:1", "row:2"]

    code, out, _ = run(capsys, "edit", "untag", "--ids", "row:0", "row:5", "--tag", "blurry")
    assert code == 0 and "untagged 1 image(s) 'blurry'" in out and "(1 did not have it)" in out
    code, out, _ = run(capsys, "edit", "untag", "--ids", "row:5", "--tag", "blurry")
    assert out.strip() == "nothing to do: untagged 0 image(s) 'blurry' (1 did not have it)"
    assert [event.author for event in tags.tag_history()][:2] == ["ana", "ana"]
    assert run(capsys, "edit", "tags", "--tag", "nothing")[1].strip() == "no image is tagged 'nothing'"


def test_an_empty_workspace_lists_no_tags_and_creates_nothing(workspace, capsys):
    assert run(capsys, "edit", "tags")[1].strip() == "no tags yet"
    assert not database_path(workspace).exists()


@pytest.mark.parametrize("argv, message", [
    (["--ids", "row:0", "--tag", ""], "a tag cannot be empty"),
    (["--ids", "row:0", "--tag", "x" * 65], "at most 64"),
    (["--ids", "row:0", "--tag", "a\tb"], "control character"),
    (["--tag", "blurry"], "no images given: pass --ids ID... or --ids-file FILE"),
    (["--ids", "row:0", "row:99", "--tag", "blurry"], "unknown sample id 'row:99'"),
    (["--ids-file", "missing.txt", "--tag", "blurry"], "--ids-file missing.txt: no such file"),
    (["--ids", "row:0", "--tag", "blurry", "--author", "a" * 1001], "at most 1,000"),
])
def test_user_errors_are_one_line_exit_2_and_write_nothing(workspace, data_csv, capsys, argv, message):
    code, out, err = run(capsys, "edit", "tag", str(data_csv), *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not database_path(workspace).exists()


def test_the_default_author_is_fer_audit_author_else_the_os_user(workspace, data_csv, capsys, monkeypatch):
    monkeypatch.setenv("FER_AUDIT_AUTHOR", " lab reviewer ")
    assert run(capsys, "edit", "tag", str(data_csv), "--ids", "row:0", "--tag", "blurry")[0] == 0
    assert run(capsys, "edit", "drop", "row:1", "--reason", "blank")[0] == 0
    assert tags.tag_history()[0].author == "lab reviewer" and edits.read_edits()[0].author == "lab reviewer"
    monkeypatch.delenv("FER_AUDIT_AUTHOR")
    assert run(capsys, "edit", "drop", "row:2", "--reason", "blank")[0] == 0
    assert edits.read_edits()[1].author == getpass.getuser()
