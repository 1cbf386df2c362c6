"""Images that are not faces: per-image pixel statistics, the box-plot rule, and a ranked score.

The box-plot rule is the original study's: the mean pixel value of each image, with 1.5×IQR
whiskers, over the whole dataset and within each emotion. It finds only a third of the
non-faces (blank frames, placeholder icons, text, cartoons), so `score_outliers` ranks images by
signals that separate those from photographed faces (see benchmarks/RESULTS_outliers.md):

* `flat_fraction`: share of the image with (near) zero gradient. Photos carry sensor and JPEG
  noise everywhere; rendered placeholders, icons and text cards are mostly one flat colour.
* `reconstruction_error`: eigenface residual. Tightly cropped faces are well rebuilt from the
  top principal components of the whole dataset; text, drawings and icons are not.
* `sharp_edge_fraction`: share of the image where the grey level jumps by a large part of the
  image's own range between two neighbouring pixels. A lens blurs every edge over a few pixels;
  line art, comics, cartoons and text are drawn with pixel-sharp strokes.
* `recurring_placeholder`: the same pixels filed under several emotions (a placeholder frame).

The audit caches the table by the data's fingerprint and the config, so a warm audit reads it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from fer_core.dataset.pixel_store import iterate_chunks

Progress = Callable[[str, int, int], None]
WHISKER_IQR = 1.5


@dataclass(frozen=True)
class OutlierConfig:
    """Defaults of the outlier score, in one place (why each value: benchmarks/RESULTS_outliers.md)."""

    whisker_iqr: float = WHISKER_IQR
    flat_max_step: int = 1  # neighbour differences up to this many grey levels count as flat
    blank_max_std: float = 2.0  # an image whose pixels vary less than this is blank ...
    blank_min_dominant: float = 0.95  # ... as is one with this share of its pixels at one grey level (±4)
    dominant_window: int = 4  # grey levels either side of the most common one that count as "that colour"
    sharp_min_jump: float = 0.4  # a neighbour step of 40 % of the image's grey range is a drawn edge
    grey_range_quantiles: tuple[float, float] = (0.02, 0.98)  # the range, robust to a few stray pixels
    pca_side: int = 24  # faces are compared at 24×24: enough for eigenfaces, 4× cheaper
    pca_components: int = 40
    pca_fit_sample: int = 5000
    recurring_min_emotions: int = 3  # identical pixels under this many emotions: a placeholder
    reference_quantile: float = 0.99  # each signal is scaled so this quantile scores 1 ...
    max_iqr_multiple: float = 6.0  # ... or this many IQRs beyond the median, if fewer (small data)
    recurring_bonus: float = 2.0  # added to the score of a recurring placeholder
    flag_min_score: float = 2.5  # flag: 2.5× a 99th-percentile excess, summed over the three signals
    placeholder_min_dominant: float = 0.6  # a flagged image mostly one colour (card, icon, text) ...
    placeholder_min_flatness: float = 1.0  # ... and flat (tail-scaled) is a placeholder; else a drawing
    face_max_roll: float = 40.0  # degrees: a face turned further is lying down, not upright
    face_min_size: float = 0.5  # a face box under half the frame side is too small to read
    face_max_offset: float = 0.25  # a box centre this far (in frame sides) from the centre: cut off
    chunk_size: int = 4096
    seed: int = 0


def grey_histograms(pixels: np.ndarray) -> np.ndarray:
    """Per image, the count of each of the 256 grey levels (one OpenCV call per image: fast, little memory)."""
    histograms = np.empty((len(pixels), 256), dtype=np.float64)
    for row, image in enumerate(pixels):
        histograms[row] = cv2.calcHist([np.ascontiguousarray(image)], [0], None, [256], [0, 256]).ravel()
    return histograms


def pixel_statistics(pixels: np.ndarray, histograms: np.ndarray | None = None) -> pd.DataFrame:
    """Per image: mean and std of pixel values, Shannon entropy of the histogram (bits).

    All three come from the grey-level histogram, so the pixels are read once.
    """
    histograms = grey_histograms(pixels) if histograms is None else histograms
    size = max(int(np.prod(pixels.shape[1:])), 1)
    probabilities = histograms / size
    levels = np.arange(256, dtype=np.float64)
    mean = probabilities @ levels
    variance = np.maximum(probabilities @ (levels * levels) - mean * mean, 0.0)
    logs = np.log2(np.where(probabilities > 0, probabilities, 1.0))
    entropy = -np.einsum("ij,ij->i", probabilities, logs)
    return pd.DataFrame({"mean": mean, "std": np.sqrt(variance), "entropy": entropy + 0.0})


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
    for label in np.unique(labels).tolist():
        members = labels == label
        if members.sum() >= 4:
            low, high = whiskers(values[members], iqr_factor)
            within_emotion[members] = (values[members] < low) | (values[members] > high)
    return pd.DataFrame({"box_outlier": overall, "box_outlier_emotion": within_emotion})


def dominant_fraction(histograms: np.ndarray, window: int = 4) -> np.ndarray:
    """Per image, the largest share of pixels within ±`window` grey levels of one value.

    Placeholder cards, icons and text are mostly one flat colour (median 0.78 on FER-2013's); a
    photographed face spreads over many levels (median 0.12), a drawing in between (0.31).
    """
    padded = np.pad(histograms, ((0, 0), (window + 1, window)))
    cumulative = np.cumsum(padded, axis=1)
    in_window = cumulative[:, 2 * window + 1:] - cumulative[:, :-(2 * window + 1)]
    return in_window.max(axis=1) / np.maximum(histograms.sum(axis=1), 1.0)


def _chunks(count: int, size: int):
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def grey_range(histograms: np.ndarray, low: float = 0.02, high: float = 0.98) -> np.ndarray:
    """Per image, the grey levels between its `low` and `high` quantiles (from the histograms)."""
    cumulative = np.cumsum(histograms, axis=1)
    total = cumulative[:, -1:]
    low_level = (cumulative <= low * total).sum(axis=1)
    high_level = (cumulative < high * total).sum(axis=1)
    return (high_level - low_level).astype(np.float64)


def _neighbour_steps(block: np.ndarray) -> np.ndarray:
    """Per pixel, the larger grey-level difference to its right and lower neighbour (last row/column dropped)."""
    centre, right, below = block[:, :-1, :-1], block[:, :-1, 1:], block[:, 1:, :-1]
    across = np.maximum(right, centre) - np.minimum(right, centre)  # |a − b| without leaving uint8
    down = np.maximum(below, centre) - np.minimum(below, centre)
    return np.maximum(across, down).reshape(len(block), -1)


def flat_fraction(pixels: np.ndarray, max_step: int = 1, chunk_size: int = 4096) -> np.ndarray:
    """Share of pixels whose right and lower neighbours differ by at most `max_step` grey levels.

    Photographs are noisy, so flat patches are small (a saturated background at most); rendered
    placeholders, icons and text cards are mostly a single colour.
    """
    fractions = np.empty(len(pixels), dtype=np.float64)
    for rows in _chunks(len(pixels), chunk_size):
        fractions[rows] = (_neighbour_steps(pixels[rows]) <= max_step).mean(axis=1)
    return fractions


def sharp_edge_fraction(pixels: np.ndarray, ranges: np.ndarray, min_jump: float = 0.4,
                        chunk_size: int = 4096) -> np.ndarray:
    """Share of pixels whose step to a neighbour is at least `min_jump` × the image's grey range.

    Optics spread a photographed edge over a few pixels, so single steps stay a small part of the
    range even in high-contrast photos; drawn strokes (comics, line art, cartoons, text) jump from
    paper to ink in one pixel. Relative to the range, so faint sketches count as well as bold ink.
    """
    fractions = np.empty(len(pixels), dtype=np.float64)
    # steps are whole grey levels, so "≥ x" is "≥ ceil(x)": an integer compare, no float copy of the steps
    thresholds = np.ceil(min_jump * np.maximum(np.asarray(ranges, dtype=np.float64), 1.0)).astype(np.int16)
    for rows in _chunks(len(pixels), chunk_size):
        fractions[rows] = (_neighbour_steps(pixels[rows]) >= thresholds[rows, None]).mean(axis=1)
    return fractions


def normalized_thumbnails(pixels: np.ndarray, side: int = 24, chunk_size: int = 4096) -> np.ndarray:
    """Images shrunk to side×side by block averaging, each scaled to zero mean and unit variance.

    Normalizing removes brightness and contrast, so the eigenfaces model shape, not exposure.
    """
    factor = pixels.shape[1] // side
    out = np.empty((len(pixels), side * side), dtype=np.float32)
    for rows in _chunks(len(pixels), chunk_size):
        block = pixels[rows, :side * factor, :side * factor]
        small = np.zeros((len(block), side, side), dtype=np.float32)
        for dy in range(factor):
            for dx in range(factor):
                small += block[:, dy::factor, dx::factor]
        small = small.reshape(len(block), -1)
        small -= small.mean(axis=1, keepdims=True)
        small /= np.maximum(small.std(axis=1, keepdims=True), 1.0)
        out[rows] = small
    return out


def eigenface_sample(count: int, sample: int, seed: int) -> np.ndarray:
    """The rows (sorted) whose thumbnails the eigenfaces are fitted on: a seeded random sample."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(count, size=min(sample, count), replace=False))


def fit_eigenfaces(thumbnails: np.ndarray, components: int, sample: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top principal axes of a random sample of the thumbnails (eigen-decomposed covariance)."""
    return eigenfaces_of(thumbnails[eigenface_sample(len(thumbnails), sample, seed)], components)


def eigenfaces_of(subset: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top principal axes of these thumbnails."""
    mean = subset.mean(axis=0)
    centred = subset - mean
    covariance = (centred.T @ centred).astype(np.float64) / max(len(subset) - 1, 1)
    _, vectors = np.linalg.eigh(covariance)
    # a component needs many images behind it, or a handful of similar non-faces get their own
    usable = max(1, min(components, len(subset) // 50, vectors.shape[1]))
    axes = vectors[:, ::-1][:, :usable].T
    return mean.astype(np.float32), np.ascontiguousarray(axes, dtype=np.float32)


def reconstruction_error(thumbnails: np.ndarray, mean: np.ndarray, axes: np.ndarray,
                         chunk_size: int = 4096) -> np.ndarray:
    """Mean squared residual of each thumbnail after projecting onto the eigenfaces (0 = perfect)."""
    errors = np.empty(len(thumbnails), dtype=np.float64)
    for rows in _chunks(len(thumbnails), chunk_size):
        centred = thumbnails[rows] - mean
        coefficients = centred @ axes.T
        residual = centred - coefficients @ axes
        errors[rows] = np.mean(residual * residual, axis=1)
    return errors


def recurring_placeholders(labels: np.ndarray, exact_group_of: np.ndarray | None, min_emotions: int) -> np.ndarray:
    """Whether each image's exact copies span at least `min_emotions` emotions.

    A real face copied twice may carry two labels; identical pixels filed under many emotions is
    a scraper's placeholder (blank frame, 'image removed' card).
    """
    count = len(labels)
    if exact_group_of is None or count == 0:
        return np.zeros(count, dtype=bool)
    groups = np.asarray(exact_group_of)
    grouped = groups >= 0
    if not grouped.any():
        return np.zeros(count, dtype=bool)
    pairs = np.unique(np.stack([groups[grouped], np.asarray(labels)[grouped].astype(np.int64)]), axis=1)
    emotions_per_group = np.bincount(pairs[0], minlength=int(groups.max()) + 1)
    result = np.zeros(count, dtype=bool)
    result[grouped] = emotions_per_group[groups[grouped]] >= min_emotions
    return result


def tail_scaled(values: np.ndarray, reference_quantile: float = 0.99, max_iqr_multiple: float = 6.0) -> np.ndarray:
    """(value − median) / (quantile − median): 0 for a typical image, 1 at the reference quantile.

    Puts signals with very different spreads on one scale by their tails, where non-faces live;
    a MAD-based z-score would let a signal with a tight core (flatness) swamp the others. In a
    small dataset the quantile can land on a planted non-face itself, so the spread is capped at
    `max_iqr_multiple` IQRs (on FER-2013 the 99th percentile sits 2.4–5 IQRs out, under the cap).
    """
    median = np.median(values)
    first, third, tail = np.quantile(values, [0.25, 0.75, reference_quantile])
    spread = min(tail - median, max_iqr_multiple * (third - first))
    return (values - median) / max(float(spread), 1e-9)


SCORED_SIGNALS = ("flat_fraction", "reconstruction_error", "sharp_edge_fraction")


def pixel_score(table: pd.DataFrame, config: OutlierConfig) -> np.ndarray:
    """The untrained pixel score: flatness, eigenface residual and sharp edges, each tail-scaled, plus
    a placeholder bonus.

    Summing rewards images odd on several counts (text cards, icons, comics) above faces that are
    odd on one (a face on a black background is flat but well reconstructed and softly edged; a
    profile is badly reconstructed but neither flat nor sharp).
    """
    score = sum(tail_scaled(table[column].to_numpy(), config.reference_quantile, config.max_iqr_multiple)
                for column in SCORED_SIGNALS)
    return score + config.recurring_bonus * table["recurring_placeholder"].to_numpy()


def pixel_kind_scores(table: pd.DataFrame, config: OutlierConfig) -> pd.DataFrame:
    """`blank_score`, `placeholder_score`, `drawing_score`: each reaches 1 where the image is of that kind.

    Blank: the std under `blank_max_std`, or nearly every pixel one grey level. Otherwise the pixel
    score over the flag threshold goes to `placeholder` when the image is mostly one colour and flat
    (cards, icons, text) or a recurring placeholder, and to `drawing` when not (comics, line art,
    cartoons: sharp strokes over shading).
    """
    std = table["std"].to_numpy()
    blank = np.maximum(table["dominant_fraction"].to_numpy() / config.blank_min_dominant,
                       np.minimum(config.blank_max_std / np.maximum(std, 1e-6), 2.0))
    relative = pixel_score(table, config) / config.flag_min_score
    flatness = tail_scaled(table["flat_fraction"].to_numpy(), config.reference_quantile, config.max_iqr_multiple)
    rendered = ((table["dominant_fraction"].to_numpy() >= config.placeholder_min_dominant)
                & (flatness >= config.placeholder_min_flatness)) | table["recurring_placeholder"].to_numpy()
    return pd.DataFrame({"blank_score": blank,
                         "placeholder_score": np.where(rendered, relative, 0.0),
                         "drawing_score": np.where(rendered, 0.0, relative)})


def compute_scores(pixels: np.ndarray, labels: np.ndarray, exact_group_of: np.ndarray | None,
                   config: OutlierConfig, report: Progress) -> pd.DataFrame:
    """Every column of `score_outliers`, computed from the pixels (about a second for FER-2013).

    Two passes over the pixels, `config.chunk_size` images at a time: the histogram and neighbour-step
    signals, then the eigenface residual (fitted first on the sampled rows' thumbnails). Only the
    table's columns are kept per image: the N×256 float histograms and N×576 thumbnails once held all
    at once took 8 KB an image (8 GB for a million).
    """
    steps = 4
    report("outlier statistics", 0, steps)
    signals = {name: np.empty(len(pixels)) for name in ("mean", "std", "entropy", "flat_fraction",
                                                         "sharp_edge_fraction", "dominant_fraction",
                                                         "reconstruction_error")}
    for start, images in iterate_chunks(pixels, config.chunk_size):
        rows = slice(start, start + len(images))
        histograms = grey_histograms(images)
        for name, values in pixel_statistics(images, histograms).items():
            signals[name][rows] = values.to_numpy()
        signals["flat_fraction"][rows] = flat_fraction(images, config.flat_max_step, config.chunk_size)
        ranges = grey_range(histograms, *config.grey_range_quantiles)
        signals["sharp_edge_fraction"][rows] = sharp_edge_fraction(images, ranges, config.sharp_min_jump,
                                                                   config.chunk_size)
        signals["dominant_fraction"][rows] = dominant_fraction(histograms, config.dominant_window)
    report("outlier statistics", 2, steps)
    fitted_on = eigenface_sample(len(pixels), config.pca_fit_sample, config.seed)
    # read a few hundred rows at a time: scattered reads of a memory-mapped store map their pages' neighbours too
    sample = np.concatenate([images for _, images in iterate_chunks(pixels, 256, fitted_on)])
    mean, axes = eigenfaces_of(normalized_thumbnails(sample, config.pca_side, config.chunk_size), config.pca_components)
    for start, images in iterate_chunks(pixels, config.chunk_size):
        signals["reconstruction_error"][start:start + len(images)] = reconstruction_error(
            normalized_thumbnails(images, config.pca_side, config.chunk_size), mean, axes, config.chunk_size)
    report("outlier statistics", 3, steps)
    table = pd.DataFrame({name: signals[name] for name in ("mean", "std", "entropy")})
    table = pd.concat([table, box_plot_outliers(signals["mean"], labels, config.whisker_iqr)], axis=1)
    for name in ("flat_fraction", "sharp_edge_fraction", "dominant_fraction", "reconstruction_error"):
        table[name] = signals[name]
    table["recurring_placeholder"] = recurring_placeholders(labels, exact_group_of, config.recurring_min_emotions)
    table = pd.concat([table, pixel_kind_scores(table, config)], axis=1)
    report("outlier statistics", steps, steps)
    return table


def score_outliers(pixels: np.ndarray, labels: np.ndarray, exact_group_of: np.ndarray | None = None, *,
                   progress: Progress | None = None, config: OutlierConfig | None = None) -> pd.DataFrame:
    """Per-image statistics, box-plot flags, the pixel signals and the pixel kinds' scores
    (`blank_score`, `placeholder_score`, `drawing_score`). `outlier_kinds.classify_outliers` turns
    them, with the face stage's table when there is one, into `outlier_kind`, `outlier_score` and
    `outlier`.

    Pure: the audit (fer_core/audit.py) caches the table by the data's fingerprint and this config.
    """
    config = config or OutlierConfig()
    report = progress or (lambda stage, done, total: None)
    if len(pixels) == 0:
        return compute_scores(np.zeros((1, 48, 48), np.uint8), np.zeros(1, np.int8), None, config, report).iloc[:0]
    return compute_scores(pixels, labels, exact_group_of, config, report)
