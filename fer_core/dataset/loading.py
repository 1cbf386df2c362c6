"""Load FER-2013 from its CSV or from image folders into an immutable `Dataset`.

Source files are only read. Decoded pixels are cached in the workspace under a key made of
the source's file names, sizes and modification times, so a second load skips decoding.
Each bad image or CSV row is recorded in `Dataset.problems` (id and reason) and skipped;
whatever in an image tree is not an image (other files, folders, FIFOs, dangling links) is
listed in `Dataset.skipped` with the reason, so nothing is dropped without a word. Structural
problems (no such path, no split folders, missing CSV columns, two folders that are one,
nothing loadable) raise `ValueError` naming the path and what is wrong.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from fer_core.dataset.pixel_store import build_pixel_store, decode_chunk, iterate_chunks, open_pixels
from fer_core.dataset.sources import (CSV_COLUMNS, FolderScan, LoadProblem, csv_row_problem, decode_image,
                                      parse_pixels, read_csv_lines, scan_folders, split_csv_line, undecodable_byte,
                                      usage_from_name)
from fer_core.dataset.label_sets import LabelChoice, choose_labels, csv_label_problem, csv_labels, folder_labels
from fer_core.files import write_atomically
from fer_core.labels import EMOTIONS, IMAGE_SIDE, TEST_USAGES, USAGES
from fer_core.parallel import map_batches
from fer_core.workspace import cache_dir

__all__ = ["Dataset", "LoadProblem", "Progress", "content_fingerprint", "decode_image", "load", "usage_from_name"]

# Bump when decoding changes, so stale caches are not reused (3: 16-bit images scaled, not clipped; huge
# images and names that are not UTF-8 listed as unreadable; 4: any emotion folder, non-square images cut to
# their centre square, EXIF rotation, transparency as white).
LOADER_VERSION = "4"

Progress = Callable[[str, int, int], None]
FINGERPRINT_CHUNK = 1 << 15  # images hashed at once (75 MB)


@dataclass(frozen=True, eq=False)
class Dataset:
    """FER samples: ids (stable strings), pixels N×48×48 uint8, labels (indices into `emotions`), usages. Read-only."""

    ids: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    usages: np.ndarray
    source: str = ""
    fingerprint: str = ""
    problems: tuple[LoadProblem, ...] = ()
    converted: int = 0
    skipped: tuple[LoadProblem, ...] = ()  # entries of an image tree that are not images, and why
    emotions: tuple[str, ...] = EMOTIONS  # the label set: FER-2013's seven, or the data's own (fer_core.labels)
    _index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.pixels) == len(self.labels) == len(self.usages) == n):
            raise ValueError("Dataset arrays differ in length")
        for array in (self.ids, self.pixels, self.labels, self.usages):
            array.flags.writeable = False
        object.__setattr__(self, "emotions", tuple(self.emotions))
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", content_fingerprint(self.ids, self.pixels, self.labels, self.usages,
                                                                        self.emotions))

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, sample_id: str) -> int:
        """Row of a sample id; ValueError naming the id when it is not in this dataset."""
        try:
            return self._ids_to_rows()[sample_id]
        except KeyError:
            raise ValueError(f"unknown sample id {sample_id!r} (not in {self.source or 'this dataset'})") from None

    def has_id(self, sample_id: str) -> bool:
        return sample_id in self._ids_to_rows()

    def _ids_to_rows(self) -> dict:
        """id → row, built on first use: 150 bytes an image (a million images: 150 MB) that an audit never needs."""
        if self._index is None:
            object.__setattr__(self, "_index", {sample_id: i for i, sample_id in enumerate(self.ids.tolist())})
        return self._index

    def select(self, rows: np.ndarray) -> "Dataset":
        """A new Dataset of the given rows (boolean mask or indices), in that order."""
        rows = np.asarray(rows)
        return Dataset(
            ids=self.ids[rows].copy(),
            pixels=self.pixels[rows].copy(),
            labels=self.labels[rows].copy(),
            usages=self.usages[rows].copy(),
            source=self.source,
            emotions=self.emotions,
        )

    def with_labels(self, labels: np.ndarray) -> "Dataset":
        return Dataset(ids=self.ids, pixels=self.pixels, labels=np.asarray(labels, dtype=np.int8).copy(),
                       usages=self.usages, source=self.source, emotions=self.emotions)

    def count_by_usage(self) -> dict[str, int]:
        return {usage: int(np.sum(self.usages == usage)) for usage in USAGES}

    def count_by_label(self) -> dict[str, int]:
        counts = np.bincount(self.labels.astype(np.int64), minlength=len(self.emotions))
        return {emotion: int(counts[i]) for i, emotion in enumerate(self.emotions)}

    def is_test(self) -> np.ndarray:
        return np.isin(self.usages, TEST_USAGES)


def content_fingerprint(ids: np.ndarray, pixels: np.ndarray, labels: np.ndarray, usages: np.ndarray,
                        emotions: tuple[str, ...] = EMOTIONS) -> str:
    """A short hash of what the data is (ids, pixels, labels, usages, and a label set other than
    FER-2013's, whose fingerprints stay as they were), independent of where it lies."""
    digest = hashlib.sha256()
    digest.update("\n".join(ids.tolist()).encode())
    for _, images in iterate_chunks(pixels, FINGERPRINT_CHUNK):  # the buffer itself, a chunk of the store at a time
        digest.update(np.ascontiguousarray(images))
    digest.update(np.asarray(labels, dtype=np.int8).tobytes())
    digest.update("\n".join(usages.tolist()).encode())
    if tuple(emotions) != EMOTIONS:
        digest.update(("\nemotions:" + ",".join(emotions)).encode())
    return digest.hexdigest()[:16]


def load(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
         progress: Progress | None = None, use_cache: bool = True, labels: str | None = None) -> Dataset:
    """Load a FER CSV file or image-folder tree (cached in the workspace when `use_cache`); `labels` is
    `--labels` (None: what the workspace remembers for this source, else the data's own label set)."""
    source = Path(path)
    if not source.exists():
        if os.path.lexists(source):
            raise ValueError(f"{source}: a symlink that leads nowhere (dangling or a loop)")
        raise ValueError(f"no such file or folder: {source}")
    if source.is_dir():
        scan: FolderScan | None = scan_folders(source)
        key_parts: Iterable[str] = scan.cache_key_parts()
    elif source.suffix.lower() == ".csv":
        if not source.is_file():  # a FIFO or a device: opening it could block forever
            raise ValueError(f"{source}: not a regular file")
        scan = None
        stat = source.stat()
        key_parts = [f"{stat.st_size}\t{stat.st_mtime_ns}"]
    else:
        raise ValueError(f"{source}: not a FER source (expected a .csv file or a folder with train/ and test/)")
    choice = choose_labels(source, workspace, labels, remember=False)  # remembered once the data loads with it
    if choice is not None:
        key_parts = [*key_parts, f"labels\t{choice.text}"]
    label_set = folder_labels(source, scan, choice) if scan is not None else None  # bad --labels: before the cache

    cache_key = hashlib.sha256("\n".join([LOADER_VERSION, str(source.resolve()), *key_parts]).encode()).hexdigest()[:24]
    cache_file = cache_dir(workspace) / f"pixels-{cache_key}.npz" if use_cache else None
    if cache_file is not None and cache_file.exists():
        cached = _read_cache(cache_file, source)
        if cached is not None:
            choose_labels(source, workspace, labels)
            return cached

    # decoded images go straight to the pixel store (kept in memory when it cannot be written)
    pixel_file = cache_file.with_suffix(".npy") if cache_file is not None else None
    if scan is not None:
        pixels, parts, stored = build_pixel_store(
            pixel_file, lambda append: _load_folders(source, scan, label_set, progress, append))
    else:
        pixels, parts, stored = build_pixel_store(pixel_file,
                                                  lambda append: _load_csv(source, choice, progress, append))
    dataset = _assemble(source, pixels, **parts)
    choose_labels(source, workspace, labels)  # a --labels the data refused is never remembered
    if stored:
        try:
            _write_cache(cache_file, dataset)
        except OSError:
            pass  # a read-only workspace: the data loaded fine, it is only not cached for next time
    return dataset


# ---------------------------------------------------------------------------------------------
# Image folders


def _load_folders(root: Path, scan: FolderScan, label_set: tuple[tuple[str, ...], list[int]],
                  progress: Progress | None, append: Callable[[np.ndarray], None]) -> dict:
    """Decode the images chunk by chunk, handing each chunk's pixels to `append` (the pixel store) as it
    comes; returns the rest of the Dataset's fields."""
    files = scan.files
    paths = [str(root / rel) for rel, *_ in files]
    # local processes, or Ray Data on the cluster's workers when $FER_AUDIT_RAY_ADDRESS is set (paths travel)
    mapped = map_batches(decode_chunk, paths, 2000, local_processes=os.cpu_count() or 1)
    ids, labels, usages, problems, converted, done = [], [], [], list(scan.unreadable), 0, 0
    try:
        for decoded in mapped:
            append(decoded.pixels)
            chunk = slice(done, done + len(decoded.reasons))
            for (rel, folder_usage, _, _), reason, label in zip(files[chunk], decoded.reasons, label_set[1][chunk]):
                if reason:
                    problems.append(LoadProblem(rel, reason))
                    continue
                ids.append(rel)
                labels.append(label)
                usages.append(usage_from_name(rel.rsplit("/", 1)[1], folder_usage))
            converted += int(decoded.converted.sum())
            done += len(decoded.reasons)
            if progress:
                progress("decode", done, len(paths))
    finally:
        mapped.close()  # stopped early (the store refused a chunk): cancel the chunks not yet decoded
    problems.sort(key=lambda problem: problem.sample_id)
    return _loaded(root, ids, labels, usages, problems, converted, scan.skipped, emotions=label_set[0])


# ---------------------------------------------------------------------------------------------
# CSV


def _load_csv(path: Path, choice: LabelChoice | None, progress: Progress | None,
              append: Callable[[np.ndarray], None]) -> dict:
    """Parse a fer2013.csv-schema file line by line, so one malformed line (an unquoted comma, a
    byte that is not UTF-8) costs that row only. Sample ids count data rows from 0 (`row:<n>`);
    messages name the file line (the header is line 1)."""
    lines, undecodable = read_csv_lines(path)
    header_index = next((index for index, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise ValueError(f"{path}: empty file, expected header emotion,pixels,Usage")
    header = [name.strip() for name in split_csv_line(lines[header_index])]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected header emotion,pixels,Usage")
    emotion_at, pixels_at, usage_at = (header.index(column) for column in CSV_COLUMNS)

    ids, pixels, labels, usages, problems, line_numbers = [], [], [], [], [], []
    expected = IMAGE_SIDE * IMAGE_SIDE
    row = -1
    for index in range(header_index + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue  # blank lines are not rows (as in pandas)
        row += 1
        sample_id = f"row:{row}"
        values = None
        reason = undecodable_byte(line) if undecodable else ""
        if not reason:
            try:
                fields = split_csv_line(line)
            except csv.Error as error:
                fields, reason = [], f"bad quoting: {error}"
        if not reason and len(fields) != len(header):
            reason = f"{len(fields)} fields, expected {len(header)} ({','.join(header)})"
        if not reason:
            emotion, usage = fields[emotion_at], fields[usage_at]
            reason = csv_row_problem(emotion, usage)
        if not reason:
            values, reason = parse_pixels(fields[pixels_at], expected)
        if reason:
            problems.append(LoadProblem(sample_id, f"{path.name} line {index + 1}: {reason}"))
            continue
        ids.append(sample_id)
        pixels.append(values.astype(np.uint8).tobytes())
        labels.append(int(emotion))
        usages.append(usage.strip())
        line_numbers.append(index + 1)
        if progress and row % 2000 == 0:
            progress("parse", index, len(lines))
    if progress:
        progress("parse", len(lines), len(lines))
    emotions, indices = csv_labels(path, labels, choice)
    if None in indices:  # values past the end of a --labels list: bad rows, named like the others
        problems = sorted(problems + [
            LoadProblem(sample_id, f"{path.name} line {line}: {csv_label_problem(value, emotions)}")
            for sample_id, line, value, index in zip(ids, line_numbers, labels, indices) if index is None],
            key=lambda problem: int(problem.sample_id.split(":")[1]))
        ids, pixels, usages = ([item for item, index in zip(column, indices) if index is not None]
                               for column in (ids, pixels, usages))
    append(np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE))
    return _loaded(path, ids, [index for index in indices if index is not None], usages, problems, 0, emotions=emotions)


# ---------------------------------------------------------------------------------------------
# Assembly and cache


def _loaded(source: Path, ids: list[str], labels: list[int], usages: list[str], problems: list[LoadProblem],
            converted: int, skipped: list[LoadProblem] = (), emotions: tuple[str, ...] = EMOTIONS) -> dict:
    """A loader's fields other than the pixels; ValueError when nothing could be loaded (raised while the
    pixel store is still a temporary, so no empty store is left)."""
    if not ids:
        detail = f"; first problem: {problems[0].sample_id}: {problems[0].reason}" if problems else ""
        raise ValueError(f"{source}: empty dataset, no loadable samples{detail}")
    return {"ids": ids, "labels": labels, "usages": usages, "problems": problems, "converted": converted,
            "skipped": skipped, "emotions": emotions}


def _assemble(source: Path, pixels: np.ndarray, ids: list[str], labels: list[int], usages: list[str],
              problems: list[LoadProblem], converted: int, skipped: list[LoadProblem] = (),
              emotions: tuple[str, ...] = EMOTIONS) -> Dataset:
    return Dataset(
        ids=np.array(ids, dtype=str),
        pixels=pixels,
        labels=np.array(labels, dtype=np.int8),
        usages=np.array(usages, dtype=str),
        source=str(source),
        problems=tuple(problems),
        converted=converted,
        skipped=tuple(skipped),
        emotions=emotions,
    )


def _write_cache(cache_file: Path, dataset: Dataset) -> None:
    """Everything but the pixels as a .npz beside the pixel store (a plain .npy a reader can memory-map).

    The store is written first (`build_pixel_store`) and the .npz last, each through an atomic rename: a
    reader that finds the .npz always finds whole pixels next to it.
    """
    meta = {"fingerprint": dataset.fingerprint, "converted": dataset.converted,
            "problems": [[p.sample_id, p.reason] for p in dataset.problems],
            "skipped": [[p.sample_id, p.reason] for p in dataset.skipped],
            **({"emotions": list(dataset.emotions)} if dataset.emotions != EMOTIONS else {})}  # FER-2013's stay as they were
    write_atomically(cache_file, lambda handle: np.savez(handle, ids=dataset.ids, labels=dataset.labels,
                                                         usages=dataset.usages, meta=np.array(json.dumps(meta))))


def _read_cache(cache_file: Path, source: Path) -> Dataset | None:
    """The cached Dataset, or None when the cache is damaged or not what this loader writes (then
    the source is decoded again). Only numpy arrays and JSON are read: nothing is unpickled.

    The content is checked against the fingerprint stored with it (one hash of ids, pixels, labels
    and usages, 0.13 s on FER-2013 against seconds to decode): a pixel file of the right shape but the
    wrong bytes (zeroed, half-written by a full disk) used to be trusted, and an export wrote blank
    images under the real data's fingerprint.
    """
    try:
        pixels = open_pixels(cache_file.with_suffix(".npy"))  # memory-mapped: paged in when used
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            return None
        with np.load(cache_file, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            dataset = Dataset(ids=stored["ids"], pixels=pixels, labels=stored["labels"],
                              usages=stored["usages"], source=str(source),
                              problems=tuple(LoadProblem(*p) for p in meta["problems"]),
                              converted=int(meta["converted"]),
                              skipped=tuple(LoadProblem(*p) for p in meta["skipped"]),
                              emotions=tuple(meta.get("emotions", EMOTIONS)))
        return dataset if dataset.fingerprint == meta["fingerprint"] else None
    except Exception:
        return None  # a damaged cache is only a cache: decode again
