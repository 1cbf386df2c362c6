"""Confusion matrices of finished runs: counts and row-normalized, the difference of two runs, per-emotion
metrics and recall changes, and their Plotly figures.

Matrices follow training/fit.py: rows are true emotions, columns predicted, in the dataset's emotion order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fer_core.labels import EMOTIONS, EXTRA_CLASS_PREFIX

if TYPE_CHECKING:
    import plotly.graph_objects as go


class ConfusionMatrix(np.ndarray):
    """A K×K confusion matrix that carries its emotions (the run's label set), so every figure and table
    made from it names the rows and columns of the data it was trained on (numpy's subclassing recipe)."""

    emotions: tuple[str, ...]

    def __array_finalize__(self, obj: Any) -> None:
        self.emotions = getattr(obj, "emotions", EMOTIONS)


def emotions_of(metrics: dict[str, Any]) -> tuple[str, ...]:
    """A run's label set: metrics.json's `labels` (FER-2013's seven for a run that has none)."""
    return tuple(metrics.get("labels") or EMOTIONS)


def matrix_emotions(matrix: np.ndarray) -> tuple[str, ...]:
    """The emotions of a matrix's rows: its own when it carries them, else FER-2013's seven, then `class_7`, ..."""
    emotions = getattr(matrix, "emotions", None)
    if emotions is not None and len(emotions) == len(matrix):
        return tuple(emotions)
    return (EMOTIONS + tuple(f"{EXTRA_CLASS_PREFIX}{index}" for index in range(len(EMOTIONS), len(matrix))))[:len(matrix)]


def confusion_of(metrics: dict[str, Any]) -> ConfusionMatrix:
    """The K×K confusion matrix of a metrics dict (K = its emotions); ValueError when missing or misshapen."""
    emotions = emotions_of(metrics)
    matrix = np.asarray(metrics.get("confusion", []), dtype=np.int64)
    if matrix.shape != (len(emotions), len(emotions)):
        raise ValueError(f"metrics hold no {len(emotions)}×{len(emotions)} confusion matrix (got shape {matrix.shape})")
    labelled = matrix.view(ConfusionMatrix)
    labelled.emotions = emotions
    return labelled


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the recall view: where the images of one true emotion went); empty rows stay 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def difference_matrix(before: np.ndarray, after: np.ndarray, normalized: bool = True) -> np.ndarray:
    """`after − before`, row-normalized first by default, so test sets of different sizes compare fairly."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"confusion matrices differ in shape: {before.shape} vs {after.shape}")
    if normalized:
        return normalize_rows(after) - normalize_rows(before)
    return after.astype(np.int64) - before.astype(np.int64)


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Precision, recall, F1 and support per emotion, in the run's label-set order."""
    per_class = metrics.get("per_class", {})
    rows = [{"emotion": emotion, **{key: per_class.get(emotion, {}).get(key)
                                    for key in ("precision", "recall", "f1", "support")}}
            for emotion in emotions_of(metrics)]
    return pd.DataFrame(rows, columns=["emotion", "precision", "recall", "f1", "support"])


def recall_changes(before: dict[str, Any], after: dict[str, Any]) -> pd.DataFrame:
    """Per-emotion recall of two runs, its change and the change of F1 (after − before)."""
    first, second = per_class_table(before).set_index("emotion"), per_class_table(after).set_index("emotion")
    table = pd.DataFrame({
        "recall_before": first["recall"], "recall_after": second["recall"],
        "recall_change": second["recall"].astype(float) - first["recall"].astype(float),
        "f1_change": second["f1"].astype(float) - first["f1"].astype(float),
    })
    return table.reset_index()


def confusion_figure(matrix: np.ndarray, normalized: bool = False, title: str = "",
                     clickable: bool = False) -> "go.Figure":
    """A heatmap with emotion names, true emotions down, predicted across, the value written in each cell,
    the colour bar in the cells' unit (percent of the row, or images). `clickable`: an invisible square
    marker over each cell, because Streamlit's chart selections (`on_select`) return nothing for a heatmap
    (streamlit/streamlit#8760) but do for scatter points; a click selects the marker (x, y = the cell)."""
    import plotly.graph_objects as go

    emotions = list(matrix_emotions(matrix))
    counts = np.asarray(matrix)
    values = normalize_rows(counts) if normalized else counts
    text = [[f"{value:.0%}" if normalized else f"{int(value):,}" for value in row] for row in values]
    hover = "true %{y}, predicted %{x}: %{customdata} images" + (" (%{z:.1%} of the row)" if normalized else "")
    figure = go.Figure(go.Heatmap(
        z=values, x=emotions, y=emotions, text=text, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1 if normalized else None, customdata=counts, hovertemplate=hover + "<extra></extra>",
        colorbar={"title": "of row", "tickformat": ".0%"} if normalized else {"title": "images"}))
    if clickable:
        true, predicted = np.meshgrid(np.arange(len(emotions)), np.arange(len(emotions)), indexing="ij")
        figure.add_trace(go.Scatter(
            x=np.asarray(emotions)[predicted.ravel()], y=np.asarray(emotions)[true.ravel()], mode="markers",
            marker={"symbol": "square", "size": 40, "color": "rgba(0,0,0,0)"}, customdata=counts.ravel(),
            hovertemplate="true %{y}, predicted %{x}: %{customdata} images<extra></extra>", showlegend=False,
            selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}}))
    return _matrix_layout(figure, title)


MIN_ROW_SUPPORT = 30  # a true emotion with fewer test images in either run: its changes are noise


def difference_figure(before: np.ndarray, after: np.ndarray, title: str = "",
                      min_support: int = MIN_ROW_SUPPORT) -> "go.Figure":
    """`after − before` per cell: the change in images written in the cell, coloured by the change of the
    row's share (blue gained, red lost). Rows of a true emotion with fewer than `min_support` test
    images in either run are greyed out (no colour), so a few images cannot look like a big swing."""
    import plotly.graph_objects as go

    emotions = list(matrix_emotions(before if hasattr(before, "emotions") else after))
    before, after = np.asarray(before), np.asarray(after)
    change = difference_matrix(before, after)
    counts = difference_matrix(before, after, normalized=False)
    support = np.minimum(before.sum(axis=1), after.sum(axis=1))
    tiny = support < min_support
    shown = np.where(tiny[:, np.newaxis], np.nan, change)
    limit = max(0.05, float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 0.05)
    text = [[f"{count:+,}" if count else "0" for count in row] for row in counts]
    hover = [[f"{int(support[row]):,} test images of this emotion (fewer than {min_support}: greyed out)" if tiny[row]
              else f"{change[row, column]:+.1%} of the row" for column in range(len(emotions))]
             for row in range(len(emotions))]
    figure = go.Figure(go.Heatmap(
        z=[[None if np.isnan(value) else float(value) for value in row] for row in shown], x=emotions,
        y=emotions, text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
        customdata=hover, colorbar={"title": "share", "tickformat": "+.0%"},
        hovertemplate="true %{y}, predicted %{x}: %{text} images, %{customdata}<extra></extra>"))
    figure.update_layout(plot_bgcolor="#d9d9d9")  # greyed rows (no colour) show this background
    return _matrix_layout(figure, title)


def _matrix_layout(figure: "go.Figure", title: str) -> "go.Figure":
    figure.update_layout(title=title or None, height=460, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    figure.update_xaxes(title="predicted", side="bottom")
    figure.update_yaxes(title="true", autorange="reversed")
    return figure
