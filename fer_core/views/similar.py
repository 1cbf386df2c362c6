"""Nearest neighbours of one image in a feature space (fer_core/training/features.py), for "find similar".

Cosine similarity by a plain numpy matrix–vector product and a partial sort over rows normalised once
(`NeighbourIndex`): for FER-2013 (35,887 × 56 float32) a query is a millisecond or two, so no search
structure is needed. With the mirror images'
features (descriptor space) an image also finds its mirrored copies: each candidate scores the better
of its similarity to the image and to the image's mirror.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_NEIGHBOURS = 12


def unit_rows(features: np.ndarray) -> np.ndarray:
    """float32 rows scaled to length 1 (a zero row stays zero: it is similar to nothing)."""
    matrix = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True, eq=False)
class NeighbourIndex:
    """Unit float32 rows of a feature matrix (and of the mirror images' features), made once: a query is then one
    or two matrix–vector products (the float16 → float32 copy and the norms are most of a query's cost)."""

    unit: np.ndarray
    mirrored: np.ndarray | None = None

    @staticmethod
    def build(features: np.ndarray, mirrored_features: np.ndarray | None = None,
              centre: bool = False) -> NeighbourIndex:
        """`centre`: subtract the mean row first. A network's penultimate layer (after ReLU) is all positive,
        so raw cosines crowd near 100% (a tiny model's: every neighbour read 100%); centred, they spread."""
        if mirrored_features is not None and len(mirrored_features) != len(features):
            raise ValueError(f"mirrored features have {len(mirrored_features):,} rows; expected {len(features):,}")
        matrix = np.asarray(features, dtype=np.float32)
        if centre and len(matrix):
            matrix = matrix - matrix.mean(axis=0, dtype=np.float64).astype(np.float32)
        return NeighbourIndex(unit_rows(matrix), None if mirrored_features is None else unit_rows(mirrored_features))

    def __len__(self) -> int:
        return len(self.unit)

    def nearest(self, row: int, count: int = DEFAULT_NEIGHBOURS, candidates: np.ndarray | None = None) -> pd.DataFrame:
        """The `count` rows most similar to `row` (itself left out), most similar first.

        Columns: `row`, `similarity` (cosine, −1..1), `mirrored` (True where the image's mirror matched better).
        `candidates`: a boolean mask of rows that may be returned (e.g. not dropped). Ties keep row order.
        ValueError when `row` is outside the matrix.
        """
        total = len(self.unit)
        if not 0 <= row < total:
            raise ValueError(f"row {row} out of range; the feature matrix has {total:,} rows")
        scores = self.unit @ self.unit[row]
        mirrored = np.zeros(total, dtype=bool)
        if self.mirrored is not None:
            mirror_scores = self.unit @ self.mirrored[row]
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


def nearest_neighbours(features: np.ndarray, row: int, count: int = DEFAULT_NEIGHBOURS, *,
                       mirrored_features: np.ndarray | None = None,
                       candidates: np.ndarray | None = None) -> pd.DataFrame:
    """One query without keeping an index: `NeighbourIndex.build(features, mirrored_features).nearest(...)`."""
    return NeighbourIndex.build(features, mirrored_features).nearest(row, count, candidates)


def neighbour_captions(neighbours: pd.DataFrame) -> pd.Series:
    """Per neighbour row: `similarity 97 %` (· `mirrored` where its mirror matched), for the tiles."""
    captions = [f"similarity {similarity:.0%}" + (" · mirrored" if mirrored else "")
                for similarity, mirrored in zip(neighbours["similarity"], neighbours["mirrored"])]
    return pd.Series(captions, index=neighbours["row"].to_numpy(), dtype=object)
