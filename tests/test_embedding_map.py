"""The embedding map: a seeded UMAP projection, its cache (per data fingerprint, feature space and settings,
verified by digest) and the frame and figure the Map page plots."""

import numpy as np
import pandas as pd
import pytest
from synthetic import make_synthetic

from fer_core.curation.replay import CurationState
from fer_core.dataset.loading import Dataset
from fer_core.training.features import DESCRIPTORS, FeatureSpace
from fer_core.views import embedding_map
from fer_core.views.embedding_map import MapConfig


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_synthetic()[0]


def counting_projection(monkeypatch) -> list[int]:
    """Replace UMAP by a cheap projection that counts its calls (the cache tests need no real projection)."""
    calls = []

    def project(features, config=MapConfig()):
        calls.append(len(features))
        return np.asarray(features[:, :2], dtype=np.float32) + len(calls)
    monkeypatch.setattr(embedding_map, "project_features", project)
    return calls


def test_projection_is_seeded_two_dimensional_and_keeps_copies_together(dataset):
    features = np.random.default_rng(0).normal(size=(len(dataset), 20)).astype(np.float32)
    features[1] = features[0] + 0.01  # a near copy
    first = embedding_map.project_features(features)
    assert first.shape == (len(dataset), 2) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, embedding_map.project_features(features))
    distances = np.linalg.norm(first - first[0], axis=1)
    assert np.argsort(distances)[1] == 1 or distances[1] < np.median(distances) / 4


def test_a_handful_of_images_get_principal_components(dataset):
    assert embedding_map.project_features(np.zeros((0, 5))).shape == (0, 2)
    assert embedding_map.project_features(np.ones((1, 5))).tolist() == [[0.0, 0.0]]
    line = embedding_map.project_features(np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4)))
    assert np.ptp(line[:, 0]) > 0 and np.allclose(line[:, 1], 0, atol=1e-4)


def test_build_is_cached_per_fingerprint_and_space(dataset, workspace, monkeypatch):
    calls = counting_projection(monkeypatch)
    space = FeatureSpace(DESCRIPTORS, "descriptors")
    assert embedding_map.cached_map(dataset, DESCRIPTORS) is None
    built = embedding_map.build_map(dataset, space)
    assert calls == [len(dataset)]
    np.testing.assert_array_equal(embedding_map.build_map(dataset, space), built)  # read back, not rebuilt
    np.testing.assert_array_equal(embedding_map.cached_map(dataset, DESCRIPTORS), built)
    assert len(calls) == 1
    other_data = Dataset(dataset.ids, dataset.pixels, (dataset.labels + 1) % 7, dataset.usages, dataset.source)
    embedding_map.build_map(other_data, space)
    assert len(calls) == 2 and other_data.fingerprint != dataset.fingerprint
    embedding_map.build_map(dataset, space, MapConfig(neighbors=5))
    assert len(calls) == 3  # other settings: another file
    assert embedding_map.cached_map(dataset, "run:other") is None  # another space: another file


def test_run_space_is_its_own_cache_and_a_folder_without_model_is_one_line(dataset, workspace, tmp_path, monkeypatch):
    calls = counting_projection(monkeypatch)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(embedding_map, "feature_matrix", lambda space, data: np.ones((len(data), 3), np.float32))
    run_map = embedding_map.build_map(dataset, FeatureSpace("run:r1", "run r1", str(run_dir)))
    descriptor_map = embedding_map.build_map(dataset, FeatureSpace(DESCRIPTORS, "descriptors"))
    assert len(calls) == 2 and not np.array_equal(run_map, descriptor_map)
    embedding_map.build_map(dataset, FeatureSpace("run:r1", "run r1", str(run_dir)))
    assert len(calls) == 2
    monkeypatch.undo()
    with pytest.raises(ValueError, match="no model.keras"):
        embedding_map.build_map(dataset, FeatureSpace("run:r2", "run r2", str(tmp_path / "runs" / "r2")))


def test_a_damaged_or_foreign_cache_file_is_rebuilt(dataset, workspace, monkeypatch):
    calls = counting_projection(monkeypatch)
    space = FeatureSpace(DESCRIPTORS, "descriptors")
    path = embedding_map.map_cache_path(dataset, DESCRIPTORS)
    path.write_bytes(b"not a map")
    embedding_map.build_map(dataset, space)
    assert len(calls) == 1
    with np.load(path) as stored:
        tampered = {name: stored[name] for name in stored.files}
    tampered["coordinates"] = tampered["coordinates"] + 1  # the digest no longer matches
    np.savez(path, **tampered)
    assert embedding_map.cached_map(dataset, DESCRIPTORS) is None
    embedding_map.build_map(dataset, space)
    assert len(calls) == 2


def annotated_table(dataset: Dataset) -> pd.DataFrame:
    from fer_core.audit import run_audit
    from fer_core.views.audit_table import annotate

    report = run_audit(dataset)
    state = CurationState(labels={dataset.ids[0]: "happy"}, dropped=frozenset({dataset.ids[1]}), reviewed=frozenset())
    return annotate(report, state)


def test_frame_colours_by_emotion_usage_or_flag_and_leaves_out_dropped_images(dataset, workspace):
    table = annotated_table(dataset)
    coordinates = np.arange(len(table) * 2, dtype=np.float32).reshape(-1, 2)
    frame = embedding_map.map_frame(table, coordinates, "emotion")
    assert len(frame) == len(table) - 1 and dataset.ids[1] not in set(frame["id"])
    assert frame.loc[frame["id"] == dataset.ids[0], "group"].item() == "happy"  # the current label
    assert embedding_map.map_frame(table, coordinates, "emotion", show_dropped=True)["row"].tolist() == list(
        range(len(table)))
    usage = embedding_map.map_frame(table, coordinates, "usage")
    assert set(usage["group"]) == {"Training", "PublicTest", "PrivateTest"}
    leak = embedding_map.map_frame(table, coordinates, "leak")
    assert set(leak["group"]) == {"leak", "not leak"}
    assert (leak["group"] == "leak").sum() == table["flag:leak"][~table["dropped"]].sum() > 0
    leaking = leak[leak["group"] == "leak"]
    assert leaking["flags"].str.contains("leak").all()
    assert (frame["flags"] == "none").any()
    suspected = embedding_map.map_frame(table, coordinates, "suspected mislabel", suspected_ids=[dataset.ids[5]])
    assert suspected.loc[suspected["group"] == "suspected mislabel", "id"].tolist() == [dataset.ids[5]]
    with pytest.raises(ValueError, match="unknown map colouring 'shade'"):
        embedding_map.map_frame(table, coordinates, "shade")


def test_figure_is_webgl_with_ids_for_the_selection(dataset, workspace):
    table = annotated_table(dataset)
    frame = embedding_map.map_frame(table, np.zeros((len(table), 2), np.float32), "leak")
    figure = embedding_map.map_figure(frame, "leak")
    assert {trace.type for trace in figure.data} == {"scattergl"}
    assert [trace.name.split(" (")[0] for trace in figure.data] == ["not leak", "leak"]  # flagged on top
    ids = [sample_id for trace in figure.data for sample_id in trace.customdata]
    assert sorted(ids) == sorted(frame["id"])
    assert figure.layout.dragmode == "lasso"
    assert all(trace.selectedpoints is None for trace in figure.data)
    leaking = frame.loc[frame["group"] == "leak", "id"].tolist()
    highlighted = embedding_map.map_figure(frame, "leak", selected=[leaking[0]])
    assert highlighted.data[1].selectedpoints == (0,) and highlighted.data[0].selectedpoints == ()


def test_rows_of_ids_keeps_table_order_within_the_given_rows(dataset):
    table = pd.DataFrame({"id": dataset.ids})
    picked = [dataset.ids[5], dataset.ids[2], "not_there"]
    assert embedding_map.rows_of_ids(table, picked).tolist() == [2, 5]
    assert embedding_map.rows_of_ids(table, picked, np.array([5, 7])).tolist() == [5]


def test_selected_ids_come_from_the_points_customdata():
    points = [{"customdata": "a", "x": 1}, {"customdata": "b"}, {"customdata": "a"}, {"x": 2}, {"customdata": 3}]
    assert embedding_map.selected_ids(points) == ["a", "b"]


def test_build_estimate_grows_with_the_images_and_a_run_to_read():
    assert embedding_map.estimated_build_seconds(0) == embedding_map.FIXED_SECONDS
    full = embedding_map.estimated_build_seconds(35_887)
    assert 60 <= full <= 120 < embedding_map.estimated_build_seconds(35_887, run_features_cached=False)
