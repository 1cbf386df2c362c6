"""The pixel store: every image's 48×48 grey levels in one uint8 `.npy` file in the workspace cache.

Decoding appends to it chunk by chunk (`build_pixel_store`), so the images are never all in memory
while the store is made (the loader once kept each image as bytes, then joined and copied them: three
copies, 7 KB an image), and readers memory-map it (`open_pixels`): a million images are 2.3 GB on
disk, paged in when read and dropped by the kernel when memory is short. The file is written under a
temporary name and renamed when whole (a crash leaves no half store); where it cannot be written (a
read-only workspace, a full disk) the images are kept in memory instead and the load goes on.

`decode_chunk` is the decoding step itself: a pure function from a list of paths to their pixels and
problems, so it can run in local worker processes or on Ray workers.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from fer_core.dataset.sources import decode_image, describe_decode_error
from fer_core.files import remove_stale_temporaries, write_atomically
from fer_core.labels import IMAGE_SIDE

IMAGE_BYTES = IMAGE_SIDE * IMAGE_SIDE
HEADER_BYTES = 128  # a fixed .npy header (version 1.0), rewritten in place with the final count
Result = TypeVar("Result")
Append = Callable[[np.ndarray], None]


@dataclass(frozen=True)
class DecodedChunk:
    """A chunk of image files decoded: the pixels of those that decoded (in order), and per file whether
    it had to be converted and why it could not be read ("" when it could)."""

    pixels: np.ndarray  # k×48×48 uint8, k = files with no reason
    converted: np.ndarray  # one bool per file
    reasons: tuple[str, ...]  # one per file


def decode_chunk(paths: list[str]) -> DecodedChunk:
    """Decode a chunk of image files (a worker's unit: pure, picklable in and out)."""
    pixels = np.empty((len(paths), IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    converted = np.zeros(len(paths), bool)
    reasons, decoded = [], 0
    for index, path in enumerate(paths):
        try:
            with open(path, "rb") as handle:
                pixels[decoded], converted[index] = decode_image(handle.read())
            decoded += 1
            reasons.append("")
        except Exception as error:  # any decoder failure is reported per image, never a crash
            reasons.append(f"unreadable image: {describe_decode_error(error)}")
    return DecodedChunk(pixels[:decoded].copy() if decoded < len(paths) else pixels, converted, tuple(reasons))


def npy_header(count: int) -> bytes:
    """The .npy header of a count×48×48 uint8 array, padded to HEADER_BYTES (so it can be rewritten in place)."""
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({count}, {IMAGE_SIDE}, {IMAGE_SIDE}), }}"
    magic = b"\x93NUMPY\x01\x00"
    body = text.ljust(HEADER_BYTES - len(magic) - 2 - 1) + "\n"
    return magic + struct.pack("<H", len(body)) + body.encode("latin1")


class _StoreRefused(Exception):
    """The disk refused a write to the store (carried out of `write_atomically` untranslated)."""


def build_pixel_store(path: Path | None,
                      fill: Callable[[Append], Result]) -> tuple[np.ndarray, Result, bool]:
    """Run `fill(append)`, which decodes and calls `append(images)` for each chunk in order; returns the
    images (read-only), what `fill` returned, and whether they are stored at `path`.

    With a `path`, images go straight to the file (a temporary sibling, renamed when whole) and come back
    memory-mapped. Without one, or when the disk refuses the file (read-only, full), they are kept in
    memory; a refusal after decoding began costs one more decode. An error of `fill` itself (an empty
    dataset) propagates and leaves no file.
    """
    if path is not None:
        remove_stale_temporaries(path)  # a store a killed load left half-written
        stage = {"filling": False}

        def write(handle) -> None:
            count = 0

            def append(images: np.ndarray) -> None:
                nonlocal count
                images = _checked(images)
                try:
                    handle.write(images.reshape(-1).data)
                except OSError as error:
                    raise _StoreRefused() from error
                count += len(images)

            handle.write(npy_header(0))
            stage["filling"] = True
            stage["result"] = fill(append)
            stage["filling"] = False
            try:
                handle.seek(0)
                handle.write(npy_header(count))
            except OSError as error:
                raise _StoreRefused() from error

        try:
            write_atomically(path, write)
            return open_pixels(path), stage["result"], True
        except _StoreRefused:
            pass  # the disk refused the store midway: decode again into memory
        except (OSError, ValueError):
            if stage["filling"]:
                raise  # fill's own error
            # the store could not be created or renamed (a read-only workspace): keep the images in memory
    return (*_fill_memory(fill), False)


def _fill_memory(fill: Callable[[Append], Result]) -> tuple[np.ndarray, Result]:
    chunks = [np.empty((0, IMAGE_SIDE, IMAGE_SIDE), np.uint8)]
    result = fill(lambda images: chunks.append(_checked(images).copy()))
    pixels = np.concatenate(chunks)
    pixels.flags.writeable = False
    return pixels, result


def _checked(images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise TypeError(f"pixel store takes k×{IMAGE_SIDE}×{IMAGE_SIDE} uint8 images, "
                        f"not {images.dtype} {images.shape}")
    return np.ascontiguousarray(images)


def open_pixels(path: Path) -> np.ndarray:
    """The store at `path`, memory-mapped read-only (ValueError-free: numpy's own errors on a damaged file)."""
    return np.load(path, mmap_mode="r", allow_pickle=False)


def release_pages(pixels: np.ndarray, start: int = 0, stop: int | None = None) -> None:
    """Let go of the memory-mapped pages of images [start, stop) that this process has read (they stay in
    the kernel's file cache, so reading them again is cheap). A sweep over a million images would
    otherwise keep all 2.3 GB resident in the process; no-op for pixels in memory."""
    handle = getattr(pixels, "_mmap", None)
    if handle is None or not len(pixels):
        return
    stop = len(pixels) if stop is None else min(stop, len(pixels))
    if stop <= start:
        return
    base = np.frombuffer(handle, np.uint8).ctypes.data
    first = pixels[start:stop].ctypes.data - base
    last = first + (stop - start) * pixels[0].nbytes
    page = mmap.PAGESIZE
    first -= first % page
    try:
        handle.madvise(mmap.MADV_DONTNEED, first, last - first)
    except (OSError, ValueError):
        pass  # only a hint


def return_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`). numpy's temporaries of a few
    MB come from the heap, which keeps them once freed (570 MB after the pair search on 574,192 images), so
    the next stage's peak would stand on top of them. No-op where the C library is not glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def iterate_chunks(pixels: np.ndarray, size: int, rows: np.ndarray | None = None):
    """(start, images) for consecutive chunks of `size` images (of the given ascending `rows` only, when
    given: then `start` counts rows), each chunk's mapped pages let go after use (`release_pages`), so a
    sweep over the store holds one chunk at a time."""
    count = len(pixels) if rows is None else len(rows)
    for start in range(0, count, size):
        if rows is None:
            yield start, pixels[start:start + size]
            release_pages(pixels, start, start + size)
        else:
            chosen = rows[start:start + size]
            yield start, pixels[chosen]
            release_pages(pixels, int(chosen[0]), int(chosen[-1]) + 1)
