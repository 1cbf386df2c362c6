"""Nearest neighbours of one image in a feature space (fer_core/training/features.py), for "find similar".

Cosine similarity by a plain numpy matrix–vector product and a partial sort: for FER-2013 (35,887 ×
56 float32) that is about a millisecond per query, so no index is built or kept. With the mirror images'
features (descriptor space) an image also finds its mirrored copies: each candidate scores the better
of its similarity to the image and to the image's mirror.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_NEIGHBOURS = 12


def unit_rows(features: np.ndarray) -> np.ndarray:
    """float32 rows scaled to length 1 (a zero row stays zero: it is similar to nothing)."""
    matrix = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def nearest_neighbours(features: np.ndarray, row: int, count: int = DEFAULT_NEIGHBOURS, *,
                       mirrored_features: np.ndarray | None = None,
                       candidates: np.ndarray | None = None) -> pd.DataFrame:
    """The `count` rows most similar to `row` (itself left out), most similar first.

    Columns: `row`, `similarity` (cosine, −1..1), `mirrored` (True where the image's mirror matched better).
    `candidates`: a boolean mask of rows that may be returned (e.g. not dropped). Ties keep row order.
    ValueError when `row` is outside the matrix.
    """
    total = len(features)
    if not 0 <= row < total:
        raise ValueError(f"row {row} out of range; the feature matrix has {total:,} rows")
    matrix = unit_rows(features)
    scores = matrix @ matrix[row]
    mirrored = np.zeros(total, dtype=bool)
    if mirrored_features is not None:
        if len(mirrored_features) != total:
            raise ValueError(f"mirrored features have {len(mirrored_features):,} rows; expected {total:,}")
        mirror_scores = matrix @ unit_rows(mirrored_features[row:row + 1])[0]
        mirrored = mirror_scores > scores
        scores = np.maximum(scores, mirror_scores)
    allowed = np.ones(total, dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool).copy()
    allowed[row] = False
    pool = np.flatnonzero(allowed)
    count = min(max(count, 0), len(pool))
    if count == 0:
        return pd.DataFrame({"row": np.empty(0, np.int64), "similarity": np.empty(0, np.float32),
                             "mirrored": np.empty(0, bool)})
    pool_scores = scores[pool]
    top = np.argpartition(-pool_scores, count - 1)[:count] if count < len(pool) else np.arange(len(pool))
    top = top[np.lexsort((pool[top], -pool_scores[top]))]  # most similar first, then by row
    rows = pool[top]
    return pd.DataFrame({"row": rows.astype(np.int64), "similarity": scores[rows].astype(np.float32),
                         "mirrored": mirrored[rows]})


def neighbour_captions(neighbours: pd.DataFrame) -> pd.Series:
    """Per neighbour row: `similarity 97 %` (· `mirrored` where its mirror matched), for the tiles."""
    captions = [f"similarity {similarity:.0%}" + (" · mirrored" if mirrored else "")
                for similarity, mirrored in zip(neighbours["similarity"], neighbours["mirrored"])]
    return pd.Series(captions, index=neighbours["row"].to_numpy(), dtype=object)
