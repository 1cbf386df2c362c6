"""Control for the planted-noise benchmark: the same detector on a data set whose own labels are clean.

    python benchmarks/bench_mislabels_control.py --out DIR [--noise 0.05] [--seeds 0 1 2 3 4]
        [--folds K] [--size S] [--epochs N] [--model M] [--pooling P]

On FER-2013 the planted-noise precision counts the data set's own mislabelled images as false
positives, so it cannot tell "the detector misses" from "FER-2013's own noise outranks the planted
flips". This control takes scikit-learn's bundled handwritten digits (UCI, 8×8, labels close to clean;
digits 0–6 stand in for the 7 classes; upscaled to 48×48), splits them 70/15/15 into Training /
PublicTest / PrivateTest (stratified, seeded), plants the same kind of flips in Training per seed,
runs the detector with the same settings, and reports the same figures (bench_mislabels.py's
functions) per seed and pooled over the seeds, in DIR/control.json. Nothing is cached (no workspace).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mislabels import PROJECT_ROOT, best_recall_at_precision, plant_flips, precision_recall, suggestion_restores  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT))
from fer_core.dataset.loading import Dataset  # noqa: E402
from fer_core.labels import EMOTIONS, IMAGE_SIDE, TRAINING, USAGES  # noqa: E402
from fer_core.mislabels.config import MislabelConfig
from fer_core.mislabels.run import find_mislabels


def digits_dataset(seed: int = 0) -> Dataset:
    """scikit-learn's digits 0..6 as 48×48 uint8 images with a stratified 70/15/15 usage split."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    keep = digits.target < len(EMOTIONS)
    images, labels = digits.images[keep], digits.target[keep]
    pixels = np.stack([np.asarray(Image.fromarray((image * 255 / 16).astype(np.uint8)).resize(
        (IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)) for image in images])
    rows = np.arange(len(labels))
    train, rest = train_test_split(rows, test_size=0.3, stratify=labels, random_state=seed)
    public, private = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=seed)
    usages = np.empty(len(labels), dtype=object)
    for usage, part in zip(USAGES, (train, public, private)):
        usages[part] = usage
    return Dataset(ids=np.array([f"digit{row:04d}" for row in rows]), pixels=pixels,
                   labels=labels.astype(np.int8), usages=usages.astype(str), source="sklearn digits 0-6")


def main(argv: list[str] | None = None) -> int:
    defaults = MislabelConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--size", default=defaults.size)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--pooling", default=defaults.pooling)
    args = parser.parse_args(argv)
    config = MislabelConfig(folds=args.folds, model=args.model, size=args.size, epochs=args.epochs,
                            pooling=args.pooling)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    original = digits_dataset()
    per_seed, all_scores, all_planted = [], [], []
    for seed in args.seeds:
        started = time.perf_counter()
        noisy, planted = plant_flips(original, args.noise, seed)
        result = find_mislabels(noisy, config)
        table = result.table
        scores = table["mislabel_score"].to_numpy()
        is_planted = np.zeros(len(noisy), dtype=bool)
        is_planted[planted] = True
        training = noisy.usages == TRAINING
        flagged = np.flatnonzero(table["is_label_issue"].to_numpy())
        per_seed.append({
            "seed": seed, "planted": int(len(planted)),
            "flagged_all": precision_recall(flagged, planted),
            "best_recall_at_precision_0.5": best_recall_at_precision(scores, is_planted, 0.5),
            "best_recall_at_precision_0.5_training": best_recall_at_precision(scores[training],
                                                                               is_planted[training], 0.5),
            "out_of_fold_accuracy_noisy_labels": result.summary["out_of_fold_accuracy"],
            "suggestion_restores_planted_label": suggestion_restores(table, original, planted),
            "seconds": round(time.perf_counter() - started, 1),
        })
        print(json.dumps(per_seed[-1]), flush=True)
        # Pooled over the seeds: the (score, planted) pairs of every seed's Training images ranked as one
        # list (one recipe, so the scores are comparable), for a figure on 5 × 44 flips instead of 44.
        all_scores.append(scores[training])
        all_planted.append(is_planted[training])
    pooled = best_recall_at_precision(np.concatenate(all_scores), np.concatenate(all_planted), 0.5)
    figures = {"data": original.source, "images": len(original), "by_usage": original.count_by_usage(),
               "noise": args.noise, "settings": result.summary["settings"], "per_seed": per_seed,
               "pooled_training_best_recall_at_precision_0.5": pooled,
               "mean_best_recall_at_precision_0.5": round(float(np.mean(
                   [seed["best_recall_at_precision_0.5"]["recall"] for seed in per_seed])), 4)}
    (out / "control.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({key: value for key, value in figures.items() if key != "per_seed"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
