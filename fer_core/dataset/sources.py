"""Read FER sources at the file level: list an image tree, decode one image, split CSV lines.

Everything here works on one entry, file or line and reports what it cannot read as a
`LoadProblem` (id and reason); `fer_core.dataset.loading` assembles the results into a `Dataset`.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import re
import stat as stat_mode
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.labels import EMOTIONS, IMAGE_SIDE, TRAINING, USAGES

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Split folder names (any case) → usage: FER-2013's train/test, and the train/val/test of most other datasets.
SPLIT_FOLDER_USAGE = {"train": TRAINING, "training": TRAINING,
                      "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest", "publictest": "PublicTest",
                      "test": "PrivateTest", "privatetest": "PrivateTest"}
FILENAME_PREFIX_USAGE = {f"{usage}_": usage for usage in USAGES}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
# The largest source image decoded: 25 megapixels, a 24 MP camera frame (6000×4000) and more. FER images are
# 48×48; a bigger face crop is only shrunk to 48×48, while the decoders allocate the whole image first (a
# 30000×30000 colour JPEG of 14 MB took the audit to 5.4 GB), so the size is read from the header first.
MAX_SOURCE_PIXELS = 25_000_000


@dataclass(frozen=True)
class LoadProblem:
    """One image or CSV row that could not be loaded, and why."""

    sample_id: str
    reason: str


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

    Only split folders (`SPLIT_FOLDER_USAGE`) and the emotion folders in them are read (any name: the
    label set comes from them, `fer_core.labels.label_set_of_names`);
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
    files, unreadable, skipped = _set_apart_undecodable_names(files, unreadable, skipped)
    if not files:
        detail = f"; first unreadable: {unreadable[0].sample_id}: {unreadable[0].reason}" if unreadable else ""
        raise ValueError(f"{root}: empty dataset, no .jpg/.jpeg/.png images under its split folders{detail}")
    return FolderScan(files, unreadable, skipped)


UNDECODABLE_NAME = ("file name is not UTF-8 (its bytes shown as \\x escapes); sample ids are UTF-8 text "
                    "(summary, database, exports), so rename the file to load it")


def printable_name(name: str) -> str:
    """A file name as UTF-8 text: bytes that are not UTF-8 (kept by Python as surrogates) as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _set_apart_undecodable_names(files: list[tuple[str, str, int, int]], unreadable: list[LoadProblem],
                                 skipped: list[LoadProblem]) -> tuple[list, list[LoadProblem], list[LoadProblem]]:
    """Images whose path is not UTF-8 (b'\\xff' in a Latin-1 name) listed as unreadable under a printable
    name, and every listed name made printable: one such name used to fail the whole load when the
    ids were encoded, naming no file."""
    kept = [item for item in files if _is_utf8(item[0])]
    unreadable = unreadable + [LoadProblem(rel, UNDECODABLE_NAME) for rel, *_ in files if not _is_utf8(rel)]
    return (kept, [LoadProblem(printable_name(p.sample_id), p.reason) for p in unreadable],
            [LoadProblem(printable_name(p.sample_id), p.reason) for p in skipped])


def _is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


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


JPEG_END = b"\xff\xd9"


def decode_image(data: bytes, use_opencv: bool = True) -> tuple[np.ndarray, bool]:
    """Decode image bytes to 48×48 uint8 grayscale; the flag says whether it had to be converted.

    The header is read first (PIL's `Image.open` decodes nothing) and an image over
    `MAX_SOURCE_PIXELS` is refused before any decoder allocates it. Complete 48×48 grayscale
    JPEGs (all of FER-2013) then go through OpenCV's decoder, pixel-identical to PIL's (same
    libjpeg-turbo; tested) and faster: 37 µs of CPU an image with the header read, PIL 82 µs. Everything else, and anything OpenCV would
    half-decode (a JPEG without its end marker is truncated), goes through PIL, which converts
    what needs converting and raises a clear error on what it cannot read (`use_opencv=False`: PIL
    only, the reference the OpenCV path is tested against).
    """
    from PIL import Image

    if not data:
        raise ValueError("empty file (0 bytes)")
    with warnings.catch_warnings():  # PIL warns of (and above 179 MP refuses) a bomb; the limit below is lower
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise ValueError(f"too large to decode (over {MAX_SOURCE_PIXELS:,} pixels)") from None
    with image:
        width, height = image.size
        if width * height > MAX_SOURCE_PIXELS:
            raise ValueError(f"too large to decode: {width}×{height} pixels, over {MAX_SOURCE_PIXELS:,}; "
                             f"FER images are {IMAGE_SIDE}×{IMAGE_SIDE}")
        if (use_opencv and image.format == "JPEG" and image.mode == "L" and image.size == (IMAGE_SIDE, IMAGE_SIDE)
                and data.rstrip(b"\x00").endswith(JPEG_END)):
            import cv2

            pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
            if pixels is not None and pixels.shape == (IMAGE_SIDE, IMAGE_SIDE) and pixels.dtype == np.uint8:
                return pixels, False
        return _as_grayscale(image)


def _as_grayscale(image) -> tuple[np.ndarray, bool]:
    """An opened PIL image as 48×48 uint8 grayscale, and whether it had to be converted.

    Colour becomes luma (ITU-R 601), transparent pixels white (as a viewer shows them), a camera's EXIF
    rotation is applied, and an image that is not square is cut to its centre square before it is
    shrunk, so a face keeps its proportions (a 640×490 frame squeezed to 48×48 came out a third too narrow).
    """
    from PIL import Image, ImageOps

    image.load()
    converted = image.mode != "L" or image.size != (IMAGE_SIDE, IMAGE_SIDE)
    if image.getexif().get(ORIENTATION_TAG, 1) != 1:
        image, converted = ImageOps.exif_transpose(image), True
    if image.mode.startswith("I"):
        image = Image.fromarray(sixteen_to_eight_bits(np.asarray(image)))
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA")).convert("L")
    elif image.mode != "L":
        image = image.convert("L")
    if image.size != (IMAGE_SIDE, IMAGE_SIDE):
        image = ImageOps.fit(image, (IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8), converted


ORIENTATION_TAG = 0x0112  # EXIF: how the camera was held


def sixteen_to_eight_bits(values: np.ndarray) -> np.ndarray:
    """16-bit grayscale (PIL mode I;16 or I: a 16-bit PNG) scaled to 8 bits as v / 257, rounded: 65535 → 255.

    PIL's `convert("L")` clips instead (every value above 255 becomes white: a face of mean 79 came out
    253). 16-bit colour needs nothing: PIL already opens it as 8-bit RGB by its high bytes.
    """
    return np.rint(np.clip(values, 0, 65535) / 257).astype(np.uint8)


def decode_files(paths: list[str]) -> list[tuple[bytes | None, bool, str]]:
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



# ---------------------------------------------------------------------------------------------
# CSV lines


def read_csv_lines(path: Path) -> tuple[list[str], bool]:
    """The file's lines (a BOM, CR-LF endings removed) and whether some byte was not UTF-8; such
    bytes are kept as surrogates (`surrogateescape`) so `undecodable_byte` can name their row."""
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


def undecodable_byte(line: str) -> str:
    found = UNDECODABLE.search(line)
    return f"not UTF-8 text (byte 0x{ord(found.group()) - 0xDC00:02x})" if found else ""


def split_csv_line(line: str) -> list[str]:
    """Fields of one CSV line; the csv module only when there are quotes (FER rows have none)."""
    if '"' not in line:
        return line.split(",")
    return next(csv.reader([line], strict=True))


CSV_LABEL = re.compile(r"[0-9]{1,3}")


def csv_row_problem(emotion: str, usage: str) -> str:
    """What is wrong with a row's emotion or Usage field ("" when nothing); the label's range is the
    label set's business (`csv_label_problem`), known once every row is read."""
    if not CSV_LABEL.fullmatch(emotion.strip()):
        return f"unknown emotion {emotion!r}; expected an integer label (0..6: {', '.join(EMOTIONS)}; 7 and up: more classes)"
    if usage.strip() not in USAGES:
        return f"unknown Usage {usage!r}; expected one of {', '.join(USAGES)}"
    return ""


def parse_pixels(text: str, expected: int) -> tuple[np.ndarray | None, str]:
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
