"""Raw against curated data, honestly: both arms scored on the same test images with their original
labels, over several seeds, with 95 % intervals. Pure statistics of per-seed predictions (no files).

Definitions (S seeds, paired: row s of each arm was trained with the same seed; n test images):

* per arm and seed: accuracy, leak-free accuracy (the images without a Training copy in either arm)
  and macro-F1 (scikit-learn's, as in metrics.json); an arm's figure is their mean ± sd (ddof 1).
* paired seed difference: d_s = curated_s − raw_s; mean d̄, sd s_d, and the t interval
  d̄ ± t(0.975, S − 1) · s_d / √S (none with one seed: seed-to-seed variation is then unmeasured).
* paired bootstrap over test images: B resamples of the n images with replacement (seeded); the
  statistic is the mean over seeds of curated accuracy − raw accuracy on the resample, i.e. the mean
  of δ_i = mean_s(curated correct_s,i) − mean_s(raw correct_s,i) over the resampled images; the
  interval is the 2.5th and 97.5th percentiles.
* verdict (leak-free accuracy): "gained"/"lost" only when every interval there is excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_core.labels import EMOTIONS

if TYPE_CHECKING:
    import pandas as pd

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
ARM_METRICS = ("accuracy", "leak_free_accuracy", "macro_f1")
BOOTSTRAPPED = ("accuracy", "leak_free_accuracy")  # macro-F1 is not a mean over images
VERDICT_METRIC = "leak_free_accuracy"
RECALL_COLUMNS = ("emotion", "support", "raw_recall", "curated_recall", "difference", "low", "high")
DIGITS = 6


@dataclass(frozen=True, eq=False)
class PairedPredictions:
    """Both arms' predicted emotions (indices into `emotions`) on the same test images, one row per seed."""

    labels: np.ndarray  # (n,) the original labels
    leaked: np.ndarray  # (n,) True where a Training copy exists in either arm
    raw: np.ndarray  # (S, n)
    curated: np.ndarray  # (S, n)
    seeds: tuple[int, ...]
    emotions: tuple[str, ...] = EMOTIONS  # the data's label set

    def __post_init__(self) -> None:
        n = len(self.labels)
        if n == 0:
            raise ValueError("no test images to compare the arms on")
        if np.shape(self.leaked) != (n,):
            raise ValueError(f"leaked mask has shape {np.shape(self.leaked)}, expected ({n},)")
        for name in ("raw", "curated"):
            if np.shape(getattr(self, name)) != (len(self.seeds), n):
                raise ValueError(f"{name} predictions have shape {np.shape(getattr(self, name))}, "
                                 f"expected ({len(self.seeds)}, {n}): one row per seed, one column per test image")
        if not self.seeds:
            raise ValueError("no seeds to compare the arms over")


def arm_scores(labels: np.ndarray, leaked: np.ndarray, predictions: np.ndarray) -> dict[str, list[float | None]]:
    """Per seed (rows of `predictions`): accuracy, leak-free accuracy (None without a leak-free image), macro-F1."""
    from sklearn.metrics import f1_score

    correct = predictions == labels[np.newaxis, :]
    clean = ~leaked
    return {
        "accuracy": [float(row.mean()) for row in correct],
        "leak_free_accuracy": [float(row[clean].mean()) if clean.any() else None for row in correct],
        "macro_f1": [float(f1_score(labels, row, average="macro", zero_division=0)) for row in predictions],
    }


def mean_and_sd(values: list[float | None]) -> dict[str, Any]:
    """{mean, sd, per_seed}: sd with ddof 1 (None for one value); all None when a value is missing."""
    per_seed = [None if value is None else round(value, DIGITS) for value in values]
    if any(value is None for value in values):
        return {"mean": None, "sd": None, "per_seed": per_seed}
    array = np.asarray(values, dtype=float)
    return {"mean": round(float(array.mean()), DIGITS),
            "sd": round(float(array.std(ddof=1)), DIGITS) if len(array) > 1 else None, "per_seed": per_seed}


def t_interval(differences: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, float | None]:
    """Mean, sd and the paired t interval of per-seed differences; low/high None with fewer than 2 seeds."""
    from scipy import stats

    differences = np.asarray(differences, dtype=float)
    mean = float(differences.mean())
    if len(differences) < 2:
        return {"mean": mean, "sd": None, "low": None, "high": None}
    sd = float(differences.std(ddof=1))
    half_width = float(stats.t.ppf((1 + confidence) / 2, len(differences) - 1)) * sd / np.sqrt(len(differences))
    return {"mean": mean, "sd": sd, "low": mean - half_width, "high": mean + half_width}


def paired_bootstrap(raw_correct: np.ndarray, curated_correct: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of mean_s(curated accuracy_s − raw accuracy_s) over test images resampled with
    replacement (the same resample for every seed and both arms: the pairing is kept)."""
    per_image = curated_correct.mean(axis=0) - raw_correct.mean(axis=0)  # δ_i
    rng = np.random.default_rng(seed)
    count = len(per_image)
    statistics = np.empty(resamples)
    chunk = max(1, 4_000_000 // max(count, 1))  # bounded memory on the full test set
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        statistics[start:stop] = per_image[rng.integers(0, count, size=(stop - start, count))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(statistics, [tail, 100 - tail])
    return float(low), float(high)


def recall_by_emotion(labels: np.ndarray, predictions: np.ndarray, classes: int = len(EMOTIONS)) -> np.ndarray:
    """(S, K) recall per seed and emotion (K = `classes`); NaN for an emotion no test image has."""
    recalls = np.full((len(predictions), classes), np.nan)
    for emotion in range(classes):
        members = labels == emotion
        if members.any():
            recalls[:, emotion] = (predictions[:, members] == emotion).mean(axis=1)
    return recalls


def recall_differences(paired: PairedPredictions, confidence: float = CONFIDENCE) -> dict[str, dict[str, Any]]:
    """Per emotion: support, each arm's mean recall, and the paired seed difference with its t interval."""
    classes = len(paired.emotions)
    raw = recall_by_emotion(paired.labels, paired.raw, classes)
    curated = recall_by_emotion(paired.labels, paired.curated, classes)
    rows = {}
    for index, emotion in enumerate(paired.emotions):
        support = int((paired.labels == index).sum())
        if support == 0:
            rows[emotion] = {"support": 0, "raw_recall": None, "curated_recall": None, "difference": None,
                             "low": None, "high": None}
            continue
        interval = t_interval(curated[:, index] - raw[:, index], confidence)
        rows[emotion] = {"support": support, "raw_recall": _round(raw[:, index].mean()),
                         "curated_recall": _round(curated[:, index].mean()), "difference": _round(interval["mean"]),
                         "low": _round(interval["low"]), "high": _round(interval["high"])}
    return rows


def compare_arms(paired: PairedPredictions, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                 confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The statistics part of compare.json: arm summaries, paired differences, per-emotion recall, verdict."""
    labels, leaked = np.asarray(paired.labels), np.asarray(paired.leaked, dtype=bool)
    scores = {arm: arm_scores(labels, leaked, np.asarray(getattr(paired, arm))) for arm in ("raw", "curated")}
    correct = {arm: np.asarray(getattr(paired, arm)) == labels[np.newaxis, :] for arm in ("raw", "curated")}
    difference = {}
    for metric in ARM_METRICS:
        if any(value is None for arm in scores for value in scores[arm][metric]):
            difference[metric] = {"mean": None, "sd": None, "low": None, "high": None,
                                  "bootstrap_low": None, "bootstrap_high": None}
            continue
        interval = t_interval(np.subtract(scores["curated"][metric], scores["raw"][metric]), confidence)
        bootstrap: tuple[float | None, float | None] = (None, None)
        if metric in BOOTSTRAPPED:
            images = ~leaked if metric == "leak_free_accuracy" else np.ones_like(leaked)
            bootstrap = paired_bootstrap(correct["raw"][:, images], correct["curated"][:, images], resamples, seed,
                                         confidence)
        difference[metric] = {**{key: _round(value) for key, value in interval.items()},
                              "bootstrap_low": _round(bootstrap[0]), "bootstrap_high": _round(bootstrap[1])}
    result = {
        "seeds": list(paired.seeds),
        "test_images": len(labels),
        "leaked_test_images": int(leaked.sum()),
        "leak_free_test_images": int((~leaked).sum()),
        "arms": {arm: {metric: mean_and_sd(scores[arm][metric]) for metric in ARM_METRICS} for arm in scores},
        "difference": difference,
        "recall_difference": recall_differences(paired, confidence),
        "confidence": confidence,
        "bootstrap_resamples": resamples,
        "bootstrap_seed": seed,
    }
    result["verdict"] = verdict_sentence(result)
    return result


def verdict_sentence(comparison: dict[str, Any], metric: str = VERDICT_METRIC) -> str:
    """The result in plain words: "curation gained X ± Y points of …" only when every 95 % interval
    (seeds' t, test-image bootstrap) excludes 0, else "within noise"."""
    if comparison["difference"][metric]["mean"] is None:
        metric = "accuracy"  # every test image leaked: nothing leak-free to judge on
    difference = comparison["difference"][metric]
    name = metric.replace("_", " ").replace("leak free", "leak-free")
    seeds, images = len(comparison["seeds"]), comparison["leak_free_test_images" if metric == VERDICT_METRIC
                                                               else "test_images"]
    intervals = {label: (low, high) for label, low, high in (
        ("t interval over seeds", difference["low"], difference["high"]),
        ("test-image bootstrap interval", difference["bootstrap_low"], difference["bootstrap_high"]))
        if low is not None}
    mean = difference["mean"] * 100
    if difference["low"] is not None:
        plus_minus = (difference["high"] - difference["low"]) / 2 * 100
        seed_part = f"95 % t interval over {seeds} seeds"
    else:
        plus_minus = (difference["bootstrap_high"] - difference["bootstrap_low"]) / 2 * 100
        seed_part = "one seed: seed-to-seed variation not measured"
    boot_part = (f"test-image bootstrap {difference['bootstrap_low'] * 100:+.1f} to "
                 f"{difference['bootstrap_high'] * 100:+.1f} over {images:,} images")
    detail = f"({seed_part}; {boot_part})"
    if intervals and all(low > 0 for low, _ in intervals.values()):
        return f"curation gained {mean:.1f} ± {plus_minus:.1f} points of {name} {detail}"
    if intervals and all(high < 0 for _, high in intervals.values()):
        return f"curation lost {-mean:.1f} ± {plus_minus:.1f} points of {name} {detail}"
    spanning = [label for label, (low, high) in intervals.items() if low <= 0 <= high]
    which = (f"the 95 % {spanning[0]} contains 0" if len(spanning) == 1 else
             "both 95 % intervals contain 0" if spanning else "the 95 % intervals disagree in sign")
    return f"within noise: curated − raw {name} is {mean:+.1f} ± {plus_minus:.1f} points; {which} {detail}"


def relabelled_accuracy(relabelled: np.ndarray, curated: np.ndarray) -> float:
    """NOT A VALID MEASURE: the curated arm's mean accuracy against test labels relabelled by the mislabel
    suggestions (the circular figure: the suggestions come from models, so the test set bends towards them)."""
    return float((np.asarray(curated) == np.asarray(relabelled)[np.newaxis, :]).mean(axis=1).mean())


def recall_difference_frame(comparison: dict[str, Any]) -> pd.DataFrame:
    """The per-emotion recall difference (curated − raw) of a compare.json as a table for a figure:
    RECALL_COLUMNS, one row per emotion in the data's label-set order, NaN where an emotion has no test image."""
    import pandas as pd

    rows = [{"emotion": emotion, **values} for emotion, values in comparison["recall_difference"].items()]
    frame = pd.DataFrame(rows, columns=list(RECALL_COLUMNS))
    numeric = [column for column in RECALL_COLUMNS if column != "emotion"]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)
