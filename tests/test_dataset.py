import numpy as np
import pytest
from PIL import Image

from fer_core.dataset import Dataset, load, usage_from_name
from synthetic import make_synthetic, write_csv, write_folders


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=1)[0]


def assert_same_content(a: Dataset, b: Dataset) -> None:
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.usages, b.usages)


def test_csv_round_trip_with_row_ids(synthetic, tmp_path, workspace):
    loaded = load(write_csv(synthetic, tmp_path / "fer2013.csv"))
    assert_same_content(loaded, synthetic)
    assert loaded.ids[:2].tolist() == ["row:0", "row:1"]
    assert loaded.problems == ()


def test_csv_columns_in_any_order(synthetic, tmp_path, workspace):
    path = tmp_path / "reordered.csv"
    rows = [f"{u},{l},{' '.join(map(str, p.ravel()))}" for p, l, u in
            zip(synthetic.pixels[:3], synthetic.labels[:3], synthetic.usages[:3])]
    path.write_text("Usage,emotion,pixels\n" + "\n".join(rows) + "\n")
    assert_same_content(load(path), synthetic.select(np.arange(3)))


def test_folder_round_trip_with_path_ids_and_prefix_usage(synthetic, tmp_path, workspace):
    root = write_folders(synthetic, tmp_path / "folders")
    loaded = load(root)
    order = np.argsort([int(i.rsplit("_", 1)[1].split(".")[0]) for i in loaded.ids])
    assert_same_content(loaded.select(order), synthetic)
    assert loaded.ids[0].count("/") == 2 and loaded.ids[0].startswith(("train/", "test/"))


def test_usage_from_prefix_beats_folder():
    assert usage_from_name("PublicTest_1.jpg", "PrivateTest") == "PublicTest"
    assert usage_from_name("img_1.jpg", "PrivateTest") == "PrivateTest"


def test_val_folder_is_public_test(tmp_path, workspace):
    folder = tmp_path / "d" / "val" / "happy"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(folder / "a.png")
    assert load(tmp_path / "d").usages.tolist() == ["PublicTest"]


def test_second_load_comes_from_cache_and_source_is_untouched(synthetic, tmp_path, workspace):
    path = write_csv(synthetic, tmp_path / "fer2013.csv")
    before = path.read_bytes()
    first = load(path)
    caches = list((workspace / "cache").glob("pixels-*.np[yz]"))
    assert len(caches) == 2
    second = load(path)
    assert second.fingerprint == first.fingerprint
    assert_same_content(first, second)
    assert path.read_bytes() == before


def test_fingerprint_is_about_content_not_location(synthetic, tmp_path, workspace):
    a = load(write_csv(synthetic, tmp_path / "a.csv"))
    b = load(write_csv(synthetic, tmp_path / "b.csv"))
    assert a.fingerprint == b.fingerprint
    assert a.with_labels((a.labels + 1) % 7).fingerprint != a.fingerprint


def test_non_48_grayscale_images_are_converted_and_counted(tmp_path, workspace):
    folder = tmp_path / "d" / "train" / "sad"
    folder.mkdir(parents=True)
    Image.new("RGB", (96, 64), (200, 10, 10)).save(folder / "Training_1.jpg")
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(folder / "Training_2.png")
    loaded = load(tmp_path / "d")
    assert loaded.pixels.shape == (2, 48, 48)
    assert loaded.converted == 1


def test_dataset_is_read_only(synthetic):
    with pytest.raises(ValueError):
        synthetic.pixels[0, 0, 0] = 1


# ---- bad input: one clear error naming what and where ---------------------------------------

def write_rows(path, rows):
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path


GOOD = "3," + " ".join(["7"] * 2304) + ",Training"


@pytest.mark.parametrize("bad_row, message", [
    ("3," + " ".join(["7"] * 2303) + ",Training", "wrong pixel count 2303"),
    ("3," + " ".join(["7"] * 2303 + ["300"]) + ",Training", "out of range"),
    ("3," + " ".join(["7"] * 2303 + ["x"]) + ",Training", "not an integer"),
    ("9," + " ".join(["7"] * 2304) + ",Training", "unknown emotion '9'"),
    ("3," + " ".join(["7"] * 2304) + ",Validation", "unknown Usage 'Validation'"),
])
def test_bad_csv_row_is_reported_by_row_and_skipped(tmp_path, workspace, bad_row, message):
    loaded = load(write_rows(tmp_path / "f.csv", [GOOD, bad_row, GOOD]))
    assert loaded.ids.tolist() == ["row:0", "row:2"]
    assert [p.sample_id for p in loaded.problems] == ["row:1"]
    assert message in loaded.problems[0].reason and "row 1" in loaded.problems[0].reason


def test_missing_csv_column_names_the_file(tmp_path, workspace):
    path = tmp_path / "f.csv"
    path.write_text("emotion,pixels\n3,1 2 3\n")
    with pytest.raises(ValueError, match=r"f\.csv: missing column\(s\) Usage"):
        load(path)


def test_all_rows_bad_is_an_empty_dataset_error(tmp_path, workspace):
    with pytest.raises(ValueError, match="empty dataset.*row:0"):
        load(write_rows(tmp_path / "f.csv", ["3,1 2,Training"]))


def test_truncated_image_is_reported_and_skipped(tmp_path, workspace):
    folder = tmp_path / "d" / "train" / "fear"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((48, 48), 90, np.uint8)).save(folder / "Training_1.jpg")
    good = (folder / "Training_1.jpg").read_bytes()
    (folder / "Training_2.jpg").write_bytes(good[: len(good) // 3])
    (folder / "Training_3.jpg").write_bytes(b"not an image")
    loaded = load(tmp_path / "d")
    assert loaded.ids.tolist() == ["train/fear/Training_1.jpg"]
    assert sorted(p.sample_id for p in loaded.problems) == ["train/fear/Training_2.jpg", "train/fear/Training_3.jpg"]
    assert all("unreadable image" in p.reason for p in loaded.problems)


def test_missing_path_unknown_form_and_missing_splits(tmp_path, workspace):
    with pytest.raises(ValueError, match="no such file or folder"):
        load(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a FER source"):
        load(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no split folders"):
        load(tmp_path / "empty")


def test_unknown_emotion_folder_and_empty_split(tmp_path, workspace):
    (tmp_path / "d" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty dataset"):
        load(tmp_path / "d")
    (tmp_path / "d" / "train" / "bored").mkdir()
    with pytest.raises(ValueError, match="unknown emotion folder 'bored'"):
        load(tmp_path / "d")


def test_real_data_counts(real_data, real_cache):
    dataset = load(real_data, workspace=real_cache)
    assert len(dataset) == 35887
    assert dataset.count_by_usage() == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert dataset.problems == ()


def test_fast_jpeg_decoder_matches_pil_on_real_images(real_data):
    from fer_core.dataset import _decode_with_pil, decode_image

    for path in sorted((real_data / "train" / "disgust").glob("*.jpg"))[:200]:
        data = path.read_bytes()
        fast, converted = decode_image(data)
        reference, _ = _decode_with_pil(data)
        np.testing.assert_array_equal(fast, reference)
        assert not converted
