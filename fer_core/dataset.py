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
import errno
import hashlib
import io
import json
import os
import re
import stat as stat_mode
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .files import write_atomically
from .labels import EMOTIONS, IMAGE_SIDE, TEST_USAGES, TRAINING, USAGES
from .workspace import cache_dir

# Bump when decoding changes, so stale caches are not reused.
LOADER_VERSION = "2"
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
    skipped: tuple[LoadProblem, ...] = ()  # entries of an image tree that are not images, and why
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

    cache_key = hashlib.sha256("\n".join([LOADER_VERSION, str(source.resolve()), *key_parts]).encode()).hexdigest()[:24]
    cache_file = cache_dir(workspace) / f"pixels-{cache_key}.npz" if use_cache else None
    if cache_file is not None and cache_file.exists():
        cached = _read_cache(cache_file, source)
        if cached is not None:
            return cached

    dataset = _load_folders(source, scan, progress) if scan is not None else _load_csv(source, progress)
    if cache_file is not None:
        try:
            _write_cache(cache_file, dataset)
        except OSError:
            pass  # a read-only workspace: the data loaded fine, it is only not cached for next time
    return dataset


# ---------------------------------------------------------------------------------------------
# Image folders


@dataclass(frozen=True)
class FolderScan:
    """What an image tree holds: image files (id, usage from the folder, size, mtime_ns), entries
    that could not be read (symlink loops, unlistable folders), and entries that are not images."""

    files: list[tuple[str, str, int, int]]
    unreadable: list[LoadProblem]
    skipped: list[LoadProblem]

    def cache_key_parts(self) -> list[str]:
        """Everything the loaded Dataset depends on, so a cache is never reused after any of it changes."""
        return ([f"{rel}\t{size}\t{mtime}" for rel, _, size, mtime in self.files]
                + [f"unreadable\t{item.sample_id}\t{item.reason}" for item in self.unreadable]
                + [f"skipped\t{item.sample_id}\t{item.reason}" for item in self.skipped])


def scan_folders(root: Path) -> FolderScan:
    """List <root>/<split>/<emotion>/<image>: one stat per entry (the one that gives size and mtime).

    Only split folders (train, val, validation, test) and the emotion folders in them are read;
    other folders beside the splits are listed as skipped, plain files there (README, LICENSE)
    are not. Two split or emotion folders that are the same folder (a symlink `val -> train`)
    are refused: their images would be counted twice, under two usages or two emotions, and
    which one is meant is the user's call, not ours.
    """
    files: list[tuple[str, str, int, int]] = []
    unreadable: list[LoadProblem] = []
    skipped: list[LoadProblem] = []
    seen_folders: dict[tuple[int, int], str] = {}

    def is_folder(entry: os.DirEntry, rel: str) -> bool | None:
        """True for a folder not seen before, False for something else, None when that was recorded."""
        status = _stat_entry(entry, rel, unreadable, skipped)
        if status is None:
            return None
        if not stat_mode.S_ISDIR(status.st_mode):
            return False
        other = seen_folders.setdefault((status.st_dev, status.st_ino), rel)
        if other != rel:
            raise ValueError(f"{root}: {rel} is the same folder as {other} (a symlink), so its images would be "
                             f"counted twice; remove the link or make {rel} a folder of its own")
        return True

    split_dirs = []
    for entry in _list_entries(root, "", unreadable):
        name = entry.name.lower()
        if name in SPLIT_FOLDER_USAGE:
            found = is_folder(entry, entry.name)
            if found:
                split_dirs.append(entry)
            elif found is False:
                skipped.append(LoadProblem(entry.name, "named like a split folder, but not a folder"))
        elif _is_dir_quietly(entry):
            skipped.append(LoadProblem(entry.name, f"not a split folder (expected {', '.join(SPLIT_FOLDER_USAGE)})"))
        elif name.endswith(IMAGE_EXTENSIONS):
            skipped.append(LoadProblem(entry.name, "an image outside the split folders"))
    if not split_dirs:
        raise ValueError(f"{root}: no split folders; expected some of {', '.join(SPLIT_FOLDER_USAGE)}")

    for split in split_dirs:
        usage = SPLIT_FOLDER_USAGE[split.name.lower()]
        for emotion_dir in _list_entries(Path(split.path), split.name, unreadable):
            rel_folder = f"{split.name}/{emotion_dir.name}"
            found = is_folder(emotion_dir, rel_folder)
            if found is False:
                skipped.append(LoadProblem(rel_folder, "not in an emotion folder"))
            if not found:
                continue
            if emotion_dir.name.startswith("."):  # .ipynb_checkpoints and the like, not a misspelt emotion
                skipped.append(LoadProblem(rel_folder, "a hidden folder, not an emotion folder"))
                continue
            if emotion_dir.name.lower() not in EMOTIONS:
                raise ValueError(f"{emotion_dir.path}: unknown emotion folder {emotion_dir.name!r}; "
                                 f"expected one of {', '.join(EMOTIONS)}")
            for entry in _list_entries(Path(emotion_dir.path), rel_folder, unreadable):
                rel = f"{rel_folder}/{entry.name}"
                status = _stat_entry(entry, rel, unreadable, skipped)
                if status is None:
                    continue
                if stat_mode.S_ISDIR(status.st_mode):
                    skipped.append(LoadProblem(rel, "a folder, not an image file (sub-folders are not read)"))
                elif not stat_mode.S_ISREG(status.st_mode):
                    skipped.append(LoadProblem(rel, f"not a regular file ({_file_kind(status.st_mode)})"))
                elif not entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    skipped.append(LoadProblem(rel, f"not an image file name (expected {', '.join(IMAGE_EXTENSIONS)})"))
                else:
                    files.append((rel, usage, status.st_size, status.st_mtime_ns))
    if not files:
        detail = f"; first unreadable: {unreadable[0].sample_id}: {unreadable[0].reason}" if unreadable else ""
        raise ValueError(f"{root}: empty dataset, no .jpg/.jpeg/.png images under its split folders{detail}")
    return FolderScan(files, unreadable, skipped)


def _list_entries(folder: Path, rel: str, unreadable: list[LoadProblem]) -> list[os.DirEntry]:
    """A folder's entries by name; a folder that cannot be listed is recorded as unreadable (the root raises)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as error:
        if not rel:
            raise ValueError(f"{folder}: cannot list the folder: {error.strerror}") from None
        unreadable.append(LoadProblem(rel, f"cannot list the folder: {error.strerror}"))
        return []


def _stat_entry(entry: os.DirEntry, rel: str, unreadable: list[LoadProblem],
                skipped: list[LoadProblem]) -> os.stat_result | None:
    """The entry's stat, following a symlink (the only stat an image costs); None once the reason
    there is none is recorded: a loop or no access is unreadable, a dangling link is skipped."""
    try:
        return entry.stat()
    except OSError as error:
        if error.errno == errno.ENOENT:
            skipped.append(LoadProblem(rel, "dangling symlink (its target does not exist)"))
        elif error.errno == errno.ELOOP:
            unreadable.append(LoadProblem(rel, "symlink loop (the link leads back to itself)"))
        else:
            unreadable.append(LoadProblem(rel, f"cannot read: {error.strerror}"))
        return None


def _is_dir_quietly(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a looping link beside the splits is not data
        return False


def _file_kind(mode: int) -> str:
    for test, name in ((stat_mode.S_ISFIFO, "a FIFO"), (stat_mode.S_ISSOCK, "a socket"),
                       (stat_mode.S_ISCHR, "a character device"), (stat_mode.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


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
    if not data:
        raise ValueError("empty file (0 bytes)")
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
            results.append((None, False, f"unreadable image: {describe_decode_error(error)}"))
    return results


def describe_decode_error(error: Exception) -> str:
    """Why an image could not be read, in words (no object reprs, no server paths)."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not an image (or an unsupported format)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # "[Errno 13] Permission denied: '/full/path'" → "Permission denied"
    return str(error) or type(error).__name__


def _load_folders(root: Path, scan: FolderScan, progress: Progress | None) -> Dataset:
    files = scan.files
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

    ids, pixels, labels, usages, problems, converted = [], [], [], [], list(scan.unreadable), 0
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
    problems.sort(key=lambda problem: problem.sample_id)
    return _assemble(root, ids, pixels, labels, usages, problems, converted, scan.skipped)


# ---------------------------------------------------------------------------------------------
# CSV


def _load_csv(path: Path, progress: Progress | None) -> Dataset:
    """Parse a fer2013.csv-schema file line by line, so one malformed line (an unquoted comma, a
    byte that is not UTF-8) costs that row only. Sample ids count data rows from 0 (`row:<n>`);
    messages name the file line (the header is line 1)."""
    lines, undecodable = _read_csv_lines(path)
    header_index = next((index for index, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise ValueError(f"{path}: empty file, expected header emotion,pixels,Usage")
    header = [name.strip() for name in _split_csv_line(lines[header_index])]
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected header emotion,pixels,Usage")
    emotion_at, pixels_at, usage_at = (header.index(column) for column in CSV_COLUMNS)

    ids, pixels, labels, usages, problems = [], [], [], [], []
    expected = IMAGE_SIDE * IMAGE_SIDE
    row = -1
    for index in range(header_index + 1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue  # blank lines are not rows (as in pandas)
        row += 1
        sample_id = f"row:{row}"
        values = None
        reason = _undecodable_byte(line) if undecodable else ""
        if not reason:
            try:
                fields = _split_csv_line(line)
            except csv.Error as error:
                fields, reason = [], f"bad quoting: {error}"
        if not reason and len(fields) != len(header):
            reason = f"{len(fields)} fields, expected {len(header)} ({','.join(header)})"
        if not reason:
            emotion, usage = fields[emotion_at], fields[usage_at]
            reason = _csv_row_problem(emotion, usage)
        if not reason:
            values, reason = _parse_pixels(fields[pixels_at], expected)
        if reason:
            problems.append(LoadProblem(sample_id, f"{path.name} line {index + 1}: {reason}"))
            continue
        ids.append(sample_id)
        pixels.append(values.astype(np.uint8).tobytes())
        labels.append(int(emotion))
        usages.append(usage.strip())
        if progress and row % 2000 == 0:
            progress("parse", index, len(lines))
    if progress:
        progress("parse", len(lines), len(lines))
    return _assemble(path, ids, pixels, labels, usages, problems, 0)


def _read_csv_lines(path: Path) -> tuple[list[str], bool]:
    """The file's lines (a BOM, CR-LF endings removed) and whether some byte was not UTF-8; such
    bytes are kept as surrogates (`surrogateescape`) so `_undecodable_byte` can name their row."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error.strerror}") from None
    try:
        text, undecodable = raw.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        text, undecodable = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape"), True
    lines = text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines], undecodable


UNDECODABLE = re.compile("[\udc80-\udcff]")


def _undecodable_byte(line: str) -> str:
    found = UNDECODABLE.search(line)
    return f"not UTF-8 text (byte 0x{ord(found.group()) - 0xDC00:02x})" if found else ""


def _split_csv_line(line: str) -> list[str]:
    """Fields of one CSV line; the csv module only when there are quotes (FER rows have none)."""
    if '"' not in line:
        return line.split(",")
    return next(csv.reader([line], strict=True))


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
              problems: list[LoadProblem], converted: int, skipped: list[LoadProblem] = ()) -> Dataset:
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
        skipped=tuple(skipped),
    )


def _write_cache(cache_file: Path, dataset: Dataset) -> None:
    """Pixels as a plain .npy beside the .npz of everything else, so a reader can memory-map them.

    The pixels are written first and the .npz last, each through an atomic rename: a reader that
    finds the .npz always finds whole pixels next to it.
    """
    meta = {"fingerprint": dataset.fingerprint, "converted": dataset.converted,
            "problems": [[p.sample_id, p.reason] for p in dataset.problems],
            "skipped": [[p.sample_id, p.reason] for p in dataset.skipped]}
    for target, write in ((cache_file.with_suffix(".npy"), lambda handle: np.save(handle, dataset.pixels)),
                          (cache_file, lambda handle: np.savez(handle, ids=dataset.ids, labels=dataset.labels,
                                                               usages=dataset.usages, meta=np.array(json.dumps(meta))))):
        write_atomically(target, write)


def _read_cache(cache_file: Path, source: Path) -> Dataset | None:
    """The cached Dataset, or None when the cache is damaged or not what this loader writes (then
    the source is decoded again). Only numpy arrays and JSON are read: nothing is unpickled."""
    try:
        pixels = np.load(cache_file.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)  # paged in when used
        if pixels.dtype != np.uint8 or pixels.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
            return None
        with np.load(cache_file, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            return Dataset(ids=stored["ids"], pixels=pixels, labels=stored["labels"],
                           usages=stored["usages"], source=str(source), fingerprint=meta["fingerprint"],
                           problems=tuple(LoadProblem(*p) for p in meta["problems"]),
                           converted=int(meta["converted"]),
                           skipped=tuple(LoadProblem(*p) for p in meta["skipped"]))
    except Exception:
        return None  # a damaged cache is only a cache: decode again
