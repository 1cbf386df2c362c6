"""What a run's per-image predictions say: test-set sizes and comparability, a confusion cell's images.

Pure functions of run records and their `predictions.csv` (written by training/fit.py: one row per
scored PublicTest/PrivateTest image with its label, prediction and probabilities).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from fer_core.views.confusion import confusion_of

if TYPE_CHECKING:
    from fer_core.jobs import RunRecord

SMALL_TEST_SET = 1_000  # below this many PrivateTest images, a point of accuracy is a handful of images
PREDICTIONS_NAME = "predictions.csv"  # training.PREDICTIONS_NAME (training imports TensorFlow lazily, not here)


def read_predictions(record: "RunRecord") -> pd.DataFrame | None:
    """The run's predictions.csv (one row per scored test image), or None when it wrote none (older runs)."""
    path = Path(record.out_dir) / PREDICTIONS_NAME
    return pd.read_csv(path) if path.is_file() else None


def test_set_note(record: "RunRecord") -> str:
    """How many PrivateTest images the run's figures count, e.g. `3,589 PrivateTest images`."""
    count = (record.metrics or {}).get("test_images")
    return f"{count:,} PrivateTest images" if count is not None else "test-set size not recorded"


def test_set_warnings(records: Sequence["RunRecord"]) -> list[str]:
    """Warnings that make figures hard to read or compare: a small test set (small data, or a run from before
    `--limit` left the test splits whole), and runs scored on different test images (compared by the ids
    in predictions.csv, else by count)."""
    warnings = []
    for record in records:
        count = (record.metrics or {}).get("test_images") or 0
        if count < SMALL_TEST_SET:
            warnings.append(f"Run {record.run_id} was scored on only {count:,} PrivateTest images: one image moves "
                            f"its accuracy by {1 / max(count, 1):.1%}; differences of a few points are noise.")
    if len(records) == 2:
        first, second = (test_image_ids(record) for record in records)
        counts = [(record.metrics or {}).get("test_images") for record in records]
        differ = first != second if first is not None and second is not None else counts[0] != counts[1]
        if differ:
            warnings.append(f"The two runs were scored on different PrivateTest images ({counts[0]:,} vs "
                            f"{counts[1]:,}): their accuracies do not compare image for image.")
    return warnings


def test_image_ids(record: "RunRecord") -> frozenset[str] | None:
    predictions = read_predictions(record)
    if predictions is None:
        return None
    return frozenset(predictions.loc[predictions["usage"] == "PrivateTest", "id"])


def misclassified(predictions: pd.DataFrame, true_emotion: str, predicted_emotion: str,
                  usage: str = "PrivateTest") -> pd.DataFrame:
    """The images of one confusion-matrix cell (true × predicted), most confident prediction first."""
    cell = predictions[(predictions["usage"] == usage) & (predictions["label"] == true_emotion)
                       & (predictions["predicted"] == predicted_emotion)].copy()
    cell["confidence"] = cell[f"p_{predicted_emotion}"]
    return cell.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


def worst_cell(metrics: dict[str, Any]) -> tuple[str, str]:
    """The off-diagonal confusion cell with the most images (true, predicted): a useful first look."""
    matrix = confusion_of(metrics).copy()
    np.fill_diagonal(matrix, -1)
    row, column = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
    return matrix.emotions[row], matrix.emotions[column]


