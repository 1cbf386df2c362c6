"""The one atomic-write helper: whole file or nothing, and a failed write leaves the old file and no temporary."""

import json

import numpy as np
import pandas as pd
import pytest

from fer_core import files


def test_writes_each_kind_whole(tmp_path):
    files.write_bytes_atomically(tmp_path / "a.bin", b"\x00\x01")
    files.write_text_atomically(tmp_path / "a.txt", "héllo")
    files.write_json_atomically(tmp_path / "a.json", {"x": [1, 2]})
    files.write_atomically(tmp_path / "a.npy", lambda handle: np.save(handle, np.arange(5)))
    files.write_atomically(tmp_path / "a.parquet", lambda handle: pd.DataFrame({"x": [1.5]}).to_parquet(handle))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    assert np.load(tmp_path / "a.npy", allow_pickle=False).tolist() == [0, 1, 2, 3, 4]
    assert pd.read_parquet(tmp_path / "a.parquet")["x"].tolist() == [1.5]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.bin", "a.json", "a.npy", "a.parquet", "a.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    files.write_json_atomically(target, {"old": True})

    def half_then_fail(handle):
        handle.write(b'{"new": ')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        files.write_atomically(target, half_then_fail)
    assert json.loads(target.read_text()) == {"old": True}
    assert [path.name for path in tmp_path.iterdir()] == ["summary.json"]


def test_replace_atomically_swaps_a_folder_and_restores_on_failure(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def build(temporary):
        temporary.mkdir()
        (temporary / "new.txt").write_text("new")

    files.replace_atomically(target, build)
    assert [path.name for path in target.iterdir()] == ["new.txt"]

    def fail(temporary):
        temporary.mkdir()
        raise ValueError("bad row")

    with pytest.raises(ValueError):
        files.replace_atomically(target, fail)
    assert [path.name for path in target.iterdir()] == ["new.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["out"]
