"""The edit log: append-only rows, undo, curated view, group resolutions, leaks, and reliability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fer_core.curation import edits
from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS

REPO = Path(__file__).resolve().parents[1]


def make_dataset(size: int = 12, seed: int = 0, usages: list[str] | None = None,
                 labels: list[int] | None = None) -> Dataset:
    """Random-noise faces with folder-style ids; every image distinct."""
    rng = np.random.default_rng(seed)
    usages = usages or ["Training"] * size
    labels = labels if labels is not None else [index % len(EMOTIONS) for index in range(size)]
    ids = [f"{'train' if usage == 'Training' else 'test'}/{EMOTIONS[label]}/{usage}_{index}.jpg"
           for index, (usage, label) in enumerate(zip(usages, labels))]
    return Dataset(ids=np.array(ids), pixels=rng.integers(0, 256, (size, 48, 48), dtype=np.uint8),
                   labels=np.array(labels, dtype=np.int8), usages=np.array(usages), source="synthetic")


def with_planted_leaks(seed: int = 1) -> tuple[Dataset, set[str]]:
    """Ten Training and six test images, plus an exact and a near Training copy of two test images."""
    base = make_dataset(16, seed=seed, usages=["Training"] * 10 + ["PublicTest"] * 3 + ["PrivateTest"] * 3)
    noise = np.random.default_rng(seed + 1).integers(-2, 3, (48, 48))
    exact = base.pixels[10]
    near = np.clip(base.pixels[13].astype(int) + noise, 0, 255).astype(np.uint8)
    pixels = np.concatenate([base.pixels, exact[None], near[None]])
    ids = np.concatenate([base.ids, ["train/angry/Training_leak_exact.jpg", "train/sad/Training_leak_near.jpg"]])
    dataset = Dataset(ids=ids, pixels=pixels, labels=np.concatenate([base.labels, [0, 4]]).astype(np.int8),
                      usages=np.concatenate([base.usages, ["Training", "Training"]]), source="synthetic")
    return dataset, {"train/angry/Training_leak_exact.jpg", "train/sad/Training_leak_near.jpg"}


def db_file(workspace: Path) -> Path:
    return workspace / edits.DATABASE_NAME


# ---------------------------------------------------------------------------------------------
# Log, undo, curated view


def test_edits_are_rows_and_the_curated_view_follows_them(workspace):
    dataset = make_dataset()
    first, second = dataset.ids[0], dataset.ids[1]
    [relabeled] = edits.relabel(dataset, first, "happy", "smiling face", author="ana")
    dropped = edits.drop(dataset, [second, dataset.ids[2]], "blurry", author="ana")

    assert relabeled.edit_id == 1 and relabeled.old_label == "angry" and relabeled.new_label == "happy"
    assert relabeled.author == "ana" and relabeled.fingerprint == dataset.fingerprint
    assert relabeled.created_at.endswith("+00:00")
    assert {edit.batch_id for edit in dropped} == {dropped[0].batch_id} != relabeled.batch_id

    curated = edits.curated_dataset(dataset)
    assert len(curated) == len(dataset) - 2
    assert second not in curated.ids.tolist()
    assert curated.labels[curated.index_of(first)] == EMOTIONS.index("happy")
    assert dataset.labels[0] == 0  # the raw dataset is untouched


def test_undo_is_a_new_row_and_undo_of_undo_reapplies(workspace):
    dataset = make_dataset()
    [drop] = edits.drop(dataset, [dataset.ids[3]], "duplicate")
    undo = edits.undo(drop.edit_id, "wrong call")
    assert undo.action == "undo" and undo.undoes == drop.edit_id and undo.sample_id == drop.sample_id
    assert len(edits.curated_dataset(dataset)) == len(dataset)

    table = edits.history()
    assert table["edit_id"].tolist() == [1, 2]
    assert table["active"].tolist() == [False, True]

    edits.undo(undo.edit_id)
    assert len(edits.curated_dataset(dataset)) == len(dataset) - 1
    with pytest.raises(ValueError, match="already undone"):
        edits.undo(undo.edit_id)


def test_undone_relabel_and_restore(workspace):
    dataset = make_dataset()
    sample = dataset.ids[0]
    [first] = edits.relabel(dataset, sample, "fear", "looks scared")
    edits.relabel(dataset, sample, 3, "actually smiling")
    edits.undo(first.edit_id)
    assert edits.curated_dataset(dataset).labels[0] == 3  # the later relabel still stands
    edits.drop(dataset, [sample], "bad")
    edits.restore(dataset, [sample])
    curated = edits.curated_dataset(dataset)
    assert len(curated) == len(dataset) and curated.labels[0] == 3


def test_edits_in_effect_leave_out_undone_edits_undo_rows_and_review_marks(workspace):
    from fer_core.curation.replay import count_edits_in_effect, find_undoable_batches

    dataset = make_dataset()
    [relabel] = edits.relabel(dataset, dataset.ids[0], "happy", "smiling")
    [drop] = edits.drop(dataset, [dataset.ids[1]], "blurry")
    edits.mark_group_reviewed(dataset, dataset.ids[2:4], "fine")
    undo = edits.undo(drop.edit_id, "wrong call")
    log = edits.read_edits()
    assert len(log) == 5 and count_edits_in_effect(log) == 1
    review_batch = log[2].batch_id
    assert find_undoable_batches(log) == [review_batch, relabel.batch_id]  # newest first; the undone drop is gone
    edits.undo(undo.edit_id, "redo the drop")
    assert count_edits_in_effect(edits.read_edits()) == 2


def test_a_reason_over_1000_characters_is_refused_and_nothing_is_written(workspace):
    dataset = make_dataset()
    edits.relabel(dataset, dataset.ids[0], "happy", "x" * edits.MAX_REASON_CHARACTERS)
    for call in (lambda reason: edits.drop(dataset, [dataset.ids[1]], reason),
                 lambda reason: edits.restore(dataset, [dataset.ids[0]], reason),
                 lambda reason: edits.undo(1, reason),
                 lambda reason: edits.resolve_group(dataset, dataset.ids[:2], "drop_all", reason)):
        with pytest.raises(ValueError, match="reason is 10,000,000 characters long; at most 1,000"):
            call("y" * 10_000_000)
    assert len(edits.read_edits()) == 1


def test_apply_edits_is_pure_and_returns_the_same_dataset_without_edits():
    dataset = make_dataset()
    assert edits.apply_edits(dataset, []) is dataset
    edit = edits.Edit(1, "b", dataset.ids[0], "drop", "angry", None, "r", "me", "t", dataset.fingerprint)
    curated = edits.apply_edits(dataset, [edit])
    assert len(curated) == len(dataset) - 1 and len(dataset) == 12
    foreign = edits.Edit(2, "b", "train/angry/elsewhere.jpg", "drop", "angry", None, "r", "me", "t", "x")
    with pytest.raises(ValueError, match="elsewhere.jpg"):
        edits.apply_edits(dataset, [foreign])


def test_no_database_means_the_raw_dataset_and_nothing_created(workspace):
    dataset = make_dataset()
    assert edits.curated_dataset(dataset) is dataset
    assert edits.history().empty
    assert not db_file(workspace).exists()


@pytest.mark.parametrize("call, message", [
    (lambda d: edits.relabel(d, "train/angry/nope.jpg", "happy", "r"), "nope.jpg"),
    (lambda d: edits.relabel(d, d.ids[0], "joyful", "r"), "joyful.*angry, disgust, fear"),
    (lambda d: edits.relabel(d, d.ids[0], 7, "r"), "0..6"),
    (lambda d: edits.relabel(d, d.ids[0], "angry", "r"), "already labelled angry"),
    (lambda d: edits.relabel(d, d.ids[0], "happy", "  "), "reason"),
    (lambda d: edits.drop(d, [d.ids[0], "row:99"], "r"), "row:99"),
    (lambda d: edits.restore(d, [d.ids[0]]), "not dropped"),
    (lambda d: edits.undo(42), "unknown edit id 42"),
    (lambda d: edits.resolve_group(d, d.ids[:2], "merge", "r"), "keep_one, relabel"),
])
def test_invalid_requests_raise_and_write_nothing(workspace, call, message):
    dataset = make_dataset()
    with pytest.raises(ValueError, match=message):
        call(dataset)
    assert not db_file(workspace).exists()


def test_dropping_a_dropped_sample_is_refused_and_the_log_unchanged(workspace):
    dataset = make_dataset()
    edits.drop(dataset, [dataset.ids[0]], "bad")
    with pytest.raises(ValueError, match="already dropped"):
        edits.drop(dataset, [dataset.ids[1], dataset.ids[0]], "bad")
    with pytest.raises(ValueError, match="already dropped"):
        edits.relabel(dataset, dataset.ids[0], "sad", "r")
    assert len(edits.read_edits()) == 1


def test_a_workspace_is_bound_to_its_dataset(workspace):
    dataset, other = make_dataset(seed=0), make_dataset(seed=5)
    edits.relabel(dataset, dataset.ids[0], "sad", "r")
    assert edits.read_workspace_meta()["dataset_fingerprint"] == dataset.fingerprint
    before = db_file(workspace).read_bytes()
    with pytest.raises(ValueError, match="made for another dataset"):
        edits.drop(other, [other.ids[1]], "r")
    with pytest.raises(ValueError, match="made for another dataset"):
        edits.curated_dataset(other)
    assert len(edits.read_edits()) == 1
    assert db_file(workspace).read_bytes() == before


# ---------------------------------------------------------------------------------------------
# Group resolutions


def cross_split_group() -> tuple[Dataset, list[str]]:
    dataset = make_dataset(6, usages=["Training", "Training", "PrivateTest", "Training", "PublicTest", "Training"],
                           labels=[3, 3, 4, 0, 1, 2])
    return dataset, dataset.ids[:4].tolist()


def test_keep_one_prefers_the_test_copy_in_a_cross_split_group(workspace):
    dataset, group = cross_split_group()
    planned = edits.resolve_group(dataset, group, "keep_one", "same face", dry_run=True)
    assert [edit.edit_id for edit in planned] == [None] * 3
    assert not db_file(workspace).exists()
    written = edits.resolve_group(dataset, group, "keep_one", "same face")
    assert [edit.sample_id for edit in written] == [group[0], group[1], group[3]]
    assert [edit.sample_id for edit in planned] == [edit.sample_id for edit in written]
    assert len({edit.batch_id for edit in written}) == 1 and {edit.reason for edit in written} == {"same face"}
    assert edits.curated_dataset(dataset).ids.tolist() == dataset.ids[2:3].tolist() + dataset.ids[4:].tolist()


def test_keep_one_within_one_split_keeps_the_first_or_the_chosen(workspace):
    dataset = make_dataset(6)
    assert [e.sample_id for e in edits.resolve_group(dataset, dataset.ids[:3], "keep_one", "r", dry_run=True)] \
        == dataset.ids[1:3].tolist()
    kept = dataset.ids[1]
    written = edits.resolve_group(dataset, dataset.ids[:3], "keep_one", "r", keep_id=kept)
    assert kept not in [edit.sample_id for edit in written] and len(written) == 2


def test_relabel_group_to_emotion_or_majority(workspace):
    dataset, group = cross_split_group()
    majority = edits.resolve_group(dataset, group, "relabel_majority", "agree", dry_run=True)
    assert {edit.new_label for edit in majority} == {"happy"} and len(majority) == 2  # two are happy already
    edits.resolve_group(dataset, group, "relabel", "agree", emotion="neutral")
    curated = edits.curated_dataset(dataset)
    assert curated.labels[:4].tolist() == [6, 6, 6, 6] and curated.labels[4:].tolist() == [1, 2]
    with pytest.raises(ValueError, match="tie between"):
        edits.resolve_group(dataset, dataset.ids[4:], "relabel_majority", "r")
    with pytest.raises(ValueError, match="emotion is needed"):
        edits.resolve_group(dataset, group, "relabel", "r")


def test_group_resolution_skips_dropped_members_and_undo_batch_reverses_it(workspace):
    dataset, group = cross_split_group()
    edits.drop(dataset, [group[2]], "blank")
    written = edits.resolve_group(dataset, group, "drop_all", "all bad")
    assert [edit.sample_id for edit in written] == [group[0], group[1], group[3]]
    assert edits.resolve_group(dataset, group, "keep_one", "again") == []  # nothing live left
    edits.undo_batch(written[0].batch_id, "too harsh")
    assert len(edits.curated_dataset(dataset)) == len(dataset) - 1


def test_mark_group_reviewed(workspace):
    dataset, group = cross_split_group()
    marks = edits.mark_group_reviewed(dataset, group, "different people")
    assert {edit.action for edit in marks} == {"review_ok"} and len({edit.batch_id for edit in marks}) == 1
    assert edits.read_state().reviewed == frozenset(group)
    assert edits.curated_dataset(dataset) is dataset


def test_resolve_leaks_drops_exactly_the_training_copies(workspace):
    dataset, planted = with_planted_leaks()
    planned = edits.resolve_leaks(dataset, dry_run=True)
    assert {edit.sample_id for edit in planned} == planted and not db_file(workspace).exists()
    written = edits.resolve_leaks(dataset)
    assert {edit.sample_id for edit in written} == planted and len({edit.batch_id for edit in written}) == 1
    assert edits.resolve_leaks(dataset) == []  # the curated view has no leak left

    edits.undo(written[0].edit_id)
    again = edits.resolve_leaks(dataset)
    assert [edit.sample_id for edit in again] == [written[0].sample_id]


def test_resolve_leaks_on_the_curated_view_ignores_dropped_test_images(workspace):
    dataset, planted = with_planted_leaks()
    edits.drop(dataset, [dataset.ids[10]], "test image is a bad face")  # the exact copy's original
    assert {edit.sample_id for edit in edits.resolve_leaks(dataset, dry_run=True)} \
        == planted - {"train/angry/Training_leak_exact.jpg"}
    assert {edit.sample_id for edit in edits.resolve_leaks(dataset, curated=False, dry_run=True)} == planted


# ---------------------------------------------------------------------------------------------
# Reliability: concurrent writers, a killed writer, files that are not ours

CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from test_edits import make_dataset
    from fer_core.curation import edits
    dataset = make_dataset({size})
    start = {start!r}
    while not os.path.exists(start):
        time.sleep(0.01)
    {body}
""")


def spawn(body: str, size: int, start: Path, env_extra: dict | None = None) -> subprocess.Popen:
    code = CHILD.format(repo=str(Path(__file__).parent), size=size, start=str(start), body=body)
    sys_path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": sys_path, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)


def test_two_processes_writing_500_edits_each_lose_nothing(workspace, tmp_path):
    start = tmp_path / "start"
    relabels = "for i in range(500):\n        edits.relabel(dataset, dataset.ids[i], 'happy' if i % 7 != 3 else 'sad', 'a')"
    drops = "for i in range(500, 1000):\n        edits.drop(dataset, [dataset.ids[i]], 'b')"
    children = [spawn(relabels, 1000, start), spawn(drops, 1000, start)]
    # An open reader, as a running app would hold, spares each writer's close a WAL checkpoint.
    reader = edits.connect_database()
    start.touch()
    try:
        for child in children:
            _, errors = child.communicate(timeout=120)
            assert child.returncode == 0, errors
    finally:
        reader.close()
    rows = edits.read_edits()
    assert len(rows) == 1000 and [row.edit_id for row in rows] == list(range(1, 1001))
    assert sorted(row.action for row in rows) == ["drop"] * 500 + ["relabel"] * 500
    assert len(edits.curated_dataset(make_dataset(1000))) == 500


def test_a_writer_killed_mid_batch_leaves_none_of_it(workspace, tmp_path):
    start, paused = tmp_path / "start", tmp_path / "paused"
    start.touch()
    dataset = make_dataset(4000)
    edits.relabel(dataset, dataset.ids[0], "sad", "before the crash")
    # The child writes half of its batch inside the transaction, announces it, and stalls there.
    body = textwrap.dedent(f"""
        from fer_core.curation import edit_log
        original = edit_log.insert_edits
        def insert_half_then_stall(connection, planned):
            original(connection, planned[:len(planned) // 2])
            open({str(paused)!r}, "w").close()
            time.sleep(120)
        edit_log.insert_edits = insert_half_then_stall
        edits.drop(dataset, dataset.ids[1:].tolist(), 'bulk')""")
    child = spawn(body, 4000, start)
    deadline = time.monotonic() + 60
    while not paused.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert paused.exists(), child.stderr.read() if child.poll() is not None else "child never paused"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()

    assert [edit.action for edit in edits.read_edits()] == ["relabel"]
    with sqlite3.connect(db_file(workspace)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(edits.drop(dataset, dataset.ids[1:].tolist(), "bulk")) == 3999
    assert len(edits.curated_dataset(dataset)) == 1


@pytest.mark.parametrize("content", [
    b"not a database at all, just text\n" * 10,
    b"SQLite format 3\x00" + bytes(range(256)) * 20,
])
def test_a_damaged_database_is_refused_and_left_as_it_is(workspace, content):
    db_file(workspace).write_bytes(content)
    dataset = make_dataset()
    for call in (lambda: edits.relabel(dataset, dataset.ids[0], "sad", "r"), edits.read_edits,
                 lambda: edits.curated_dataset(dataset), edits.history, lambda: edits.undo(1)):
        with pytest.raises(ValueError, match="fer_audit.db.*(not a|will not)"):
            call()
    assert db_file(workspace).read_bytes() == content


def test_another_applications_database_is_refused_and_left_as_it_is(workspace):
    with sqlite3.connect(db_file(workspace)) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers (name) VALUES ('Ada')")
    connection.close()
    before = db_file(workspace).read_bytes()
    dataset = make_dataset()
    with pytest.raises(ValueError, match="another application's SQLite database \\(tables: customers\\)"):
        edits.drop(dataset, [dataset.ids[0]], "r")
    with pytest.raises(ValueError, match="another application"):
        edits.read_edits()
    assert db_file(workspace).read_bytes() == before


def test_tables_of_other_fer_audit_modules_are_welcome(workspace):
    from fer_core import store

    other = store.Schema("other", ("runs",), "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY)")
    with store.writing(workspace, other):
        pass
    dataset = make_dataset()
    assert edits.read_edits() == []
    edits.drop(dataset, [dataset.ids[0]], "r")
    with sqlite3.connect(db_file(workspace)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA application_id").fetchone()[0] == edits.APPLICATION_ID
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    connection.close()


def test_resolve_leaks_with_given_hashes_matches_hashing_again(workspace):
    from fer_core.duplicates.hashing import phash_batch

    dataset, planted = with_planted_leaks()
    edits.drop(dataset, [dataset.ids[0]], "unrelated")
    given = edits.resolve_leaks(dataset, hashes=phash_batch(dataset.pixels), dry_run=True)
    assert [edit.sample_id for edit in given] == [edit.sample_id for edit in edits.resolve_leaks(dataset, dry_run=True)]
    assert {edit.sample_id for edit in given} == planted


def test_database_check_keeps_this_process_locks(workspace):
    """The foreign-file check must not open()/close() the database file itself: that drops every
    POSIX lock this process holds on it, so another process closing its last connection thinks it
    is alone, checkpoints and deletes the WAL under our open connection (a corrupted read)."""
    import sqlite3
    import subprocess
    import sys

    from fer_core.curation import edits

    edits.connect_database(workspace).close()
    database = edits.database_path(workspace)
    reader = sqlite3.connect(database)
    reader.execute("SELECT COUNT(*) FROM edits").fetchone()  # an open connection of this process
    edits.read_workspace_meta(workspace)  # runs the check while `reader` is open
    writer = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "c.execute(\"INSERT OR REPLACE INTO workspace_meta VALUES ('probe', 'x')\"); c.commit(); c.close()")
    subprocess.run([sys.executable, "-c", writer, str(database)], check=True)
    # the other process saw our connection: it left the WAL in place instead of deleting it
    assert database.with_name(database.name + "-wal").exists()
    assert reader.execute("SELECT value FROM workspace_meta WHERE key = 'probe'").fetchone() == ("x",)
    reader.close()
