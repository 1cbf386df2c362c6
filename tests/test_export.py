"""Export: exact round trips through `dataset.load`, the manifest, atomic writes, and the real data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from test_edits import make_dataset

from fer_core.curation import edits, export
from fer_core.dataset.loading import Dataset, load
from fer_core.labels import TEST_USAGES
from fer_core.workspace import resolve_workspace

MIXED_USAGES = ["Training"] * 6 + ["PublicTest"] * 3 + ["PrivateTest"] * 3


def curated_example() -> Dataset:
    """A mixed-split dataset with a relabel, a drop, and an undone drop in the workspace's log."""
    dataset = make_dataset(12, usages=MIXED_USAGES)
    edits.relabel(dataset, dataset.ids[0], "surprise", "open mouth")
    edits.drop(dataset, [dataset.ids[1]], "not a face")
    [mistake] = edits.drop(dataset, [dataset.ids[7]], "misclick")
    edits.undo(mistake.edit_id)
    return dataset


def content(dataset: Dataset) -> list[tuple[str, int, bytes]]:
    """Order-free content: export folders are re-read in folder order, not curated order."""
    return sorted(zip(dataset.usages.tolist(), dataset.labels.tolist(), (p.tobytes() for p in dataset.pixels)))


def test_csv_round_trip_is_exact_and_in_order(workspace, tmp_path):
    dataset = curated_example()
    result = export.export_curated(dataset, tmp_path / "out" / "curated.csv", "csv")
    curated = edits.curated_dataset(dataset)
    back = load(result.path, use_cache=False)
    assert result.samples == len(curated) == 11
    assert back.ids.tolist() == [f"row:{row}" for row in range(11)]
    assert np.array_equal(back.pixels, curated.pixels) and np.array_equal(back.labels, curated.labels)
    assert back.usages.tolist() == curated.usages.tolist()
    assert result.manifest_path == tmp_path / "out" / "curated.manifest.json"
    header = result.path.read_text().splitlines()[:2]
    assert header[0] == "emotion,pixels,Usage,id" and header[1].startswith("5,")
    assert header[1].endswith(f",Training,{curated.ids[0]}")


def test_pixel_rows_are_plain_space_separated_ints():
    pixels = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    pixels[0, 0, :3] = [0, 9, 255]
    rows = export.format_pixel_rows(pixels)
    assert rows == [" ".join(str(value) for value in image.ravel()).encode() for image in pixels]


def test_folder_round_trip_keeps_file_stems(workspace, tmp_path):
    dataset = curated_example()
    result = export.export_curated(dataset, tmp_path / "folders", "folders")
    curated = edits.curated_dataset(dataset)
    back = load(result.path, use_cache=False)
    assert content(back) == content(curated)
    assert "train/surprise/Training_0.png" in back.ids.tolist()  # relabeled: moved, same stem
    assert "test/fear/PrivateTest_9.png" in back.ids.tolist()
    assert (result.path / "manifest.json").is_file()


def test_csv_ids_become_usage_prefixed_names_and_clashes_get_a_suffix():
    dataset = Dataset(ids=np.array(["row:0", "row:1", "train/happy/a.jpg", "train/sad/a.jpg"]),
                      pixels=np.zeros((4, 48, 48), dtype=np.uint8), labels=np.array([3, 3, 3, 3], dtype=np.int8),
                      usages=np.array(["PublicTest", "Training", "Training", "Training"]))
    assert export.export_file_names(dataset) == ["test/happy/PublicTest_0.png", "train/happy/Training_1.png",
                                                 "train/happy/Training_a.png", "train/happy/Training_a-2.png"]


def test_manifest_lists_applied_edits_and_counts(workspace, tmp_path):
    dataset = curated_example()
    result = export.export_curated(dataset, tmp_path / "curated.csv", "csv")
    manifest = json.loads(result.manifest_path.read_text())
    assert [(e["edit_id"], e["action"], e["old_label"], e["new_label"]) for e in manifest["applied_edits"]] \
        == [(1, "relabel", "angry", "surprise"), (2, "drop", "disgust", None)]
    assert manifest["applied_edits"][0]["reason"] == "open mouth" and manifest["edits_in_log"] == 4
    before, after = manifest["counts"]["before"], manifest["counts"]["after"]
    assert before["total"] == 12 and after["total"] == 11
    assert after["by_usage"] == {"Training": 5, "PublicTest": 3, "PrivateTest": 3}
    assert after["by_label"]["surprise"] == before["by_label"]["surprise"] + 1
    assert after["by_usage_label"]["Training"]["disgust"] == 0
    assert manifest["source_fingerprint"] == dataset.fingerprint


def test_existing_output_is_kept_unless_overwrite(workspace, tmp_path):
    dataset = curated_example()
    out = tmp_path / "exports" / "folders"
    out.mkdir(parents=True)
    export.export_curated(dataset, out, "folders")  # an empty folder is fine
    with pytest.raises(ValueError, match="exists and is not empty.*overwrite"):
        export.export_curated(dataset, out, "folders")
    edits.drop(dataset, [dataset.ids[2]], "late change")
    export.export_curated(dataset, out, "folders", overwrite=True)
    assert len(load(out, use_cache=False)) == 10
    assert [path.name for path in out.parent.iterdir()] == ["folders"]  # no temporaries left


@pytest.mark.parametrize("export_format, name", [("csv", "curated.csv"), ("folders", "folders")])
def test_a_failed_export_leaves_the_old_output_and_no_half_file(workspace, tmp_path, monkeypatch, export_format, name):
    dataset = curated_example()
    out = tmp_path / "exports" / name
    export.export_curated(dataset, out, export_format)
    before = {path: path.read_bytes() for path in sorted(out.parent.rglob("*")) if path.is_file()}

    def fail_half_way(*_):
        raise OSError("disk full")

    monkeypatch.setattr(export, "format_pixel_rows", fail_half_way)
    monkeypatch.setattr(export, "export_file_names", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        export.export_curated(dataset, out, export_format, overwrite=True)
    after = {path: path.read_bytes() for path in sorted(out.parent.rglob("*")) if path.is_file()}
    assert after == before


def test_export_refuses_to_write_into_the_source(tmp_path, workspace):
    source = tmp_path / "data"
    (source / "train").mkdir(parents=True)
    dataset = make_dataset(3)
    dataset = Dataset(ids=dataset.ids, pixels=dataset.pixels, labels=dataset.labels, usages=dataset.usages,
                      source=str(source))
    for out in (source, source / "train" / "copy", tmp_path):
        with pytest.raises(ValueError, match="source data"):
            export.export_curated(dataset, out, "folders", overwrite=True)
    with pytest.raises(ValueError, match="ending in .csv"):
        export.export_curated(dataset, tmp_path / "out.txt", "csv")
    with pytest.raises(ValueError, match="csv, folders"):
        export.export_curated(dataset, tmp_path / "out", "parquet")


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.fixture(scope="session")
def real_dataset(real_data) -> Dataset:
    """The real FER-2013, decoded once into the developer's workspace cache (derived data only)."""
    return load(real_data, workspace=resolve_workspace(os.environ.get("FER_AUDIT_HOME")))


def test_real_data_leaks_are_resolved_and_the_export_is_leak_free(real_dataset, workspace, tmp_path):
    from fer_core.duplicates.grouping import find_leaks
    from fer_core.duplicates.hashing import phash_batch
    from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD

    dataset, hashes = real_dataset, phash_batch(real_dataset.pixels)
    leaks = find_leaks(dataset, DEFAULT_NEAR_THRESHOLD, hashes=hashes)
    expected = set(dataset.ids[np.unique(leaks.train_rows)].tolist())
    assert expected and all(sample_id.startswith("train/") for sample_id in expected)

    dropped = edits.resolve_leaks(dataset, hashes=hashes)
    assert {edit.sample_id for edit in dropped} == expected and len(dropped) == len(expected)
    assert len({edit.batch_id for edit in dropped}) == 1

    curated = edits.curated_dataset(dataset)
    assert len(curated) == len(dataset) - len(expected)
    result = export.export_curated(dataset, tmp_path / "curated", "folders")
    back = load(result.path, use_cache=False)
    assert content(back) == content(curated)
    assert len(find_leaks(back, DEFAULT_NEAR_THRESHOLD).train_rows) == 0
    test_before, test_after = dataset.select(dataset.is_test()), back.select(back.is_test())
    assert content(test_after) == content(test_before)
    assert sum(back.count_by_usage()[usage] for usage in TEST_USAGES) == 7178

    manifest = json.loads(result.manifest_path.read_text())
    assert len(manifest["applied_edits"]) == len(expected)
    assert manifest["counts"]["after"]["by_usage"]["Training"] == 28709 - len(expected)


def test_real_data_csv_round_trip_is_exact(real_dataset, workspace, tmp_path):
    """A slice with a relabel and a drop: the whole CSV (300 MB) would take a minute to write and parse."""
    rows = np.concatenate([np.arange(0, 1500), np.arange(len(real_dataset) - 1500, len(real_dataset))])
    dataset = real_dataset.select(rows)
    edits.relabel(dataset, dataset.ids[0], "neutral", "calm")
    edits.drop(dataset, dataset.ids[-3:], "bad crop")
    result = export.export_curated(dataset, tmp_path / "slice.csv", "csv")
    curated, back = edits.curated_dataset(dataset), load(result.path, use_cache=False)
    assert np.array_equal(back.pixels, curated.pixels) and np.array_equal(back.labels, curated.labels)
    assert back.usages.tolist() == curated.usages.tolist() and len(back) == 2997


# ---------------------------------------------------------------------------------------------
# The export command on bad paths: one error line (exit 2) before the data is loaded


@pytest.mark.parametrize("export_format, out, extra, message", [
    ("folders", "FILE", [], "--out FILE is a file, not a folder"),
    ("csv", "FILE/x.csv", [], "--out FILE/x.csv lies under FILE, which is a file, not a folder"),
    ("csv", "DIR/x.csv", [], "--out DIR/x.csv is a folder, not a file"),
    ("csv", "OUT/x.csv", ["--workspace", "FILE"], "--workspace FILE is a file, not a folder"),
])
def test_cli_export_bad_paths_fail_in_one_line_before_loading(tmp_path, workspace, capsys, export_format, out,
                                                              extra, message):
    from test_dataset import image_tree

    from fer_core.cli import main

    root = image_tree(tmp_path / "data")
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    (tmp_path / "a-dir" / "x.csv").mkdir(parents=True)
    names = {"FILE": str(blocker), "DIR": str(tmp_path / "a-dir"), "OUT": str(tmp_path / "out")}

    def fill(text: str) -> str:
        for name, value in names.items():
            text = text.replace(name, value)
        return text

    code = main(["export", str(root), "--format", export_format, "--out", fill(out), *map(fill, extra)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [f"error: {fill(message)}"]
    assert blocker.read_text() == "keep me"
    assert not (workspace / "cache").exists(), "the data was loaded before the paths were checked"


def test_the_csv_names_each_rows_sample_in_a_last_id_column_and_reports_progress(workspace, tmp_path):
    """Issue 24: the curated CSV had no id column (nothing tied a row to its source image) and the export said
    nothing while it ran. A last column `id` holds the sample id (quoted when it needs to be), so readers that
    take FER-2013's columns by name still work; progress is reported as (stage, images written, images)."""
    import csv

    import pandas as pd

    dataset = curated_example()
    curated = edits.curated_dataset(dataset)
    strange = Dataset(ids=np.array(['train/sad/a,b.png', 'train/sad/say "hi".png', *curated.ids[2:]]),
                      pixels=curated.pixels, labels=curated.labels, usages=curated.usages, source="x")
    calls = []
    export.write_csv(strange, tmp_path / "strange.csv", progress=lambda *call: calls.append(call))
    with open(tmp_path / "strange.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == strange.ids.tolist()
    assert calls[-1] == (export.EXPORT_STAGE, len(strange), len(strange))
    table = pd.read_csv(tmp_path / "strange.csv")
    assert list(table.columns) == ["emotion", "pixels", "Usage", "id"]
    assert table["Usage"].tolist() == strange.usages.tolist()
    back = load(tmp_path / "strange.csv", use_cache=False)  # FER Audit reads its own export back
    assert np.array_equal(back.pixels, strange.pixels) and not back.problems
