"""Load FER-2013 from its CSV or from image folders into an immutable `Dataset`.

Source files are only read. Decoded pixels are cached in the workspace under a key made of
the source's file names, sizes and modification times, so a second load skips decoding.
Each bad image or CSV row is recorded in `Dataset.problems` (id and reason) and skipped;
structural problems (no such path, no split folders, missing CSV columns, nothing loadable)
raise `ValueError` naming the path and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .files import write_atomically
from .labels import EMOTIONS, IMAGE_SIDE, TEST_USAGES, TRAINING, USAGES
from .workspace import cache_dir

# Bump when decoding changes, so stale caches are not reused.
LOADER_VERSION = "1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_FOLDER_USAGE = {"train": TRAINING, "val": "PublicTest", "validation": "PublicTest", "test": "PrivateTest"}
FILENAME_PREFIX_USAGE = {f"{usage}_": usage for usage in USAGES}
CSV_COLUMNS = ("emotion", "pixels", "Usage")

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LoadProblem:
    """One image or CSV row that could not be loaded, and why."""

    sample_id: str
    reason: str


@dataclass(frozen=True, eq=False)
class Dataset:
    """FER samples: ids (stable strings), pixels N×48×48 uint8, labels 0..6, usages. Read-only."""

    ids: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    usages: np.ndarray
    source: str = ""
    fingerprint: str = ""
    problems: tuple[LoadProblem, ...] = ()
    converted: int = 0
    _index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.pixels) == len(self.labels) == len(self.usages) == n):
            raise ValueError("Dataset arrays differ in length")
        for array in (self.ids, self.pixels, self.labels, self.usages):
            array.flags.writeable = False
        object.__setattr__(self, "_index", {sample_id: i for i, sample_id in enumerate(self.ids.tolist())})
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", content_fingerprint(self.ids, self.pixels, self.labels, self.usages))

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, sample_id: str) -> int:
        """Row of a sample id; ValueError naming the id when it is not in this dataset."""
        try:
            return self._index[sample_id]
        except KeyError:
            raise ValueError(f"unknown sample id {sample_id!r} (not in {self.source or 'this dataset'})") from None

    def has_id(self, sample_id: str) -> bool:
        return sample_id in self._index

    def select(self, rows: np.ndarray) -> "Dataset":
        """A new Dataset of the given rows (boolean mask or indices), in that order."""
        rows = np.asarray(rows)
        return Dataset(
            ids=self.ids[rows].copy(),
            pixels=self.pixels[rows].copy(),
            labels=self.labels[rows].copy(),
            usages=self.usages[rows].copy(),
            source=self.source,
        )

    def with_labels(self, labels: np.ndarray) -> "Dataset":
        return Dataset(ids=self.ids, pixels=self.pixels, labels=np.asarray(labels, dtype=np.int8).copy(),
                       usages=self.usages, source=self.source)

    def count_by_usage(self) -> dict[str, int]:
        return {usage: int(np.sum(self.usages == usage)) for usage in USAGES}

    def count_by_label(self) -> dict[str, int]:
        counts = np.bincount(self.labels.astype(np.int64), minlength=len(EMOTIONS))
        return {emotion: int(counts[i]) for i, emotion in enumerate(EMOTIONS)}

    def is_test(self) -> np.ndarray:
        return np.isin(self.usages, TEST_USAGES)


def content_fingerprint(ids: np.ndarray, pixels: np.ndarray, labels: np.ndarray, usages: np.ndarray) -> str:
    """A short hash of what the data is (ids, pixels, labels, usages), independent of where it lies."""
    digest = hashlib.sha256()
    digest.update("\n".join(ids.tolist()).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    digest.update(np.asarray(labels, dtype=np.int8).tobytes())
    digest.update("\n".join(usages.tolist()).encode())
    return digest.hexdigest()[:16]


def load(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
         progress: Progress | None = None, use_cache: bool = True) -> Dataset:
    """Load a FER-2013 CSV file or image-folder tree (cached in the workspace when `use_cache`)."""
    source = Path(path)
    if not source.exists():
        raise ValueError(f"no such file or folder: {source}")
    if source.is_dir():
        files = _list_folder_images(source)
        key_parts: Iterable[str] = (f"{rel}\t{size}\t{mtime}" for rel, _, size, mtime in files)
    elif source.suffix.lower() == ".csv":
        files = None
        stat = source.stat()
        key_parts = [f"{stat.st_size}\t{stat.st_mtime_ns}"]
    else:
        raise ValueError(f"{source}: not a FER source (expected a .csv file or a folder with train/ and test/)")

    cache_key = hashlib.sha256("\n".join([LOADER_VERSION, str(source.resolve()), *key_parts]).encode()).hexdigest()[:24]
    cache_file = cache_dir(workspace) / f"pixels-{cache_key}.npz" if use_cache else None
    if cache_file is not None and cache_file.exists():
        cached = _read_cache(cache_file, source)
        if cached is not None:
            return cached

    dataset = _load_folders(source, files, progress) if files is not None else _load_csv(source, progress)
    if cache_file is not None:
        _write_cache(cache_file, dataset)
    return dataset


# ---------------------------------------------------------------------------------------------
# Image folders


def _list_folder_images(root: Path) -> list[tuple[str, str, int, int]]:
    """(id, usage from the folder, size, mtime_ns) of every image under <root>/<split>/<emotion>/."""
    split_dirs = sorted((entry for entry in os.scandir(root)
                         if entry.is_dir() and entry.name.lower() in SPLIT_FOLDER_USAGE), key=lambda e: e.name)
    if not split_dirs:
        raise ValueError(f"{root}: no split folders; expected some of {', '.join(SPLIT_FOLDER_USAGE)}")
    files = []
    for split in split_dirs:
        for emotion_dir in sorted(os.scandir(split.path), key=lambda e: e.name):
            if not emotion_dir.is_dir():
                continue
            if emotion_dir.name.lower() not in EMOTIONS:
                raise ValueError(f"{emotion_dir.path}: unknown emotion folder {emotion_dir.name!r}; "
                                 f"expected one of {', '.join(EMOTIONS)}")
            for entry in sorted(os.scandir(emotion_dir.path), key=lambda e: e.name):
                if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    stat = entry.stat()
                    rel = f"{split.name}/{emotion_dir.name}/{entry.name}"
                    files.append((rel, SPLIT_FOLDER_USAGE[split.name.lower()], stat.st_size, stat.st_mtime_ns))
    if not files:
        raise ValueError(f"{root}: empty dataset, no .jpg/.jpeg/.png images under its split folders")
    return files


def usage_from_name(file_name: str, folder_usage: str) -> str:
    """The file-name prefix (Training_, PublicTest_, PrivateTest_) wins over the split folder."""
    for prefix, usage in FILENAME_PREFIX_USAGE.items():
        if file_name.startswith(prefix):
            return usage
    return folder_usage


JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def decode_image(data: bytes) -> tuple[np.ndarray, bool]:
    """Decode image bytes to 48×48 uint8 grayscale; the flag says whether it had to be converted.

    Complete 48×48 grayscale JPEGs (all of FER-2013) go through OpenCV's decoder, 2–3× faster
    than PIL's and pixel-identical (same libjpeg-turbo; tested). Everything else, and anything
    OpenCV would half-decode (a JPEG without its end marker is truncated), goes through PIL,
    which converts what needs converting and raises a clear error on what it cannot read.
    """
    if data.startswith(JPEG_START) and data.rstrip(b"\x00").endswith(JPEG_END):
        import cv2

        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is not None and pixels.shape == (IMAGE_SIDE, IMAGE_SIDE) and pixels.dtype == np.uint8:
            return pixels, False
    return _decode_with_pil(data)


def _decode_with_pil(data: bytes) -> tuple[np.ndarray, bool]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        converted = image.mode != "L" or image.size != (IMAGE_SIDE, IMAGE_SIDE)
        if image.mode != "L":
            image = image.convert("L")
        if image.size != (IMAGE_SIDE, IMAGE_SIDE):
            image = image.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
        return np.asarray(image, dtype=np.uint8), converted


def _decode_files(paths: list[str]) -> list[tuple[bytes | None, bool, str]]:
    """Worker: decode a chunk of files to (pixels bytes or None, converted, error reason)."""
    results = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                pixels, converted = decode_image(handle.read())
            results.append((pixels.tobytes(), converted, ""))
        except Exception as error:  # any decoder failure is reported per image, never a crash
            results.append((None, False, f"unreadable image: {type(error).__name__}: {error}"))
    return results


def _load_folders(root: Path, files: list[tuple[str, str, int, int]], progress: Progress | None) -> Dataset:
    paths = [str(root / rel) for rel, *_ in files]
    chunk = 2000
    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    decoded: list[tuple[bytes | None, bool, str]] = []
    workers = max(1, min(len(chunks), os.cpu_count() or 1))
    if workers == 1:
        mapped: Iterable = map(_decode_files, chunks)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        mapped = pool.map(_decode_files, chunks)
    try:
        for results in mapped:
            decoded.extend(results)
            if progress:
                progress("decode", len(decoded), len(paths))
    finally:
        if workers > 1:
            pool.shutdown()

    ids, pixels, labels, usages, problems, converted = [], [], [], [], [], 0
    for (rel, folder_usage, _, _), (raw, was_converted, reason) in zip(files, decoded):
        if raw is None:
            problems.append(LoadProblem(rel, reason))
            continue
        _, emotion, name = rel.split("/")
        ids.append(rel)
        pixels.append(raw)
        labels.append(EMOTIONS.index(emotion.lower()))
        usages.append(usage_from_name(name, folder_usage))
        converted += was_converted
    return _assemble(root, ids, pixels, labels, usages, problems, converted)


# ---------------------------------------------------------------------------------------------
# CSV


def _load_csv(path: Path, progress: Progress | None) -> Dataset:
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as error:
        raise ValueError(f"{path}: cannot read as CSV: {error}") from None
    missing = [column for column in CSV_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected header emotion,pixels,Usage")

    ids, pixels, labels, usages, problems = [], [], [], [], []
    expected = IMAGE_SIDE * IMAGE_SIDE
    rows = zip(table["emotion"].tolist(), table["pixels"].tolist(), table["Usage"].tolist())
    for row, (emotion, pixel_text, usage) in enumerate(rows):
        sample_id = f"row:{row}"
        reason = _csv_row_problem(emotion, usage)
        values = None
        if not reason:
            values, reason = _parse_pixels(pixel_text, expected)
        if reason:
            problems.append(LoadProblem(sample_id, f"{path.name} row {row}: {reason}"))
            continue
        ids.append(sample_id)
        pixels.append(values.astype(np.uint8).tobytes())
        labels.append(int(emotion))
        usages.append(usage.strip())
        if progress and row % 2000 == 0:
            progress("parse", row, len(table))
    if progress:
        progress("parse", len(table), len(table))
    return _assemble(path, ids, pixels, labels, usages, problems, 0)


def _csv_row_problem(emotion: str, usage: str) -> str:
    if emotion.strip() not in {str(i) for i in range(len(EMOTIONS))}:
        return f"unknown emotion {emotion!r}; expected an integer 0..6 ({', '.join(EMOTIONS)})"
    if usage.strip() not in USAGES:
        return f"unknown Usage {usage!r}; expected one of {', '.join(USAGES)}"
    return ""


def _parse_pixels(text: str, expected: int) -> tuple[np.ndarray | None, str]:
    tokens = text.split()
    if len(tokens) != expected:
        return None, f"wrong pixel count {len(tokens)}, expected {expected} (48×48)"
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        bad = next(token for token in tokens if not token.lstrip("-").isdigit())
        return None, f"pixel value {bad!r} is not an integer"
    out_of_range = values[(values < 0) | (values > 255)]
    if out_of_range.size:
        return None, f"pixel value {int(out_of_range[0])} out of range 0..255"
    return values, ""


# ---------------------------------------------------------------------------------------------
# Assembly and cache


def _assemble(source: Path, ids: list[str], pixels: list[bytes], labels: list[int], usages: list[str],
              problems: list[LoadProblem], converted: int) -> Dataset:
    if not ids:
        detail = f"; first problem: {problems[0].sample_id}: {problems[0].reason}" if problems else ""
        raise ValueError(f"{source}: empty dataset, no loadable samples{detail}")
    return Dataset(
        ids=np.array(ids, dtype=str),
        pixels=np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE).copy(),
        labels=np.array(labels, dtype=np.int8),
        usages=np.array(usages, dtype=str),
        source=str(source),
        problems=tuple(problems),
        converted=converted,
    )


def _write_cache(cache_file: Path, dataset: Dataset) -> None:
    """Pixels as a plain .npy beside the .npz of everything else, so a reader can memory-map them.

    The pixels are written first and the .npz last, each through an atomic rename: a reader that
    finds the .npz always finds whole pixels next to it.
    """
    meta = {"fingerprint": dataset.fingerprint, "converted": dataset.converted,
            "problems": [[p.sample_id, p.reason] for p in dataset.problems]}
    for target, write in ((cache_file.with_suffix(".npy"), lambda handle: np.save(handle, dataset.pixels)),
                          (cache_file, lambda handle: np.savez(handle, ids=dataset.ids, labels=dataset.labels,
                                                               usages=dataset.usages, meta=np.array(json.dumps(meta))))):
        write_atomically(target, write)


def _read_cache(cache_file: Path, source: Path) -> Dataset | None:
    try:
        pixels = np.load(cache_file.with_suffix(".npy"), mmap_mode="r")  # pages are read when used
        with np.load(cache_file, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            return Dataset(ids=stored["ids"], pixels=pixels, labels=stored["labels"],
                           usages=stored["usages"], source=str(source), fingerprint=meta["fingerprint"],
                           problems=tuple(LoadProblem(*p) for p in meta["problems"]),
                           converted=int(meta["converted"]))
    except Exception:
        return None  # a damaged cache is only a cache: decode again
