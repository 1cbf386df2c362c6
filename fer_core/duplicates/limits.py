"""The near-duplicate settings every layer checks (audit, leaks, edits, training, mislabels): written once here.

No numpy or other heavy import, so the training config and the jobs table can use it cheaply.
"""

from __future__ import annotations

from numbers import Integral

# Chosen from the pair-distance histogram of FER-2013's pHashes (docs/METHODS.md, "Near-duplicate
# threshold"): up to 6 bits, pairs are almost all copies (shifted, re-encoded, re-cropped);
# from 8 bits on, the count grows fivefold per step, the signature of distinct look-alike faces.
DEFAULT_NEAR_THRESHOLD = 6
# The largest threshold whose hash-mode audit of FER-2013 takes seconds (benchmarks/bench_hash_threshold.py):
# at 10 bits, 15,555 pairs of distinct pHashes and a 5 s audit; at 12, 71,755 pairs chain 21,717 images into
# groups and the duplicate stage takes 21 s and 3 GB; at 16, 1.3 million pairs make one group of nearly
# every image (71 s, 12 GB). Pairs that far apart are look-alike faces, not copies (DEFAULT_NEAR_THRESHOLD).
MAX_NEAR_THRESHOLD = 10
NEAR_MODES = ("verified", "hash")  # pairs confirmed on pixels (default) | pHashes within the threshold


def check_near_threshold(bits: int) -> int:
    """The one check of a near-duplicate Hamming threshold: an integer 0..MAX_NEAR_THRESHOLD bits."""
    if isinstance(bits, bool) or not isinstance(bits, Integral) or not 0 <= bits <= MAX_NEAR_THRESHOLD:
        raise ValueError(f"near threshold {bits!r} out of range; expected 0..{MAX_NEAR_THRESHOLD} bits")
    return int(bits)


def check_near_mode(mode: str) -> str:
    """The one check of a near-duplicate mode name."""
    if mode not in NEAR_MODES:
        raise ValueError(f"unknown near mode {mode!r}; expected one of {', '.join(NEAR_MODES)}")
    return mode
