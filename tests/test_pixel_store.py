"""The pixel store (issue 25): decoded images appended chunk by chunk to one uint8 .npy, read back
memory-mapped; the fingerprint still catches a zeroed store; a failed or refused write leaves no file."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fer_core.dataset.loading import load
from fer_core.dataset.pixel_store import (build_pixel_store, decode_chunk, iterate_chunks, open_pixels,
                                          release_pages)
from tests.synthetic import make_synthetic, write_folders


def random_chunks(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, 48, 48), dtype=np.uint8) for size in sizes]


def test_chunks_written_one_by_one_read_back_identical_and_read_only(tmp_path):
    chunks = random_chunks([5, 0, 3, 7])
    path = tmp_path / "pixels.npy"

    def fill(append):
        for chunk in chunks:
            append(chunk)
        return "fields"

    pixels, result, stored = build_pixel_store(path, fill)
    assert stored and result == "fields" and isinstance(pixels, np.memmap)
    np.testing.assert_array_equal(pixels, np.concatenate(chunks))
    np.testing.assert_array_equal(np.load(path), np.concatenate(chunks))  # a plain .npy for any reader
    assert not pixels.flags.writeable
    assert os.listdir(tmp_path) == ["pixels.npy"]  # no temporary left beside it


def test_a_load_that_fails_midway_leaves_no_half_store(tmp_path):
    path = tmp_path / "pixels.npy"

    def fill(append):
        append(random_chunks([4])[0])
        raise ValueError("empty dataset, no loadable samples")

    with pytest.raises(ValueError, match="empty dataset"):
        build_pixel_store(path, fill)
    assert os.listdir(tmp_path) == []


def test_a_store_the_disk_refuses_midway_is_kept_in_memory_and_leaves_nothing(tmp_path, monkeypatch):
    """A full disk after the first chunk: the images are decoded again into memory, the load goes on."""
    import builtins

    chunks = random_chunks([3, 4])
    real_open, calls = builtins.open, []

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            calls.append(len(data))
            if len(calls) > 2:  # the header and one chunk fit
                raise OSError(28, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    def filling_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return FullDisk(handle) if str(file).startswith(str(tmp_path)) and "x" in mode else handle

    monkeypatch.setattr(builtins, "open", filling_open)
    pixels, result, stored = build_pixel_store(tmp_path / "pixels.npy", lambda append: [append(c) for c in chunks])
    assert not stored and not isinstance(pixels, np.memmap)
    np.testing.assert_array_equal(pixels, np.concatenate(chunks))
    assert os.listdir(tmp_path) == []


def test_without_a_path_the_images_stay_in_memory(tmp_path):
    chunks = random_chunks([2, 2])
    pixels, _, stored = build_pixel_store(None, lambda append: [append(c) for c in chunks])
    assert not stored and not pixels.flags.writeable
    np.testing.assert_array_equal(pixels, np.concatenate(chunks))


def test_a_chunk_of_the_wrong_shape_is_refused(tmp_path):
    with pytest.raises(TypeError, match="48×48 uint8"):
        build_pixel_store(tmp_path / "pixels.npy", lambda append: append(np.zeros((2, 48, 47), np.uint8)))
    assert os.listdir(tmp_path) == []


def test_pages_let_go_read_back_the_same(tmp_path):
    chunks = random_chunks([300])
    pixels, _, _ = build_pixel_store(tmp_path / "pixels.npy", lambda append: append(chunks[0]))
    swept = np.concatenate([np.array(images) for _, images in iterate_chunks(pixels, 64)])
    release_pages(pixels)
    np.testing.assert_array_equal(swept, chunks[0])
    np.testing.assert_array_equal(pixels, chunks[0])
    rows = np.array([3, 70, 71, 299])
    np.testing.assert_array_equal(np.concatenate([images for _, images in iterate_chunks(pixels, 2, rows)]),
                                  chunks[0][rows])


def test_decode_chunk_keeps_the_good_images_in_order_and_names_the_bad(tmp_path):
    from PIL import Image

    images = random_chunks([2])[0]
    paths = [tmp_path / "a.png", tmp_path / "bad.jpg", tmp_path / "b.png"]
    Image.fromarray(images[0]).save(paths[0])
    paths[1].write_bytes(b"not an image")
    Image.fromarray(images[1]).save(paths[2])
    decoded = decode_chunk([str(path) for path in paths])
    np.testing.assert_array_equal(decoded.pixels, images)
    assert decoded.reasons[0] == decoded.reasons[2] == "" and decoded.reasons[1].startswith("unreadable image")
    assert decoded.converted.tolist() == [False, False, False]


def test_image_folders_load_into_a_mapped_store_and_a_zeroed_store_is_decoded_again(tmp_path, workspace):
    dataset, _ = make_synthetic(base_faces=14)
    root = write_folders(dataset, tmp_path / "data")
    first = load(root)
    assert isinstance(first.pixels, np.memmap)
    expected = np.array(first.pixels)
    [store] = (workspace / "cache").glob("pixels-*.npy")
    np.testing.assert_array_equal(open_pixels(store), expected)
    zeroed = np.load(store, mmap_mode="r+")  # in place: same file, same shape, same header
    zeroed[:] = 0
    zeroed.flush()
    del zeroed
    again = load(root)
    np.testing.assert_array_equal(again.pixels, expected)
    assert again.fingerprint == first.fingerprint
