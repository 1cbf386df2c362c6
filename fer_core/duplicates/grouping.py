"""Duplicate groups (exact and near), their label conflicts and train–test leaks.

Groups are connected components: an image is in a near group with every image it reaches
through a chain of near pairs. Near pairs come in two modes: `verified` (the default; pairs
proposed widely and confirmed on pixels by `near_verify`, each with its kind and similarity)
and `hash` (pHashes within the Hamming threshold, the original method, kept for comparison).
Exact copies are always near pairs of kind `exact`, which puts every exact group inside a
near group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from fer_core.dataset.loading import Dataset
from fer_core.dataset.pixel_store import return_free_memory
from fer_core.duplicates.candidates import find_candidates
from fer_core.duplicates.hashing import (exact_digests, find_close_pairs, find_near_links, hamming_distance,
                                         phash_and_mirror_batch, phash_batch)
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, check_near_mode, check_near_threshold
from fer_core.duplicates.verification import (KINDS, VERIFY_THREADS, NearVerifyConfig, VerifiedPairs, accepted,
                                               verify_pairs)
from fer_core.labels import TRAINING

NO_GROUP = -1
PAIR_KINDS = KINDS + ("hash",)  # `hash`: a hash-only pair, not verified



@dataclass(frozen=True)
class Leaks:
    """Every direct pair of a Training row and a PublicTest/PrivateTest row within the threshold."""

    train_rows: np.ndarray
    test_rows: np.ndarray
    distances: np.ndarray
    kinds: np.ndarray | None = None  # verified mode: the kind of each pair (`exact`, `near`, `shifted`, …)

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
            "labels": [dataset.emotions[label] for label in labels],
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


def find_verified_pairs(pixels: np.ndarray, hashes: np.ndarray, mirror_hashes: np.ndarray | None,
                        config: NearVerifyConfig = NearVerifyConfig(),
                        digests: np.ndarray | None = None) -> VerifiedPairs:
    """Accepted near pairs between *distinct* images, each image standing for its exact copies.

    Exact copies are collapsed first (one representative row per distinct pixel content, the
    first), so a clump of identical images is verified once. The pairs returned link
    representatives; `expand_pairs` lists every member pair.
    """
    digests = exact_digests(pixels) if digests is None else digests
    if mirror_hashes is None:
        hashes, mirror_hashes = phash_and_mirror_batch(pixels)
    _, representatives = np.unique(digests, return_index=True)
    representatives = np.sort(representatives)
    local_a, local_b = find_candidates(pixels, hashes[representatives], mirror_hashes[representatives], config,
                                       rows=representatives)  # read in chunks: no copy of the distinct images
    return_free_memory()  # the candidate search's freed temporaries, before the verification's
    scored = verify_pairs(pixels, representatives[local_a], representatives[local_b], config, VERIFY_THREADS)
    return scored.select(accepted(scored, config))


def exact_pairs(digests: np.ndarray) -> VerifiedPairs:
    """(first row, copy) for every image whose pixels equal an earlier row's, as pairs of kind `exact`."""
    _, first_row, inverse = np.unique(digests, return_index=True, return_inverse=True)
    rows = np.arange(len(digests))
    copies = rows[first_row[inverse] != rows]
    return _exact_pairs(first_row[inverse[copies]], copies)


def _exact_pairs(rows_a: np.ndarray, rows_b: np.ndarray) -> VerifiedPairs:
    count = len(rows_a)
    return VerifiedPairs(np.asarray(rows_a, np.int64), np.asarray(rows_b, np.int64), np.ones(count, np.float32),
                         np.zeros(count, np.int8), np.zeros(count, np.int8), np.ones(count, np.float32),
                         np.zeros(count, bool), np.full(count, "exact", dtype=object))


def group_verified(count: int, pairs: VerifiedPairs) -> np.ndarray:
    """Group id per row from verified pairs (include `exact_pairs` so exact copies join their group)."""
    return components_from_pairs(count, pairs.rows_a, pairs.rows_b)


def expand_pairs(pairs: VerifiedPairs, digests: np.ndarray) -> VerifiedPairs:
    """Every member pair: each representative pair times the exact copies on both sides, plus the
    pairs inside each exact group (kind `exact`)."""
    _, first_row, inverse = np.unique(digests, return_index=True, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(first_row) + 1))
    sizes = np.diff(starts)
    group_a, group_b = inverse[pairs.rows_a], inverse[pairs.rows_b]
    counts = sizes[group_a] * sizes[group_b]
    pick = np.repeat(np.arange(len(pairs)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    right = sizes[group_b][pick]
    expanded = pairs.select(pick)
    expanded = VerifiedPairs(order[starts[group_a[pick]] + offsets // right], order[starts[group_b[pick]] + offsets % right],
                             *(getattr(expanded, name) for name in ("similarity", "shift_x", "shift_y", "scale",
                                                                    "mirrored", "kind")))
    # inside each exact group: all pairs of members
    multi = np.flatnonzero(sizes > 1)
    inside_a, inside_b = [], []
    for group in multi:
        members = order[starts[group]:starts[group + 1]]
        a, b = np.triu_indices(len(members), 1)
        inside_a.append(members[a])
        inside_b.append(members[b])
    inside = _exact_pairs(np.concatenate(inside_a) if inside_a else np.empty(0, np.int64),
                          np.concatenate(inside_b) if inside_b else np.empty(0, np.int64))
    return VerifiedPairs.concatenate([inside, expanded])


def leaks_from_pairs(dataset: Dataset, pairs: VerifiedPairs, hashes: np.ndarray) -> Leaks:
    """Every (Training row, test row) pair among `pairs` (already expanded to every member pair)."""
    is_train = dataset.usages == TRAINING
    train_a = is_train[pairs.rows_a] & ~is_train[pairs.rows_b]
    train_b = is_train[pairs.rows_b] & ~is_train[pairs.rows_a]
    train_rows = np.concatenate([pairs.rows_a[train_a], pairs.rows_b[train_b]])
    test_rows = np.concatenate([pairs.rows_b[train_a], pairs.rows_a[train_b]])
    kinds = np.concatenate([pairs.kind[train_a], pairs.kind[train_b]]).astype(object)
    order = np.lexsort((test_rows, train_rows))
    train_rows, test_rows, kinds = train_rows[order], test_rows[order], kinds[order]
    distances = hamming_distance(hashes[train_rows], hashes[test_rows]).astype(np.int64)
    return Leaks(train_rows.astype(np.int64), test_rows.astype(np.int64), distances, kinds)


def pair_table(dataset: Dataset, pairs: VerifiedPairs, hashes: np.ndarray) -> pd.DataFrame:
    """One row per near pair: ids, rows, kind, similarity, pHash distance and the transform found."""
    return pd.DataFrame({
        "id_a": dataset.ids[pairs.rows_a], "id_b": dataset.ids[pairs.rows_b],
        "row_a": pairs.rows_a, "row_b": pairs.rows_b,
        "kind": pairs.kind.astype(str), "similarity": pairs.similarity.round(4),
        "hamming_distance": hamming_distance(hashes[pairs.rows_a], hashes[pairs.rows_b]).astype(np.int64),
        "shift_x": pairs.shift_x, "shift_y": pairs.shift_y, "scale": pairs.scale, "mirrored": pairs.mirrored,
    })


def kinds_by_group(group_of: np.ndarray, pairs: VerifiedPairs) -> dict[int, list[str]]:
    """The kinds of the pairs inside each group (in PAIR_KINDS order)."""
    found: dict[int, set[str]] = {}
    for group, kind in zip(group_of[pairs.rows_a].tolist(), pairs.kind.tolist()):
        found.setdefault(group, set()).add(kind)
    return {group: [kind for kind in PAIR_KINDS if kind in kinds] for group, kinds in found.items()}


def strongest_pair_per_row(count: int, pairs: VerifiedPairs) -> tuple[np.ndarray, np.ndarray]:
    """(kind, similarity) of each row's most similar pair; '' and NaN for rows in no pair."""
    kind = np.full(count, "", dtype=object)
    similarity = np.full(count, np.nan, np.float32)
    rows = np.concatenate([pairs.rows_a, pairs.rows_b])
    values = np.concatenate([pairs.similarity, pairs.similarity])
    kinds = np.concatenate([pairs.kind, pairs.kind])
    order = np.lexsort((-values, rows))  # per row, the most similar first
    rows, values, kinds = rows[order], values[order], kinds[order]
    first = np.ones(len(rows), bool)
    first[1:] = rows[1:] != rows[:-1]
    kind[rows[first]] = kinds[first]
    similarity[rows[first]] = values[first]
    return kind, similarity


@dataclass(frozen=True)
class NearDuplicates:
    """Near groups, their pairs and the train–test leaks, in either mode."""

    mode: str
    group_of: np.ndarray
    groups: pd.DataFrame  # describe_groups + `kinds` (the kinds of the pairs inside each group)
    pairs: pd.DataFrame  # pair_table: every link (representatives and exact copies)
    leaks: Leaks
    kind: np.ndarray  # per row: the kind of its most similar pair ('' when in no pair)
    similarity: np.ndarray  # per row: that pair's similarity (NaN when in no pair)


def find_near_duplicates(dataset: Dataset, hashes: np.ndarray, digests: np.ndarray, mode: str,
                         max_hamming_distance: int, verified: VerifiedPairs | None = None) -> NearDuplicates:
    """Near groups and leaks from verified pairs (`verified`, from `find_verified_pairs`) or, in `hash`
    mode, from pHashes within `max_hamming_distance` (pairs of kind `hash`, similarity NaN)."""
    check_near_mode(mode)
    exact = exact_pairs(digests)
    if mode == "verified":
        verified = verified if verified is not None else find_verified_pairs(dataset.pixels, hashes, digests=digests,
                                                                             mirror_hashes=None)
        links = VerifiedPairs.concatenate([exact, verified])
        leaks = leaks_from_pairs(dataset, expand_pairs(verified, digests), hashes)
    else:
        i, j, _ = find_near_links(hashes, max_hamming_distance)
        identical = digests[i] == digests[j]
        count = len(i)
        links = VerifiedPairs(i, j, np.where(identical, 1.0, np.nan).astype(np.float32), np.zeros(count, np.int8),
                              np.zeros(count, np.int8), np.ones(count, np.float32), np.zeros(count, bool),
                              np.where(identical, "exact", "hash").astype(object))
        leaks = find_leaks(dataset, max_hamming_distance, hashes)
    group_of = group_verified(len(dataset), links)
    groups = describe_groups(dataset, group_of, hashes)
    kinds = kinds_by_group(group_of, links)
    groups["kinds"] = [kinds.get(group, []) for group in groups["group"]]
    kind, similarity = strongest_pair_per_row(len(dataset), links)
    return NearDuplicates(mode, group_of, groups, pair_table(dataset, links, hashes), leaks, kind, similarity)


PAIR_COLUMNS = ("near_partners", "near_partner_similarity", "near_partner_shift_x", "near_partner_shift_y",
                "near_partner_scale", "near_partner_mirrored", "near_partner_kind")


def pairs_to_columns(count: int, pairs: VerifiedPairs) -> pd.DataFrame:
    """Verified pairs as one row per sample (lists of its partners with a higher row), so the audit can
    cache them beside the per-sample columns. The lists are Arrow arrays (values and offsets): a Python
    list per sample and column took 7 million objects for a million images."""
    import pyarrow as pa

    order = np.lexsort((pairs.rows_b, pairs.rows_a))
    pairs = pairs.select(order)
    offsets = pa.array(np.searchsorted(pairs.rows_a, np.arange(count + 1)).astype(np.int32))
    values = (pairs.rows_b, pairs.similarity, pairs.shift_x, pairs.shift_y, pairs.scale, pairs.mirrored,
              pairs.kind.astype(str))
    return pd.DataFrame({name: pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets, pa.array(value)))
                         for name, value in zip(PAIR_COLUMNS, values)})


def columns_to_pairs(columns: pd.DataFrame) -> VerifiedPairs:
    """The inverse of `pairs_to_columns` (also of the Python lists an older cache holds)."""
    import pyarrow as pa

    def lists(name: str):
        array = pa.array(columns[name])
        return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array

    def flat(name: str, dtype) -> np.ndarray:
        return lists(name).flatten().to_numpy(zero_copy_only=False).astype(dtype)

    sizes = lists("near_partners").value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    return VerifiedPairs(np.repeat(np.arange(len(columns)), sizes), flat("near_partners", np.int64),
                         flat("near_partner_similarity", np.float32), flat("near_partner_shift_x", np.int8),
                         flat("near_partner_shift_y", np.int8), flat("near_partner_scale", np.float32),
                         flat("near_partner_mirrored", bool), flat("near_partner_kind", str).astype(object))
