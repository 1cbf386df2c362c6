import os

import numpy as np
import pytest
from PIL import Image
from synthetic import make_synthetic, write_csv, write_folders

from fer_core.dataset.loading import Dataset, load, usage_from_name


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
    ("-1," + " ".join(["7"] * 2304) + ",Training", "unknown emotion '-1'"),  # 7 and up: more classes
    ("3," + " ".join(["7"] * 2304) + ",Validation", "unknown Usage 'Validation'"),
])
def test_bad_csv_row_is_reported_by_row_and_skipped(tmp_path, workspace, bad_row, message):
    loaded = load(write_rows(tmp_path / "f.csv", [GOOD, bad_row, GOOD]))
    assert loaded.ids.tolist() == ["row:0", "row:2"]
    assert [p.sample_id for p in loaded.problems] == ["row:1"]
    assert message in loaded.problems[0].reason and "f.csv line 3: " in loaded.problems[0].reason


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


def test_empty_split_and_an_odd_emotion_folder_name(tmp_path, workspace):
    (tmp_path / "d" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty dataset"):
        load(tmp_path / "d")
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(tmp_path / "d" / "train" / "happy" / "a.png")
    (tmp_path / "d" / "train" / "bored?").mkdir()  # any other folder is a class (tests/test_any_dataset.py)
    (tmp_path / "d" / "train" / "bored?" / "b.png").write_bytes((tmp_path / "d" / "train" / "happy" / "a.png").read_bytes())
    with pytest.raises(ValueError, match=r"emotion folder.*'bored\?' cannot be an emotion name"):
        load(tmp_path / "d")


def test_real_data_counts(real_data, real_cache):
    dataset = load(real_data, workspace=real_cache)
    assert len(dataset) == 35887
    assert dataset.count_by_usage() == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert dataset.problems == () and dataset.skipped == ()


def test_fast_jpeg_decoder_matches_pil_on_real_images(real_data):
    from fer_core.dataset.sources import decode_image

    for path in sorted((real_data / "train" / "disgust").glob("*.jpg"))[:200]:
        data = path.read_bytes()
        fast, converted = decode_image(data)
        reference, _ = decode_image(data, use_opencv=False)
        np.testing.assert_array_equal(fast, reference)
        assert not converted


# ---- odd files in an image tree: listed as unreadable or skipped, never a crash or a silent skip --

def image_tree(root, images=("train/happy/Training_1.jpg", "train/sad/Training_2.jpg", "test/happy/PrivateTest_3.jpg")):
    """A tiny image-folder tree with one real-looking 48×48 JPEG per path."""
    for index, name in enumerate(images):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 48), 40 + index, np.uint8)).save(path)
    return root


def reasons(items) -> dict[str, str]:
    return {item.sample_id: item.reason for item in items}


def test_symlink_loops_are_listed_as_unreadable(tmp_path, workspace):
    root = image_tree(tmp_path / "d")
    (root / "train" / "happy" / "x.jpg").symlink_to("x.jpg")  # ln -s x.jpg x.jpg
    (root / "train" / "angry").symlink_to("angry")  # an emotion folder linked to itself
    loaded = load(root)
    assert len(loaded) == 3
    unreadable = reasons(loaded.problems)
    assert set(unreadable) == {"train/happy/x.jpg", "train/angry"}
    assert all("symlink loop" in reason for reason in unreadable.values())


def test_non_images_are_listed_as_skipped_with_a_reason(tmp_path, workspace):
    root = image_tree(tmp_path / "d")
    happy = root / "train" / "happy"
    (happy / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(happy / "fifo.jpg")  # never opened: reading a FIFO with no writer blocks forever
    (happy / "notes.txt").write_text("not an image")
    (happy / "x.jpg").mkdir()
    (root / "train" / ".ipynb_checkpoints").mkdir()  # a hidden folder is not a misspelt emotion
    (root / "train" / "stray.jpg").write_bytes(b"")
    (root / "extras").mkdir()  # ("training" is a split folder, as in most datasets)
    (root / "README.md").write_text("documentation beside the splits is not data")
    loaded = load(root)
    assert len(loaded) == 3 and loaded.problems == ()
    skipped = reasons(loaded.skipped)
    assert set(skipped) == {"train/happy/gone.jpg", "train/happy/fifo.jpg", "train/happy/notes.txt",
                            "train/happy/x.jpg", "train/stray.jpg", "extras", "train/.ipynb_checkpoints"}
    assert "dangling symlink" in skipped["train/happy/gone.jpg"]
    assert "FIFO" in skipped["train/happy/fifo.jpg"]
    assert "not an image file name" in skipped["train/happy/notes.txt"]
    assert "folder" in skipped["train/happy/x.jpg"]
    assert "not in an emotion folder" in skipped["train/stray.jpg"]
    assert "not a split folder" in skipped["extras"]
    assert "hidden folder" in skipped["train/.ipynb_checkpoints"]


def test_skipped_list_comes_back_from_the_cache_and_a_new_odd_file_is_seen(tmp_path, workspace):
    root = image_tree(tmp_path / "d")
    (root / "train" / "happy" / "notes.txt").write_text("x")
    first = load(root)
    again = load(root)
    assert reasons(again.skipped) == reasons(first.skipped) and len(again.skipped) == 1
    (root / "train" / "sad" / "more.txt").write_text("x")
    assert {item.sample_id for item in load(root).skipped} == {"train/happy/notes.txt", "train/sad/more.txt"}


@pytest.mark.parametrize("alias, target", [("val", "train"), ("train/sad", "happy")])
def test_a_folder_linked_to_another_is_refused_not_counted_twice(tmp_path, workspace, alias, target):
    root = image_tree(tmp_path / "d")
    link = root / alias
    if link.exists():
        import shutil

        shutil.rmtree(link)
    link.symlink_to(target)
    with pytest.raises(ValueError, match=f"{alias} is the same folder as .*counted twice") as error:
        load(root)
    assert "\n" not in str(error.value)


def test_not_an_image_says_so_without_object_reprs(tmp_path, workspace):
    root = image_tree(tmp_path / "d")
    (root / "train" / "happy" / "Training_9.jpg").write_text("hello")
    (root / "train" / "happy" / "Training_10.jpg").write_bytes(b"")
    loaded = load(root)
    unreadable = reasons(loaded.problems)
    assert unreadable["train/happy/Training_9.jpg"] == "unreadable image: not an image (or an unsupported format)"
    assert "empty file" in unreadable["train/happy/Training_10.jpg"]
    assert not any("0x" in reason or "BytesIO" in reason for reason in unreadable.values())


def test_a_fifo_given_as_the_csv_is_refused_without_opening_it(tmp_path, workspace):
    import threading

    os.mkfifo(tmp_path / "f.csv")
    outcome = []

    def try_load():
        try:
            load(tmp_path / "f.csv")
        except ValueError as error:
            outcome.append(str(error))

    # A daemon thread, so that a loader that opens the FIFO (and blocks) fails this test instead of hanging it.
    worker = threading.Thread(target=try_load, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "load opened the FIFO and blocked"
    assert len(outcome) == 1 and "not a regular file" in outcome[0]


# ---- CSV: one bad row is skipped and listed by its file line number --------------------------

def test_csv_row_with_an_extra_unquoted_field_is_skipped_and_listed(tmp_path, workspace):
    loaded = load(write_rows(tmp_path / "f.csv", [GOOD, GOOD.replace(",Training", ",1,Training"), GOOD]))
    assert loaded.ids.tolist() == ["row:0", "row:2"]
    assert reasons(loaded.problems) == {"row:1": "f.csv line 3: 4 fields, expected 3 (emotion,pixels,Usage)"}


def test_csv_row_with_a_latin1_byte_is_skipped_and_listed(tmp_path, workspace):
    path = tmp_path / "f.csv"
    path.write_bytes(("emotion,pixels,Usage\n" + "\n".join([GOOD, GOOD, GOOD]) + "\n").encode()
                     .replace(b"Training", b"Tr\xe9ining", 2).replace(b"Tr\xe9ining", b"Training", 1))
    loaded = load(path)
    assert loaded.ids.tolist() == ["row:0", "row:2"]
    assert reasons(loaded.problems) == {"row:1": "f.csv line 3: not UTF-8 text (byte 0xe9)"}


def test_csv_quoted_fields_bom_crlf_and_blank_lines_still_load(tmp_path, workspace):
    path = tmp_path / "f.csv"
    quoted = '3,"' + " ".join(["7"] * 2304) + '","Training"'
    path.write_bytes(("\ufeffemotion,pixels,Usage\r\n" + quoted + "\r\n\r\n" + GOOD + "\r\n").encode())
    loaded = load(path)
    assert loaded.ids.tolist() == ["row:0", "row:1"] and loaded.problems == ()
    assert loaded.usages.tolist() == ["Training", "Training"]


# ---- the decoded cache: numpy files only; a damaged or planted one is recomputed -------------

@pytest.mark.parametrize("damage", ["truncate pixels", "garbage index", "wrong pixel shape", "zeroed pixels"])
def test_damaged_pixel_cache_is_recomputed(synthetic, tmp_path, workspace, damage):
    """Zeroed pixels of the right shape (issue 22) were trusted: export wrote blank images under the
    real data's fingerprint. The cache is checked against the fingerprint stored with it."""
    path = write_csv(synthetic, tmp_path / "fer2013.csv")
    first = load(path, use_cache=False)  # in memory: damage done in place below would reach a mapped store
    load(path)
    [index] = (workspace / "cache").glob("pixels-*.npz")
    pixels = index.with_suffix(".npy")
    if damage == "truncate pixels":
        pixels.write_bytes(pixels.read_bytes()[:1000])
    elif damage == "garbage index":
        index.write_bytes(b"PK\x03\x04 not a zip")
    elif damage == "zeroed pixels":
        stored = np.load(pixels, mmap_mode="r+")  # in place: same file, same shape, same header
        stored[:] = 0
        stored.flush()
        del stored
    else:
        np.save(pixels, np.zeros((len(first), 10), np.uint8))
    again = load(path)
    assert again.pixels.shape == first.pixels.shape
    assert_same_content(again, first)
    assert load(path).fingerprint == first.fingerprint  # and the cache was written whole again


def test_a_cache_that_cannot_be_written_does_not_fail_the_load(synthetic, tmp_path, workspace, monkeypatch):
    import fer_core.dataset.loading as dataset_module

    def read_only(*_):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(dataset_module, "write_atomically", read_only)
    loaded = load(write_csv(synthetic, tmp_path / "fer2013.csv"))
    assert_same_content(loaded, synthetic)
