"""fer_core.views.similar (nearest neighbours) and fer_core.training.features (descriptor and run features)."""

import numpy as np
import pytest
from synthetic import make_synthetic_near

from fer_core.training import features
from fer_core.views.similar import NeighbourIndex, nearest_neighbours, neighbour_captions


def brute_force(matrix, row, count, allowed):
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    scores = unit @ unit[row]
    order = [index for index in np.argsort(-scores, kind="stable") if index != row and allowed[index]]
    return order[:count]


def test_top_k_matches_a_full_sort_and_leaves_out_the_image_and_the_excluded():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(500, 56)).astype(np.float32)
    allowed = rng.random(500) > 0.2
    found = nearest_neighbours(matrix, 7, 10, candidates=allowed)
    assert found["row"].tolist() == brute_force(matrix, 7, 10, allowed)
    assert 7 not in found["row"].tolist() and allowed[found["row"]].all()
    assert np.all(np.diff(found["similarity"]) <= 0)
    assert len(nearest_neighbours(matrix, 0, 10_000)) == 499  # never more than there are


def test_float16_features_zero_rows_and_bad_rows():
    matrix = np.array([[1, 0], [0.9, 0.1], [0, 0], [-1, 0]], np.float16)
    found = nearest_neighbours(matrix, 0, 3)
    assert found["row"].tolist() == [1, 2, 3] and found["similarity"].dtype == np.float32
    assert found["similarity"].iloc[1] == 0.0  # a zero row is similar to nothing
    with pytest.raises(ValueError, match="row 4 out of range; the feature matrix has 4 rows"):
        nearest_neighbours(matrix, 4)
    assert nearest_neighbours(matrix, 0, 3, candidates=np.zeros(4, bool)).empty
    with pytest.raises(ValueError, match="mirrored features have 3 rows; expected 4"):
        NeighbourIndex.build(matrix, matrix[:3])
    index = NeighbourIndex.build(matrix)  # normalised once, asked many times
    assert index.unit.dtype == np.float32 and index.nearest(0, 3).equals(found) and len(index) == 4
    positive = np.array([[10, 1], [10, 2], [11, 1], [10, 1.1]], np.float32)  # ReLU-like: every raw cosine ≈ 1
    assert nearest_neighbours(positive, 0, 3)["similarity"].min() > 0.99
    centred = NeighbourIndex.build(positive, centre=True).nearest(0, 3)
    assert centred["row"].tolist() == [3, 2, 1] and centred["similarity"].min() < 0  # spread: a real ranking


def test_the_mirror_finds_a_mirrored_copy_first_in_descriptor_space():
    dataset, _, near = make_synthetic_near()
    original, copy = near.copies["mirrored"]
    plain = features.descriptor_features(dataset)
    mirrored = features.descriptor_features(dataset, mirrored=True)
    assert plain.shape == (len(dataset), 56) and plain.dtype == np.float32
    found = nearest_neighbours(plain, dataset.index_of(original), 5, mirrored_features=mirrored)
    assert dataset.ids[found["row"].iloc[0]] == copy and found["mirrored"].iloc[0]
    assert neighbour_captions(found).iloc[0].endswith("· mirrored")
    shifted_original, shifted_copy = near.copies["shifted"]
    found = nearest_neighbours(plain, dataset.index_of(shifted_original), 3)
    assert dataset.ids[found["row"].iloc[0]] == shifted_copy


def test_run_features_are_the_penultimate_layer_cached_per_fingerprint(tmp_path):
    from fer_core.training.models import build_model

    dataset, _, _ = make_synthetic_near()
    with pytest.raises(ValueError, match="no model.keras"):
        features.run_features(tmp_path, dataset)
    model = build_model("cnn", "tiny", seed=0)
    model.save(tmp_path / "model.keras")
    spaces = features.available_feature_spaces({"run-1": tmp_path, "run-2": tmp_path / "gone"}, dataset)
    assert [space.name for space in spaces] == ["descriptors", "run:run-1"]
    assert spaces[1].label.endswith("(computed on first use)")
    first = features.run_features(tmp_path, dataset)
    assert first.shape == (len(dataset), model.get_layer("emotion").input.shape[-1]) and first.dtype == np.float16
    cache = features.features_path(tmp_path, dataset)
    assert cache.name == f"features-{dataset.fingerprint}.npz" and cache.is_file()
    assert features.feature_matrix(spaces[1], dataset).tolist() == first.tolist()  # read back from the cache
    assert not features.available_feature_spaces({"run-1": tmp_path}, dataset)[1].label.endswith("use)")
    cache.write_bytes(cache.read_bytes()[:100])  # damaged: recomputed, never trusted
    assert features.read_cached_features(cache, dataset) is None
    assert features.run_features(tmp_path, dataset).tolist() == first.tolist()
    other = dataset.select(np.arange(10))
    assert features.read_cached_features(cache, other) is None  # another data's fingerprint
