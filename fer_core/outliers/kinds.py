"""Outlier kinds: blank, placeholder, drawing or no usable face, from the pixel kinds' scores
(fer_core/outliers/statistics.py) and the face stage's table (fer_core/outliers/faces.py); one score that ranks them;
and the evidence for each kind in words, for the Outliers page's tiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.outliers.statistics import OutlierConfig

OUTLIER_KINDS = ("blank", "placeholder", "drawing", "no_usable_face")
KIND_SCORE_COLUMNS = {"blank": "blank_score", "placeholder": "placeholder_score", "drawing": "drawing_score",
                      "no_usable_face": "no_face_score"}


def no_face_score(faces: pd.DataFrame, config: OutlierConfig) -> np.ndarray:
    """Reaches 1 where the face stage found no upright, framed face (see fer_core/outliers/faces.py).

    The largest of: no face found (1 + the detector's doubt, 1 − confidence; a found face scores
    at most 0.5 here), |roll| / `face_max_roll`, `face_min_size` / box side, and box centre offset /
    `face_max_offset`.
    """
    confidence = faces["face_confidence"].to_numpy(dtype=np.float64)
    found = faces["face_found"].to_numpy(dtype=bool)
    missing = np.where(found, 0.5, 1.0) * (1.0 - confidence) + np.where(found, 0.0, 1.0)
    roll = np.abs(faces["face_roll"].to_numpy(dtype=np.float64)) / config.face_max_roll
    size = config.face_min_size / np.maximum(faces["face_size"].to_numpy(dtype=np.float64), 1e-3)
    offset = faces["face_offset"].to_numpy(dtype=np.float64) / config.face_max_offset
    return np.maximum.reduce([missing, np.nan_to_num(roll), np.nan_to_num(size), np.nan_to_num(offset)])


def classify_outliers(pixels_table: pd.DataFrame, faces: pd.DataFrame | None,
                      config: OutlierConfig | None = None) -> pd.DataFrame:
    """Per image: `no_face_score` (NaN without the face stage), `outlier_kind` (the first kind, in
    OUTLIER_KINDS order, whose score reaches 1; "" for none), `outlier_score` and `outlier`.

    `outlier_score` is `flag_min_score` × a relative score that reaches 1 exactly where a kind is
    found, so `outlier` is still "score ≥ flag_min_score". Flagged images rank by kind first — blank,
    placeholder, drawing, no_usable_face: the order in which the kinds are right on the labelled
    sample — then by their kind's score within it (benchmarks/RESULTS_outliers.md: this order lifts
    the ranking's average precision there from 0.87 for the plain maximum to 0.91).
    """
    config = config or OutlierConfig()
    scores = pixels_table[[KIND_SCORE_COLUMNS[kind] for kind in OUTLIER_KINDS[:-1]]].reset_index(drop=True)
    missing_face = np.full(len(scores), np.nan) if faces is None else no_face_score(faces.reset_index(drop=True), config)
    values = np.nan_to_num(np.column_stack([scores.to_numpy(dtype=np.float64), missing_face]))
    reached = values >= 1.0
    flagged = reached.any(axis=1)
    first = reached.argmax(axis=1)
    kind = np.where(flagged, np.array(OUTLIER_KINDS, dtype=object)[first], "")
    own = values[np.arange(len(values)), first]
    tier = len(OUTLIER_KINDS) - 1 - first  # blank 3 … no_usable_face 0
    relative = np.where(flagged, 1.0 + tier + (1.0 - 1.0 / np.maximum(own, 1.0)), values.max(axis=1, initial=0.0))
    score = config.flag_min_score * relative
    return pd.DataFrame({"no_face_score": missing_face, "outlier_kind": kind.astype(str), "outlier_score": score,
                         "outlier": kind != ""})


def kind_evidence(samples: pd.DataFrame, rows, config: OutlierConfig | None = None) -> list[tuple[str, str]]:
    """Per row of `samples` (the audit's table), its outlier kind in words and the evidence behind it:
    ("blank", "std 0.4"), ("placeholder", "82% one grey"), ("drawing", "sharp edges 9%"),
    ("no usable face", "turned 63°") (or "none found", "face 31% of the frame", "off-centre");
    ("", "") for an image of no kind."""
    config = config or OutlierConfig()
    pairs = []
    for row in np.asarray(rows, dtype=np.int64).tolist():
        sample = samples.iloc[row]
        kind = sample.get("outlier_kind", "")
        if kind == "blank":
            pairs.append(("blank", f"std {sample['std']:.1f}"))
        elif kind == "placeholder":
            recurring = " · same pixels under several emotions" if sample.get("recurring_placeholder", False) else ""
            pairs.append(("placeholder", f"{sample['dominant_fraction']:.0%} one grey{recurring}"))
        elif kind == "drawing":
            pairs.append(("drawing", f"sharp edges {sample['sharp_edge_fraction']:.0%}"))
        elif kind == "no_usable_face":
            pairs.append(("no usable face", _face_evidence(sample, config)))
        else:
            pairs.append(("", ""))
    return pairs


def _face_evidence(sample: pd.Series, config: OutlierConfig) -> str:
    """Which of the face stage's limits the image broke, the furthest first."""
    if not sample["face_found"]:
        return f"none found (detector {sample['face_confidence']:.2f})"
    reasons = {f"turned {abs(sample['face_roll']):.0f}°": abs(sample["face_roll"]) / config.face_max_roll,
               f"face {sample['face_size']:.0%} of the frame": config.face_min_size / max(sample["face_size"], 1e-3),
               f"off-centre by {sample['face_offset']:.0%}": sample["face_offset"] / config.face_max_offset}
    return ", ".join(text for text, value in sorted(reasons.items(), key=lambda item: -item[1]) if value >= 1)


def kind_counts(kinds: np.ndarray) -> dict[str, int]:
    """How many images of each outlier kind (every kind listed, zeros included)."""
    return {kind: int(np.sum(np.asarray(kinds) == kind)) for kind in OUTLIER_KINDS}
