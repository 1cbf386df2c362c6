"""Bad source images (issue 22): each is decoded right or listed as unreadable with its reason; none
fails the dataset or takes the machine's memory.

16-bit PNGs were clipped to white, one file name that is not UTF-8 failed the whole load naming no
file, and a 30000×30000 JPEG was decoded whole (5.4 GB) before anything refused it.
"""

import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from fer_core.cli import main
from fer_core.dataset.loading import load
from fer_core.dataset.sources import MAX_SOURCE_PIXELS, UNDECODABLE_NAME, decode_image


def face(seed: int = 0) -> np.ndarray:
    """A dark face-like 48×48 image (mean about 80, like FER's), smooth enough to survive PNG and scaling."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:48]
    pixels = 60 + 50 * np.exp(-((y - 24) ** 2 + (x - 24) ** 2) / 200) + rng.normal(0, 8, (48, 48))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def small_tree(root, count: int = 3):
    for index in range(count):
        folder = root / ("train" if index else "test") / ("happy", "sad")[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face(index)).save(folder / f"{'Training' if index else 'PublicTest'}_{index}.png")
    return root


def png_bytes(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize("writer", ["opencv", "pil"])
def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_to_white(writer, tmp_path):
    """PIL's convert("L") clipped every 16-bit value above 255: the same face came out mean 253, not 79."""
    eight = face()
    rng = np.random.default_rng(1)
    sixteen = eight.astype(np.uint16) * 256 + rng.integers(0, 256, eight.shape).astype(np.uint16)  # low byte: detail
    if writer == "opencv":
        data = png_bytes(sixteen)
    else:
        Image.fromarray(sixteen).save(tmp_path / "face.png")  # PIL mode I;16
        data = (tmp_path / "face.png").read_bytes()
    decoded, converted = decode_image(data)
    reference, _ = decode_image(png_bytes(eight))
    assert converted and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - reference.astype(int)).max() <= 1
    assert abs(decoded.mean() - eight.mean()) < 1


def test_16_bit_colour_and_a_16_bit_png_in_a_folder_load_like_their_8_bit_copies(tmp_path, workspace):
    eight = face()
    root = small_tree(tmp_path / "d")
    happy = root / "train" / "happy"
    (happy / "Training_8.png").write_bytes(png_bytes(eight))
    (happy / "Training_16.png").write_bytes(png_bytes(eight.astype(np.uint16) * 257))
    (happy / "Training_16rgb.png").write_bytes(png_bytes(np.dstack([eight] * 3).astype(np.uint16) * 257))
    loaded = load(root)
    reference = loaded.pixels[loaded.index_of("train/happy/Training_8.png")].astype(int)
    for name in ("Training_16.png", "Training_16rgb.png"):
        assert np.abs(loaded.pixels[loaded.index_of(f"train/happy/{name}")] - reference).max() <= 1, name
    assert loaded.converted == 2 and loaded.problems == ()


def test_a_file_name_that_is_not_utf8_is_listed_as_unreadable_and_the_rest_loads(tmp_path, workspace, capsys):
    """One name with the byte 0xff (a Latin-1 name on Linux) failed the load with "'utf-8' codec can't
    encode characters in position 14228…", naming no file, in the CLI and in the app."""
    root = small_tree(tmp_path / "d")
    happy = os.fsencode(root / "train" / "happy")
    with open(happy + b"/Training_caf\xe9.png", "wb") as handle:  # café in Latin-1
        handle.write((root / "train" / "sad" / "Training_1.png").read_bytes())
    os.mkdir(os.fsencode(root) + b"/extra\xff")  # a folder beside the splits: skipped, under a printable name

    loaded = load(root)
    assert len(loaded) == 3
    assert [(p.sample_id, p.reason) for p in loaded.problems] == [("train/happy/Training_caf\\xe9.png", UNDECODABLE_NAME)]
    assert [p.sample_id for p in loaded.skipped] == ["extra\\xff"]
    assert load(root).problems == loaded.problems  # the cache key and the cache take it too

    out = tmp_path / "out"
    assert main(["audit", str(root), "--out", str(out), "--fast", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["unreadable"] == ["train/happy/Training_caf\\xe9.png"]
    assert "rename the file" in summary["unreadable_reasons"]["train/happy/Training_caf\\xe9.png"]


def test_an_image_over_the_pixel_limit_is_refused_from_its_header_before_any_decoding(tmp_path, workspace,
                                                                                       monkeypatch):
    """A 30000×30000 JPEG of 14 MB took the audit to 5.4 GB: OpenCV decoded it whole before any check."""
    root = small_tree(tmp_path / "d")
    width, height = 6000, MAX_SOURCE_PIXELS // 6000 + 1  # just over the limit; flat, so 0.2 MB on disk
    big = root / "train" / "happy" / "Training_big.jpg"
    Image.new("L", (width, height), 90).save(big, quality=50)
    big_size = big.stat().st_size
    decoded_sizes = []
    real_imdecode, real_load = cv2.imdecode, ImageFile.ImageFile.load

    def spy_imdecode(buffer, flags):
        decoded_sizes.append(("opencv", len(buffer)))
        return real_imdecode(buffer, flags)

    def spy_load(image):
        decoded_sizes.append(("pil", image.size))
        return real_load(image)

    monkeypatch.setattr(cv2, "imdecode", spy_imdecode)
    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    loaded = load(root)  # three small files: one chunk, decoded in this process

    assert len(loaded) == 3
    [problem] = loaded.problems
    assert problem.sample_id == "train/happy/Training_big.jpg"
    assert problem.reason == (f"unreadable image: too large to decode: {width}×{height} pixels, "
                              f"over {MAX_SOURCE_PIXELS:,}; FER images are 48×48")
    assert ("opencv", big_size) not in decoded_sizes and ("pil", (width, height)) not in decoded_sizes
    assert len(decoded_sizes) >= 3  # the spies did see the small images being decoded
