"""Duplicate groups (exact and near), their label conflicts and train–test leaks.

Groups are connected components: an image is in a near group with every image it reaches
through a chain of pairs within the Hamming threshold. Exact copies have identical pixels and
so identical pHashes, which puts every exact group inside a near group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .dataset import Dataset
from .hashing import exact_digests, find_close_pairs, find_near_links, hamming_distance, phash_batch
from .labels import EMOTIONS, TRAINING

# Chosen from the pair-distance histogram of FER-2013's pHashes (README, "Near-duplicate
# threshold"): up to 6 bits, pairs are almost all copies (shifted, re-encoded, re-cropped);
# from 8 bits on, the count grows fivefold per step, the signature of distinct look-alike faces.
DEFAULT_NEAR_THRESHOLD = 6
# Two unrelated 64-bit pHashes differ in 32 bits on average: beyond that, "near" means nothing.
MAX_NEAR_THRESHOLD = 32
NO_GROUP = -1


def check_near_threshold(bits: int) -> int:
    """The one check of a near-duplicate Hamming threshold (audit, leaks, edits, training): 0..32 bits."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 0 <= bits <= MAX_NEAR_THRESHOLD:
        raise ValueError(f"near threshold {bits!r} out of range; expected 0..{MAX_NEAR_THRESHOLD} bits")
    return int(bits)


@dataclass(frozen=True)
class Leaks:
    """Every direct pair of a Training row and a PublicTest/PrivateTest row within the threshold."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    distances: np.ndarray

    def leaked_test_rows(self) -> np.ndarray:
        return np.unique(self.test_rows)

    def training_copy_rows(self) -> np.ndarray:
        return np.unique(self.train_rows)


def components_from_pairs(count: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Group id per row from linking pairs; rows in no pair get NO_GROUP.

    Groups are numbered 0.. in the order of their first row, so ids are stable for the same data.
    """
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(count, count))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    grouped = sizes[component] > 1
    group_of = np.full(count, NO_GROUP, dtype=np.int64)
    if grouped.any():
        # renumber by first appearance
        _, first_row = np.unique(component[grouped], return_index=True)
        order = np.argsort(first_row)
        renumber = np.empty(len(order), dtype=np.int64)
        renumber[order] = np.arange(len(order))
        _, dense = np.unique(component[grouped], return_inverse=True)
        group_of[grouped] = renumber[dense]
    return group_of


def group_exact(pixels: np.ndarray, digests: np.ndarray | None = None) -> np.ndarray:
    """Group id per image for identical pixels (NO_GROUP for images with no copy)."""
    digests = exact_digests(pixels) if digests is None else digests
    _, first_row, inverse = np.unique(digests, return_index=True, return_inverse=True)
    rows = np.arange(len(digests))
    copies = first_row[inverse] != rows
    return components_from_pairs(len(digests), first_row[inverse[copies]], rows[copies])


def group_near(hashes: np.ndarray, max_hamming_distance: int) -> np.ndarray:
    """Group id per image for chains of pHashes within `max_hamming_distance` bits."""
    i, j, _ = find_near_links(hashes, check_near_threshold(max_hamming_distance))
    return components_from_pairs(len(hashes), i, j)


def describe_groups(dataset: Dataset, group_of: np.ndarray, hashes: np.ndarray | None = None) -> pd.DataFrame:
    """One row per group: members, labels, usages, size, conflicting, cross_split (and max distance)."""
    rows = np.flatnonzero(group_of != NO_GROUP)
    rows = rows[np.lexsort((rows, group_of[rows]))]
    records = []
    for group, members in _split_by_group(group_of[rows], rows):
        labels = dataset.labels[members]
        usages = dataset.usages[members]
        record = {
            "group": int(group),
            "size": len(members),
            "members": dataset.ids[members].tolist(),
            "rows": members.tolist(),
            "labels": [EMOTIONS[label] for label in labels],
            "usages": usages.tolist(),
            "conflicting": len(set(labels.tolist())) > 1,
            "cross_split": bool((usages == TRAINING).any() and (usages != TRAINING).any()),
        }
        if hashes is not None:
            record["max_distance"] = int(hamming_distance(hashes[members][:, None], hashes[members][None, :]).max())
        records.append(record)
    columns = ["group", "size", "members", "rows", "labels", "usages", "conflicting", "cross_split"]
    return pd.DataFrame.from_records(records, columns=columns + (["max_distance"] if hashes is not None else []))


def _split_by_group(sorted_groups: np.ndarray, rows: np.ndarray):
    if len(rows) == 0:
        return
    boundaries = np.flatnonzero(np.diff(sorted_groups)) + 1
    for start, members in zip(np.concatenate([[0], boundaries]), np.split(rows, boundaries)):
        yield sorted_groups[start], members


def find_leaks(dataset: Dataset, max_hamming_distance: int = DEFAULT_NEAR_THRESHOLD,
               hashes: np.ndarray | None = None) -> Leaks:
    """Every (Training row, test row) pair whose pHashes are within the threshold (exact copies included).

    Works on distinct hash values: close values come from the index, then each pair of values
    (and each value with itself) is expanded into its Training × test member pairs.
    """
    check_near_threshold(max_hamming_distance)
    hashes = phash_batch(dataset.pixels) if hashes is None else hashes
    unique, inverse = np.unique(hashes, return_inverse=True)
    is_train = dataset.usages == TRAINING
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    members = lambda value: order[starts[value]:starts[value + 1]]  # noqa: E731 - rows holding a hash value

    a, b, distance = find_close_pairs(unique, max_hamming_distance)
    values = np.arange(len(unique))
    pair_a = np.concatenate([values, a, b])
    pair_b = np.concatenate([values, b, a])
    pair_distance = np.concatenate([np.zeros(len(values), np.int64), distance, distance])
    has_train = np.bincount(inverse[is_train], minlength=len(unique)) > 0
    has_test = np.bincount(inverse[~is_train], minlength=len(unique)) > 0
    keep = has_train[pair_a] & has_test[pair_b]
    train_rows, test_rows, distances = [], [], []
    for value_a, value_b, d in zip(pair_a[keep], pair_b[keep], pair_distance[keep]):
        train = members(value_a)
        train = train[is_train[train]]
        test = members(value_b)
        test = test[~is_train[test]]
        train_rows.append(np.repeat(train, len(test)))
        test_rows.append(np.tile(test, len(train)))
        distances.append(np.full(len(train) * len(test), d))
    if not train_rows:
        empty = np.empty(0, np.int64)
        return Leaks(empty, empty, empty)
    return Leaks(np.concatenate(train_rows), np.concatenate(test_rows), np.concatenate(distances))
