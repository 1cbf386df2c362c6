"""The near-duplicate threshold is bounded to what finishes in seconds, and the pair search never hangs.

Guards issue 22: `--near-threshold 32` (then the accepted maximum) never ended on 266 images, and 16
(then the slider's maximum) took 54 minutes on FER-2013 in the multi-index search.
"""

import numpy as np
import pytest

from fer_core.duplicates import hashing
from fer_core.duplicates.hashing import find_close_pairs, hamming_distance
from fer_core.duplicates.limits import MAX_NEAR_THRESHOLD, check_near_threshold


def planted_hashes(count: int, seed: int, max_flips: int) -> np.ndarray:
    """Distinct random 64-bit hashes, a third of them a few flipped bits away from another."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, count, dtype=np.int64).astype(np.uint64) ^ (
        rng.integers(0, 2, count).astype(np.uint64) << np.uint64(63))
    flips = [np.bitwise_or.reduce(np.uint64(1) << rng.choice(64, k, replace=False).astype(np.uint64))
             for k in rng.integers(1, max_flips + 1, count // 3)]
    return np.unique(np.concatenate([base, base[:count // 3] ^ np.array(flips, dtype=np.uint64)]))


def brute_force_pairs(hashes: np.ndarray, radius: int) -> list[tuple[int, int]]:
    distances = hamming_distance(hashes[:, None], hashes[None, :])
    return list(zip(*(side.tolist() for side in np.nonzero(np.triu(distances <= radius, 1)))))


def test_thresholds_above_the_bound_are_refused_in_one_line():
    """The old bound (32) accepted thresholds whose search or grouping never ended on real data."""
    assert check_near_threshold(MAX_NEAR_THRESHOLD) == MAX_NEAR_THRESHOLD
    with pytest.raises(ValueError, match=rf"^near threshold 12 out of range; expected 0\.\.{MAX_NEAR_THRESHOLD} bits$"):
        check_near_threshold(12)
    assert MAX_NEAR_THRESHOLD <= 10  # FER-2013's hash-mode audit at 12 bits: 21 s, 3 GB (limits.py)


@pytest.mark.timeout(60)
def test_the_largest_accepted_threshold_finds_exactly_the_brute_force_pairs():
    hashes = planted_hashes(400, seed=3, max_flips=MAX_NEAR_THRESHOLD + 2)
    a, b, distances = find_close_pairs(hashes, MAX_NEAR_THRESHOLD)
    assert sorted(zip(a.tolist(), b.tolist())) == brute_force_pairs(hashes, MAX_NEAR_THRESHOLD)
    assert (distances == hamming_distance(hashes[a], hashes[b])).all() and len(a) > 100


@pytest.mark.timeout(60)
@pytest.mark.parametrize("radius", [16, 32])
def test_a_radius_the_index_cannot_serve_is_scanned_not_left_running(radius):
    """Radii far beyond the threshold (a library caller's choice) go to the blocked scan: the same pairs.
    The multi-index would have needed 10^5 to 10^12 key sets here."""
    hashes = planted_hashes(300, seed=radius, max_flips=radius)
    a, b, _ = find_close_pairs(hashes, radius)
    assert sorted(zip(a.tolist(), b.tolist())) == brute_force_pairs(hashes, radius)


@pytest.mark.parametrize("radius", [4, 32])  # the index path and the scan path
def test_a_radius_that_pairs_too_many_hashes_is_refused_not_listed(monkeypatch, radius):
    """Past `MAX_CLOSE_PAIRS` pairs, near copies are look-alikes and the grouping after them would
    chain everything into one group (16 bits on FER-2013: 1.3 million pairs, 12 GB): one line instead."""
    monkeypatch.setattr(hashing, "MAX_CLOSE_PAIRS", 50)
    hashes = planted_hashes(300, seed=5, max_flips=2)  # 100 planted pairs within 2 bits
    with pytest.raises(ValueError, match=rf"^near threshold {radius} bits links more than 50 pairs of distinct pHashes"):
        find_close_pairs(hashes, radius)
