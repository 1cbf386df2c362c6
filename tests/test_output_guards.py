"""Where commands may write: never over, around or into the workspace or the data, never over an
earlier run unless asked, never an empty path; leftovers of a killed export are cleaned; edit
inputs are bounded; a group resolution takes one group and keeps test images unless asked.

Every refusal is one `error:` line, exit status 2, before any work (nothing loaded, nothing written).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_dataset import image_tree
from test_edits import make_dataset

from fer_core import files
from fer_core.cli import main
from fer_core.curation import edits
from fer_core.curation.export import write_csv
from fer_core.dataset.loading import Dataset, load

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--model", "cnn", "--sampling", "none", "--size", "tiny", "--epochs", "1"]
MISLABELS = ["--folds", "2", "--size", "tiny", "--epochs", "1"]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder)."""
    return {str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
            for path in sorted(folder.rglob("*"))}


@pytest.fixture
def used_workspace(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(data, workspace): a tiny image tree, and a workspace holding its edit log and caches.
    FER_AUDIT_HOME points elsewhere, so only --workspace names this one."""
    monkeypatch.setenv("FER_AUDIT_HOME", str(tmp_path / "other-home"))
    monkeypatch.delenv("FER_DATA", raising=False)
    data, home = image_tree(tmp_path / "data"), tmp_path / "keep" / "workspace"
    dataset = load(data, workspace=home)
    edits.drop(dataset, ["train/sad/Training_2.jpg"], "blurred", workspace=home)
    assert (home / edits.DATABASE_NAME).exists() and (home / "cache").is_dir()
    return data, home


def command_for(name: str, data: Path, out: Path, *extra) -> list:
    """`name`'s command line writing to `out` (export as folders: the case that replaces a whole folder)."""
    arguments = {"audit": ["audit", data, "--quiet"], "export": ["export", data, "--format", "folders", "--overwrite"],
                 "train": ["train", data, *TRAIN, "--overwrite"], "mislabels": ["mislabels", data, *MISLABELS, "--quiet"],
                 "report": ["report", data, "--quiet", "--fast"]}[name]
    return [*arguments, "--out", out, *extra]


COMMANDS = ("audit", "export", "train", "mislabels", "report")


# ---------------------------------------------------------------------------------------------
# 1, 3: an output apart from the workspace and the data


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("where, relation", [("keep/workspace", "is"), ("keep", "contains"),
                                             ("keep/workspace/sub", "lies inside")])
def test_no_command_writes_over_around_or_into_the_workspace(used_workspace, capsys, name, where, relation):
    """Guards `export --out WS --workspace WS --overwrite`, which deleted the edit log and caches, and
    `--out X --workspace X/W --overwrite`, which deleted the whole workspace inside X."""
    data, home = used_workspace
    out = home.parent.parent / where
    if name == "report" and where.endswith("sub"):
        out = out / "report.html"
    before = snapshot(home.parent)
    code, stdout, err = run(capsys, *command_for(name, data, out, "--workspace", home))
    assert (code, stdout) == (2, "")
    assert err == f"error: --out {out} {relation} the workspace {home}; choose another --out\n"
    assert snapshot(home.parent) == before


@pytest.mark.parametrize("name", COMMANDS)
def test_the_workspace_protected_is_the_one_in_use(used_workspace, tmp_path, capsys, monkeypatch, name):
    """Without --workspace it is $FER_AUDIT_HOME; `..` and symlinks do not hide it."""
    data, home = used_workspace
    monkeypatch.setenv("FER_AUDIT_HOME", str(home))
    (tmp_path / "link").symlink_to(home.parent)
    for out in (home / ".." / "workspace", tmp_path / "link" / "workspace"):
        code, _, err = run(capsys, *command_for(name, data, out))
        assert code == 2 and err == f"error: --out {out} is the workspace {home}; choose another --out\n"


@pytest.mark.parametrize("name", COMMANDS)
def test_no_command_writes_into_the_data(used_workspace, capsys, name):
    """Guards `audit --out DATA/train/happy`, which wrote summary.json and samples.csv into the image tree."""
    data, home = used_workspace
    out = data / "train" / "happy" if name != "report" else data / "train" / "report.html"
    before = snapshot(data)
    code, _, err = run(capsys, *command_for(name, data, out, "--workspace", home))
    assert code == 2 and err == f"error: --out {out} lies inside the source data {data}; choose another --out\n"
    assert snapshot(data) == before


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("inside", ["", "workspace", "train/workspace"])
def test_no_command_keeps_its_workspace_in_the_data(used_workspace, tmp_path, capsys, monkeypatch, name, inside):
    """Guards `cd DATA && python -m fer_core audit . --out ../a`, whose default ./workspace (caches, the edit
    log) was written into the image tree; the same through $FER_AUDIT_HOME."""
    data, _ = used_workspace
    home = data / inside if inside else data
    out = tmp_path / "elsewhere" / ("report.html" if name == "report" else "out")
    before = snapshot(data)
    relation = "is" if not inside else "lies inside"
    code, stdout, err = run(capsys, *command_for(name, data, out, "--workspace", home))
    assert (code, stdout) == (2, "")
    assert err == (f"error: --workspace {home} {relation} the source data {data}; FER Audit never writes into "
                   f"the data: choose another --workspace\n")
    monkeypatch.setenv("FER_AUDIT_HOME", str(home))
    code, _, err = run(capsys, *command_for(name, data, out))
    assert code == 2 and err.startswith(f"error: FER_AUDIT_HOME {home} {relation} the source data")
    assert snapshot(data) == before and not out.exists()


@pytest.mark.parametrize("argv", [["edit", "drop", "train/sad/Training_2.jpg", "--reason", "blurred", "--data"],
                                  ["edit", "resolve-leaks"], ["edit", "tag", "--ids", "train/sad/Training_2.jpg",
                                                              "--tag", "blurry"]])
def test_no_edit_keeps_its_workspace_in_the_data(used_workspace, capsys, argv):
    """Guards `edit relabel --data D --workspace D/ws`, which wrote the edit log, caches and labels.json into D."""
    data, _ = used_workspace
    before = snapshot(data)
    code, stdout, err = run(capsys, *argv, data, "--workspace", data / "ws")
    assert (code, stdout) == (2, "") and err.startswith(f"error: --workspace {data / 'ws'} lies inside the source data")
    assert snapshot(data) == before


def test_exports_beside_the_workspace_still_work(used_workspace, capsys):
    data, home = used_workspace
    out = home.parent / "export"
    assert run(capsys, "export", data, "--format", "folders", "--out", out, "--workspace", home)[0] == 0
    assert len(load(out, use_cache=False)) == 2 and (home / edits.DATABASE_NAME).exists()


def test_background_runs_still_write_in_the_workspace(tmp_path, monkeypatch):
    """The jobs machinery writes `workspace/runs/<id>` through training directly, not the `train` command."""
    from fer_core.jobs import kinds
    from fer_core.training import fit

    written = {}
    monkeypatch.setattr(fit, "train_and_evaluate", lambda dataset, config, out, **_: written.setdefault("out", out))
    home = tmp_path / "workspace"
    out = home / "runs" / "run-1"
    context = kinds.JobContext("run-1", home, out, lambda stage: None, lambda progress: None)
    kinds.run_training(str(image_tree(tmp_path / "data")), None, context)
    assert written["out"] == out


# ---------------------------------------------------------------------------------------------
# 2, 4: train --out checked before the run; an earlier run replaced only with --overwrite


@pytest.mark.parametrize("make, message", [
    ("file", "--out {out} is a file, not a folder"),
    ("under a file", "--out {out} lies under {blocker}, which is a file, not a folder"),
])
def test_train_out_a_file_fails_before_any_work(tmp_path, workspace, capsys, make, message):
    """Was found only after the whole training run."""
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    out = blocker if make == "file" else blocker / "run"
    code, _, err = run(capsys, "train", image_tree(tmp_path / "data"), *TRAIN, "--out", out)
    assert code == 2 and err == f"error: {message.format(out=out, blocker=blocker)}\n"
    assert blocker.read_text() == "keep me" and not (workspace / "cache").exists()


@pytest.fixture
def fake_training(monkeypatch) -> list[Path]:
    """`train` with the fit replaced: records where it would write."""
    from fer_core.cli import train

    calls = []

    def train_and_evaluate(dataset, config, out, **_):
        calls.append(Path(out))
        return {"test_usage": "PrivateTest", "accuracy": 0.5, "macro_f1": 0.5, "leak_free_accuracy": None,
                "leaked_test_images": 0, "device": "CPU", "seconds": 0.0}

    monkeypatch.setattr(train, "train_and_evaluate", train_and_evaluate)
    return calls


@pytest.mark.parametrize("earlier", ["metrics.json", "model.keras", "history.json"])
def test_train_refuses_an_earlier_run_unless_overwrite(tmp_path, workspace, capsys, fake_training, earlier):
    """Guards `train --out DIR_OF_AN_EARLIER_RUN`, which silently replaced that run's model and metrics."""
    data, out = image_tree(tmp_path / "data"), tmp_path / "run"
    out.mkdir()
    (out / earlier).write_text("the earlier run")
    code, _, err = run(capsys, "train", data, *TRAIN, "--out", out)
    assert code == 2 and fake_training == []
    assert err == (f"error: --out {out} holds an earlier run ({earlier}); pass --overwrite to replace it "
                   f"or choose another --out\n")
    assert run(capsys, "train", data, *TRAIN, "--out", out, "--overwrite")[0] == 0 and fake_training == [out]
    assert run(capsys, "train", data, *TRAIN, "--out", tmp_path / "fresh")[0] == 0


# ---------------------------------------------------------------------------------------------
# 5: --author bounded like a reason


def test_an_author_is_capped_like_a_reason(workspace, tmp_path, capsys):
    """120,000 characters were accepted and `edit history` then printed a megabyte."""
    dataset = make_dataset(4)
    cap = edits.MAX_REASON_CHARACTERS
    message = f"the author is {cap + 1:,} characters long; at most {cap:,} are kept (a name or a handle)"
    with pytest.raises(ValueError, match=re.escape(message)):
        edits.drop(dataset, [dataset.ids[0]], "blurred", author="a" * (cap + 1))
    data = tmp_path / "data.csv"
    write_csv(dataset, data)
    code, _, err = run(capsys, "edit", "drop", "row:0", "--reason", "blurred", "--data", data, "--author", "a" * 120_000)
    assert code == 2 and err == f"error: the author is 120,000 characters long; at most {cap:,} are kept (a name or a handle)\n"
    assert not (workspace / edits.DATABASE_NAME).exists()
    assert edits.drop(dataset, [dataset.ids[0]], "blurred", author="a" * cap)[0].author == "a" * cap


# ---------------------------------------------------------------------------------------------
# 6: an empty path is named, not taken for the current folder


@pytest.mark.parametrize("argv, option", [
    (["audit", "DATA", "--out", ""], "--out"),
    (["export", "DATA", "--format", "folders", "--out", "", "--overwrite"], "--out"),
    (["export", "DATA", "--format", "csv", "--out", ""], "--out"),
    (["train", "DATA", *TRAIN, "--out", ""], "--out"),
    (["report", "DATA", "--out", ""], "--out"),
    (["mislabels", "DATA", "--out", "", "--quiet"], "--out"),
    (["audit", "DATA", "--out", "OUT", "--workspace", ""], "--workspace"),
    (["export", "DATA", "--format", "csv", "--out", "OUT/x.csv", "--workspace", " "], "--workspace"),
    (["train", "DATA", *TRAIN, "--out", "OUT", "--workspace", ""], "--workspace"),
    (["edit", "history", "--workspace", ""], "--workspace"),
    (["jobs", "list", "--workspace", ""], "--workspace"),
])
def test_an_empty_path_is_one_line(tmp_path, workspace, capsys, monkeypatch, argv, option):
    """`export --out '' --overwrite` said "PosixPath('.') has an empty name"; `--workspace ''` meant the current folder."""
    monkeypatch.chdir(tmp_path)
    data = str(image_tree(tmp_path / "data"))
    code, _, err = run(capsys, *[data if arg == "DATA" else arg.replace("OUT", str(tmp_path / "out")) for arg in argv])
    assert code == 2 and err == f"error: {option} is empty\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "workspace"]
    assert list(workspace.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 7: a killed export's temporaries are removed by the next export of the same output


KILLED_WRITER = """
import sys, time
from pathlib import Path
from fer_core import files

def build(temporary):
    (temporary / "train").mkdir(parents=True)
    Path(sys.argv[2]).write_text("started")
    time.sleep(60)

files.replace_atomically(sys.argv[1], build)
"""


def test_the_next_export_removes_what_a_killed_one_left(tmp_path, workspace, capsys):
    """A SIGKILLed export left a hidden `.<name>.tmp-<pid>-<token>` folder that was never removed.
    Only that kind goes: a live writer's temporary, other outputs' and look-alike names stay, and so
    does a set-aside earlier output while the output was missing."""
    data, out = image_tree(tmp_path / "data"), tmp_path / "exports" / "curated"
    out.parent.mkdir()
    started = tmp_path / "started"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), str(started)],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    [left] = [path.name for path in out.parent.iterdir()]
    assert left.startswith(f".curated.tmp-{writer.pid}-")
    kept = [f".curated.tmp-{os.getppid()}-0123abcd", f".other.tmp-{writer.pid}-0123abcd",
            f".curated.tmp-{writer.pid}-not-hex", f".curated.old-{writer.pid}-0123abcd", "curated.tmp-1-0123abcd"]
    for name in kept:
        (out.parent / name).mkdir()

    assert run(capsys, "export", data, "--format", "folders", "--out", out)[0] == 0
    assert sorted(path.name for path in out.parent.iterdir()) == sorted(["curated", *kept])
    assert len(load(out, use_cache=False)) == 3


def test_an_earlier_output_set_aside_stays_until_the_output_is_back(tmp_path):
    """A `.old-` copy of a dead writer may be the only copy of an earlier output while the output is missing."""
    target = tmp_path / "curated"
    aside = tmp_path / ".curated.old-999999999-0123abcd"
    aside.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".curated.tmp-{int(dead.stdout)}-0123abcd"
    stale.mkdir()
    assert files.remove_stale_temporaries(target) == [stale] and aside.exists()
    target.mkdir()
    assert files.remove_stale_temporaries(target) == [aside]


# ---------------------------------------------------------------------------------------------
# 8: resolve-group takes one duplicate group and keeps test images unless asked


@pytest.fixture
def group_data(tmp_path, monkeypatch) -> Path:
    """A CSV where rows 0, 1 (Training) and 9 (PublicTest) are exact copies; every other row is distinct."""
    monkeypatch.delenv("FER_DATA", raising=False)
    base = make_dataset(12, usages=["Training"] * 8 + ["PublicTest"] * 2 + ["PrivateTest"] * 2)
    pixels = base.pixels.copy()
    pixels[[1, 9]] = pixels[0]
    dataset = Dataset(ids=base.ids, pixels=pixels, labels=base.labels, usages=base.usages)
    write_csv(dataset, tmp_path / "fer2013.csv")
    return tmp_path / "fer2013.csv"


def test_resolve_group_refuses_ids_outside_one_group(workspace, group_data, capsys):
    """The CLI accepted unrelated ids and resolved them as if they were copies."""
    base = ["edit", "resolve-group", "--resolution", "drop_all", "--reason", "copies", "--data", group_data]
    code, _, err = run(capsys, *base, "row:0", "row:1", "row:3")
    assert code == 2 and err == "error: 'row:3' is not in the duplicate group of 'row:0'; pass the ids of one group\n"
    code, _, err = run(capsys, *base, "row:4", "row:5")
    assert code == 2 and err == "error: 'row:4' is in no duplicate group\n"
    assert not (workspace / edits.DATABASE_NAME).exists()


def test_resolve_group_keeps_test_images_unless_allowed(workspace, group_data, capsys):
    """Like the app's confirmation box: dropping or relabelling a test image needs --allow-test."""
    base = ["edit", "resolve-group", "row:0", "row:1", "row:9", "--reason", "copies", "--data", group_data]
    code, out, _ = run(capsys, *base, "--resolution", "drop_all", "--dry-run")
    assert code == 0 and "dry run: 3 edit(s) planned" in out and "--allow-test" in out
    code, _, err = run(capsys, *base, "--resolution", "drop_all")
    assert code == 2 and err == ("error: this would drop or relabel 1 PublicTest/PrivateTest image(s) ('row:9'), which "
                                 "changes what models are scored on; pass allow_test (--allow-test) to change them too\n")
    assert not (workspace / edits.DATABASE_NAME).exists()
    code, out, _ = run(capsys, *base, "--resolution", "keep_one")  # keeps the test copy: allowed
    assert code == 0 and "drop row:0" in out and "drop row:1" in out and "row:9" not in out.split("written")[0]
    code, out, _ = run(capsys, *base, "--resolution", "drop_all", "--allow-test")
    assert code == 0 and "1 edit(s) written" in out and "drop row:9" in out
