"""The mislabel detector on planted noise in the real FER-2013.

    python benchmarks/bench_mislabels.py --out DIR [--data ../shared/fer2013] [--workspace WS]
        [--noise 0.05] [--seed 0] [--folds K] [--size S] [--epochs N] [--model M]

Flips the labels of `--noise` of the Training images at random (seeded; each flipped image gets
a uniformly drawn other emotion) and records them in DIR/planted.csv, runs the detector (its
defaults unless told otherwise) on the noisy data, and reports in DIR/bench.json:

* precision and recall of the planted flips among the flagged images (all flagged, and the flagged
  Training images, since only Training labels were flipped), the precision of the top 500 by
  score, and the best recall reached by a score threshold at precision ≥ 0.5;
* how many of the exact-duplicate groups whose (original) emotions conflict get a suggestion that
  is one of their emotions;
* per suggestion-confidence threshold, what the `curate` policy's mislabels rule would relabel
  (`suggestion_precision`): how many Training images, and the share it turns back to the planted
  image's original emotion (the figure its default threshold should be chosen from);
* wall minutes, this process's peak RSS, the load average before and after.

FER-2013's own label noise stays in: images it mislabels are counted as false positives here,
so the precision figures are lower bounds. The result is cached in the workspace (resumes per
fold when interrupted), so run it in a workspace of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "fer2013"

from fer_core.dataset.loading import Dataset, load  # noqa: E402
from fer_core.duplicates.grouping import NO_GROUP, group_exact
from fer_core.labels import EMOTIONS, TRAINING  # noqa: E402
from fer_core.mislabels.config import MislabelConfig
from fer_core.mislabels.run import run_mislabels

TOP = 500
CONFIDENCE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def plant_flips(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, np.ndarray]:
    """The dataset with `fraction` of its Training labels flipped to another emotion, and the flipped rows."""
    rng = np.random.default_rng(seed)
    training = np.flatnonzero(dataset.usages == TRAINING)
    rows = np.sort(rng.choice(training, int(round(fraction * len(training))), replace=False))
    labels = dataset.labels.copy()
    labels[rows] = (labels[rows] + rng.integers(1, len(EMOTIONS), len(rows))) % len(EMOTIONS)
    return dataset.with_labels(labels), rows


def precision_recall(selected: np.ndarray, planted: np.ndarray) -> dict[str, float | int]:
    hits = int(np.isin(selected, planted).sum())
    return {"selected": int(len(selected)), "planted_found": hits,
            "precision": round(hits / max(1, len(selected)), 4), "recall": round(hits / max(1, len(planted)), 4)}


def suggestion_restores(table: pd.DataFrame, original: Dataset, planted: np.ndarray) -> float:
    """Share of the planted flips whose suggested emotion is the one the image had before the flip."""
    suggested = table["suggested_label"].to_numpy()[planted]
    return round(float((suggested == np.array(EMOTIONS)[original.labels[planted]]).mean()), 4)


def best_recall_at_precision(scores: np.ndarray, is_planted: np.ndarray, minimum_precision: float) -> dict:
    """Over every score threshold: the largest recall whose precision is at least `minimum_precision`."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(is_planted[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / max(1, is_planted.sum())
    good = np.flatnonzero(precision >= minimum_precision)
    if len(good) == 0:
        return {"recall": 0.0, "top_k": 0, "precision": None}
    best = good[np.argmax(recall[good])]
    return {"recall": round(float(recall[best]), 4), "top_k": int(best + 1),
            "precision": round(float(precision[best]), 4)}


def suggestion_precision(table: pd.DataFrame, original: Dataset, noisy: Dataset, planted: np.ndarray,
                         thresholds: tuple[float, ...] = CONFIDENCE_THRESHOLDS) -> list[dict]:
    """Per threshold, the images the curate policy's mislabels rule would relabel (Training, suggestion
    differs from the noisy label with at least that confidence): how many; `precision`, the share relabelled
    back to the planted image's original emotion (a right relabel; FER-2013's own wrong labels count
    against it, so a lower bound); `recall`, the share of the planted flips put right."""
    names = np.array(EMOTIONS)
    suggested = table["suggested_label"].to_numpy().astype(str)
    confidence = table["suggested_confidence"].to_numpy(dtype=np.float64)
    differs = (suggested != names[noisy.labels]) & (noisy.usages == TRAINING)
    put_right = np.zeros(len(noisy), dtype=bool)
    put_right[planted] = suggested[planted] == names[original.labels[planted]]
    figures = []
    for threshold in thresholds:
        chosen = differs & (confidence >= threshold)
        count = int(chosen.sum())
        figures.append({"threshold": threshold, "relabelled": count,
                        "precision": round(float(put_right[chosen].mean()), 4) if count else None,
                        "recall": round(float(put_right[chosen].sum() / max(1, len(planted))), 4)})
    return figures


def conflicting_groups(original: Dataset, table: pd.DataFrame) -> dict[str, int]:
    """Exact groups whose original emotions disagree: how many get a suggestion that is one of them."""
    group_of = group_exact(original.pixels)
    counted = matched = 0
    for group in np.unique(group_of[group_of != NO_GROUP]):
        rows = np.flatnonzero(group_of == group)
        emotions = {EMOTIONS[label] for label in original.labels[rows]}
        if len(emotions) < 2:
            continue
        counted += 1
        suggestions = set(table["suggested_label"].iloc[rows])
        matched += int(len(suggestions) == 1 and suggestions <= emotions)
    return {"exact_conflicting_groups": counted, "suggestion_is_one_of_their_emotions": matched}


def main(argv: list[str] | None = None) -> int:
    defaults = MislabelConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--out", required=True)
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--size", default=defaults.size)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    args = parser.parse_args(argv)
    config = MislabelConfig(folds=args.folds, model=args.model, size=args.size, epochs=args.epochs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    load_before = os.getloadavg()
    started = time.perf_counter()
    original = load(args.data, workspace=args.workspace)
    noisy, planted = plant_flips(original, args.noise, args.seed)
    pd.DataFrame({"id": original.ids[planted], "original": np.array(EMOTIONS)[original.labels[planted]],
                  "planted": np.array(EMOTIONS)[noisy.labels[planted]]}).to_csv(out / "planted.csv", index=False)

    def report(progress) -> None:
        print(f"{time.perf_counter() - started:7.0f}s  {progress.describe()}  load {os.getloadavg()[0]:.1f}",
              flush=True)

    result = run_mislabels(noisy, config, workspace=args.workspace, curated=False, on_progress=report)
    seconds = time.perf_counter() - started
    table = result.table
    flagged = np.flatnonzero(table["is_label_issue"].to_numpy())
    training = noisy.usages == TRAINING
    scores = table["mislabel_score"].to_numpy()
    is_planted = np.zeros(len(noisy), dtype=bool)
    is_planted[planted] = True
    top = np.argsort(-scores, kind="stable")[:TOP]
    top_training = np.flatnonzero(training)[np.argsort(-scores[training], kind="stable")[:TOP]]
    figures = {
        "settings": result.summary["settings"],
        "noise": args.noise, "seed": args.seed, "planted": int(len(planted)),
        "flagged_all": precision_recall(flagged, planted),
        "flagged_training": precision_recall(flagged[training[flagged]], planted),
        f"top_{TOP}_all": precision_recall(top, planted),
        f"top_{TOP}_training": precision_recall(top_training, planted),
        "best_recall_at_precision_0.5": best_recall_at_precision(scores, is_planted, 0.5),
        "suggestion_restores_planted_label": suggestion_restores(table, original, planted),
        **conflicting_groups(original, table),
        "suggestion_precision_by_confidence": suggestion_precision(table, original, noisy, planted),
        "out_of_fold_accuracy_noisy_labels": result.summary["out_of_fold_accuracy"],
        "folds": result.summary["folds"],
        "from_cache": result.summary.get("from_cache", False),
        "detector_seconds": result.summary["seconds"],
        "wall_minutes": round(seconds / 60, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    (out / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({key: value for key, value in figures.items() if key != "folds"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
