"""Images that are not faces: per-image pixel statistics, the box-plot rule, and a ranked score.

The box-plot rule is the original study's: the mean pixel value of each image, with 1.5×IQR
whiskers, over the whole dataset and within each emotion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .labels import EMOTIONS

WHISKER_IQR = 1.5


def pixel_statistics(pixels: np.ndarray) -> pd.DataFrame:
    """Per image: mean and std of pixel values, Shannon entropy of the histogram (bits)."""
    flat = pixels.reshape(len(pixels), -1)
    histograms = np.zeros((len(pixels), 256), dtype=np.int32)
    np.add.at(histograms, (np.repeat(np.arange(len(pixels)), flat.shape[1]), flat.ravel()), 1)
    probabilities = histograms / flat.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(probabilities > 0, probabilities * np.log2(probabilities), 0.0), axis=1)
    return pd.DataFrame({
        "mean": flat.mean(axis=1),
        "std": flat.std(axis=1),
        "entropy": entropy,
    })


def whiskers(values: np.ndarray, iqr_factor: float = WHISKER_IQR) -> tuple[float, float]:
    """Lower and upper box-plot fences: quartiles ∓ iqr_factor × IQR."""
    first, third = np.percentile(values, [25, 75])
    spread = iqr_factor * (third - first)
    return float(first - spread), float(third + spread)


def box_plot_outliers(values: np.ndarray, labels: np.ndarray, iqr_factor: float = WHISKER_IQR) -> pd.DataFrame:
    """Whether each value lies outside the whiskers overall and within its own emotion."""
    low, high = whiskers(values, iqr_factor)
    overall = (values < low) | (values > high)
    within_emotion = np.zeros(len(values), dtype=bool)
    for label in range(len(EMOTIONS)):
        members = labels == label
        if members.sum() >= 4:
            low, high = whiskers(values[members], iqr_factor)
            within_emotion[members] = (values[members] < low) | (values[members] > high)
    return pd.DataFrame({"box_outlier": overall, "box_outlier_emotion": within_emotion})


def score_outliers(pixels: np.ndarray, labels: np.ndarray, exact_group_of: np.ndarray | None = None, *,
                   fingerprint: str = "", workspace=None, progress=None) -> pd.DataFrame:
    """Per-image statistics, box-plot flags, `outlier_score` (higher = less like a face) and `outlier`.

    The score here is how far the mean pixel value lies beyond the overall whiskers, in IQRs.
    """
    table = pixel_statistics(pixels)
    table = pd.concat([table, box_plot_outliers(table["mean"].to_numpy(), labels)], axis=1)
    values = table["mean"].to_numpy()
    low, high = whiskers(values)
    first, third = np.percentile(values, [25, 75])
    beyond = np.maximum(low - values, values - high) / max(third - first, 1e-9)
    table["outlier_score"] = beyond
    table["outlier"] = table["box_outlier"] | table["box_outlier_emotion"]
    return table
