"""Image fingerprints for duplicate search: exact digests, 64-bit pHash, and a Hamming-radius index.

`phash_batch` gives, as uint64, exactly the bits of `imagehash.phash` (first bit = most significant,
the order of `str(imagehash.phash(image))`), but does the DCT for all images in one batched call.
`find_close_pairs` finds every pair within a Hamming radius: by multi-index hashing while its key sets
are few (small radii), by a blocked scan of all pairs where that is cheaper (large radii), and refuses a
radius that links more pairs than a near-duplicate search can use (`MAX_CLOSE_PAIRS`).
"""

from __future__ import annotations

import hashlib
from itertools import combinations
from math import comb, log2

import numpy as np

from fer_core.dataset.pixel_store import iterate_chunks

PHASH_SIZE = 8
PHASH_HIGHFREQ_FACTOR = 4
HASH_BITS = 64
# One key set of the multi-index costs about what comparing each hash with 30 others costs in the scan, so
# the scan of all n²/2 pairs is cheaper once the key sets outnumber n / 30 (FER-2013's 33,911 distinct
# pHashes: the index wins at 10 bits, 1,001 key sets, the scan at 12, 1,820; benchmarks/bench_hash_threshold.py).
SCAN_PAIRS_PER_KEY_SET = 30
SCAN_BLOCK_ELEMENTS = 1 << 22  # XORs held at once by the scan (32 MiB of uint64)
# A guard for radii beyond the threshold's bound (a library caller's own): pairs by the million are look-alike
# faces, not copies, and a list that long is refused rather than built (FER-2013: 1.3 million at 16 bits,
# 12.8 million at 20, 71 million at 24).
MAX_CLOSE_PAIRS = 5_000_000


def exact_digests(pixels: np.ndarray, chunk_size: int = 8192) -> np.ndarray:
    """A 128-bit digest of each image's pixel bytes (equal digests ⇔ identical pixels)."""
    digests = np.empty(len(pixels), dtype="S16")
    for start, images in iterate_chunks(pixels, chunk_size):
        flat = np.ascontiguousarray(images).reshape(len(images), -1)
        digests[start:start + len(flat)] = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]
    return digests


def phash_batch(pixels: np.ndarray, chunk_size: int = 8192) -> np.ndarray:
    """pHash of each N×H×W uint8 grayscale image, bit-identical to `imagehash.phash`, as uint64."""
    return phash_and_mirror_batch(pixels, chunk_size)[0]


def phash_and_mirror_batch(pixels: np.ndarray, chunk_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(pHash of each image, pHash of its left–right mirror), both bit-identical to `imagehash.phash`.

    The mirror's hash costs nothing extra: mirroring commutes with PIL's symmetric resize, and
    the DCT of a reversed row is the DCT of the row with odd frequencies negated.
    """
    parts = [_phash_chunk(np.asarray(images, dtype=np.uint8)) for _, images in iterate_chunks(pixels, chunk_size)]
    if not parts:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    return np.concatenate([part[0] for part in parts]), np.concatenate([part[1] for part in parts])


def resize_like_pil(images: np.ndarray, side: int) -> np.ndarray:
    """PIL LANCZOS resize of N×H×W images to side×side, done as two PIL calls for the whole batch.

    PIL resizes in two separable passes (horizontal, then vertical), rounding to uint8 between
    them. Stacking the images vertically makes the horizontal pass one call; laying them side
    by side makes the vertical pass another. Each output pixel sees exactly the input pixels and
    weights of a per-image resize, so the result is identical, at a fraction of the call cost.
    """
    from PIL import Image

    count, height, width = images.shape
    tall = Image.fromarray(np.ascontiguousarray(images).reshape(count * height, width), mode="L")
    narrowed = np.asarray(tall.resize((side, count * height), Image.Resampling.LANCZOS)).reshape(count, height, side)
    wide = Image.fromarray(np.ascontiguousarray(narrowed.transpose(1, 0, 2)).reshape(height, count * side), mode="L")
    shortened = np.asarray(wide.resize((count * side, side), Image.Resampling.LANCZOS))
    return shortened.reshape(side, count, side).transpose(1, 0, 2)


def _phash_chunk(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import scipy.fftpack

    resized = resize_like_pil(pixels, PHASH_SIZE * PHASH_HIGHFREQ_FACTOR)
    # Only the 8×8 low-frequency corner is used: transform the rows, keep 8, then the columns.
    rows = scipy.fftpack.dct(resized, axis=1)[:, :PHASH_SIZE, :]
    low = scipy.fftpack.dct(rows, axis=2)[:, :, :PHASH_SIZE]
    odd_horizontal = np.where(np.arange(PHASH_SIZE) % 2 == 1, -1.0, 1.0)
    return _bits_above_median(low), _bits_above_median(low * odd_horizontal)


def _bits_above_median(low: np.ndarray) -> np.ndarray:
    low = low.reshape(len(low), -1)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def hamming_distance(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Number of differing bits between 64-bit hashes (element-wise, broadcasting)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def chunk_plan(max_distance: int, count: int) -> tuple[int, int]:
    """(chunks, chunks that must agree) for the index over `count` hashes.

    Split 64 bits into m chunks; two hashes within distance t differ in at most t chunks, so they
    agree exactly on at least m - t of them (pigeonhole). Each set of m - t chunks is one key, and
    costs a sort of the hashes plus a check of the pairs sharing a key (about count / 2^key bits per
    hash); the plan is the cheapest, C(m, m - t) × (1 + count / 2^bits). Keys of fewer bits than
    log2(count) crowd the buckets, more key sets cost sorts: at a million hashes and 8 bits, 495 key
    sets of 20 bits (a key per hash wanted 3,003 key sets of 24 bits: four times as long).
    """
    best = None
    for chunks in range(max_distance + 1, HASH_BITS + 1):
        agree = chunks - max_distance
        bits = (HASH_BITS // chunks) * agree
        if bits < 8:
            continue
        cost = comb(chunks, agree) * (1 + count / 2.0 ** bits)
        if best is None or cost < best[0]:
            best = (cost, chunks, agree)
    if best is None:  # very large radius: fall back to single-bit chunks (still exact)
        return HASH_BITS, HASH_BITS - max_distance
    return best[1], best[2]


def _chunk_masks(chunks: int) -> list[int]:
    bounds = np.linspace(0, HASH_BITS, chunks + 1).astype(int)
    return [((1 << (end - start)) - 1) << start for start, end in zip(bounds[:-1], bounds[1:])]


def _pairs_in_equal_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, of positions whose keys are equal."""
    order = np.argsort(keys)
    sorted_keys = keys[order]
    left, right = [], []
    offset = 1
    same = sorted_keys[offset:] == sorted_keys[:-offset]
    while same.any():
        starts = np.flatnonzero(same)
        left.append(order[starts])
        right.append(order[starts + offset])
        offset += 1
        if offset >= len(keys):
            break
        # a pair at distance `offset` in sorted order exists only inside a run of equal keys
        same = same[:-1] & (sorted_keys[offset:] == sorted_keys[:-offset])
    if not left:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    i, j = np.concatenate(left), np.concatenate(right)
    return np.minimum(i, j), np.maximum(i, j)


def find_close_pairs(unique_hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (a < b) of *distinct* hashes within `max_distance` bits, as indices, with distances.

    Multi-index hashing while its key sets are few (see `_close_pairs_by_index`), else a blocked scan
    of all pairs: the index's key sets grow as C(m, m - t), 735,471 at 16 bits (54 minutes on
    FER-2013), while the scan costs the same at any radius (seconds). ValueError when more than
    `MAX_CLOSE_PAIRS` pairs lie within the radius (a threshold near 32 bits pairs nearly everything).
    """
    unique_hashes = np.asarray(unique_hashes, dtype=np.uint64)
    if max_distance <= 0 or len(unique_hashes) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    chunks, agree = chunk_plan(max_distance, len(unique_hashes))
    if comb(chunks, agree) * SCAN_PAIRS_PER_KEY_SET > len(unique_hashes):
        a, b = _close_pairs_by_scan(unique_hashes, max_distance)
    else:
        a, b = _close_pairs_by_index(unique_hashes, max_distance, chunks, agree)
        _check_pair_count(len(a), max_distance)
    return a, b, hamming_distance(unique_hashes[a], unique_hashes[b]).astype(np.int64)


def _close_pairs_by_index(unique_hashes: np.ndarray, max_distance: int, chunks: int,
                          agree: int) -> tuple[np.ndarray, np.ndarray]:
    """Multi-index hashing: for each set of chunks that `chunk_plan` says two close hashes must
    share, sort the hashes by those bits, take pairs inside runs of equal keys as candidates,
    and keep the candidates whose full distance is within the radius. Nothing is all-pairs.
    """
    found_a, found_b = [], []
    for chosen in combinations(_chunk_masks(chunks), agree):
        a, b = _pairs_in_equal_runs(unique_hashes & np.uint64(sum(chosen)))
        close = hamming_distance(unique_hashes[a], unique_hashes[b]) <= max_distance
        found_a.append(a[close])
        found_b.append(b[close])
    # a close pair agrees on several key sets: keep it once
    count = len(unique_hashes)
    codes = np.unique(np.concatenate(found_a).astype(np.int64) * count + np.concatenate(found_b))
    return codes // count, codes % count


def _close_pairs_by_scan(unique_hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs, a block of rows at a time against every later hash (XOR, then `np.bitwise_count`);
    stops as soon as the pairs found pass `MAX_CLOSE_PAIRS`, so a hopeless radius fails fast."""
    count = len(unique_hashes)
    block = max(1, SCAN_BLOCK_ELEMENTS // count)
    found_a, found_b, found = [], [], 0
    for start in range(0, count - 1, block):
        rows = unique_hashes[start:start + block]
        distances = np.bitwise_count(rows[:, None] ^ unique_hashes[None, start + 1:])
        row, column = np.nonzero(distances <= max_distance)
        later = column >= row  # column j is hash start + 1 + j: keep the pairs above the diagonal
        found_a.append(row[later] + start)
        found_b.append(column[later] + start + 1)
        found += int(later.sum())
        _check_pair_count(found, max_distance)
    return np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)


def _check_pair_count(found: int, max_distance: int) -> None:
    if found > MAX_CLOSE_PAIRS:
        raise ValueError(f"near threshold {max_distance} bits links more than {MAX_CLOSE_PAIRS:,} pairs of distinct "
                         f"pHashes (at that distance unrelated faces match); choose a lower near threshold")


def find_near_links(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) of rows within `max_distance` that together connect every near-duplicate group.

    Rows with an identical hash are linked to the first row with that hash, and close distinct
    hashes through those first rows, so a clump of k copies costs k links, not k²: enough for
    connected components, not a list of every close pair (see `duplicates.find_leaks` for that).
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    unique, first_row, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    copies = np.flatnonzero(first_row[inverse] != np.arange(len(hashes)))
    a, b, _ = find_close_pairs(unique, max_distance)
    i = np.concatenate([first_row[inverse[copies]], first_row[a]]).astype(np.int64)
    j = np.concatenate([copies, first_row[b]]).astype(np.int64)
    i, j = np.minimum(i, j), np.maximum(i, j)
    return i, j, hamming_distance(hashes[i], hashes[j]).astype(np.int64)
