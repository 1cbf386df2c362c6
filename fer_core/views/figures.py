"""Plotly figures for the app's pages and the report: counts per emotion and usage, the original
study's box plots of the average pixel value (overall and per emotion), with selectable points.

Box statistics are computed here, so the browser gets a few numbers per box, not 35,887 values;
the selectable points carry their dataset row as customdata.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.duplicates.status import label_codes, table_emotions
from fer_core.labels import USAGES
from fer_core.outliers.statistics import whiskers

USAGE_COLORS = {"Training": "#4C78A8", "PublicTest": "#F58518", "PrivateTest": "#54A24B"}
FLAGGED_COLOR, BEYOND_COLOR, BOX_COLOR = "#E45756", "#444444", "#4C78A8"
# Points a box plot ships to the browser at most (each carries its id): "every image" of a million would be
# 60 MB of JSON. Beyond it, the flagged images and a seeded sample of the others are plotted, and the title says so.
MAX_PLOTTED_POINTS = 20_000



def counts_figure(table: pd.DataFrame, curated: bool = True):
    """Images per emotion and usage, as grouped bars (the curated view drops dropped rows)."""
    import plotly.graph_objects as go

    view = table[~table["dropped"]] if curated else table
    label_column = "current_label" if curated else "label"
    emotions = table_emotions(table)
    usage_codes = pd.Categorical(view["usage"], categories=USAGES).codes.astype(np.int64)
    cells = np.bincount(usage_codes * len(emotions) + label_codes(view[label_column], emotions),
                        minlength=len(USAGES) * len(emotions)).reshape(len(USAGES), len(emotions))
    figure = go.Figure([go.Bar(name=usage, x=list(emotions), y=cells[i].tolist(),
                               marker_color=USAGE_COLORS[usage]) for i, usage in enumerate(USAGES)])
    figure.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=30, b=10),
                         yaxis_title="images", legend_title_text="usage",
                         title_text="Images per emotion and usage" + (" (curated)" if curated else " (as loaded)"))
    return figure


def _box(go, values: np.ndarray, position: int, name: str):
    """A horizontal box at `position` from precomputed statistics (1.5 × IQR whiskers)."""
    low, high = whiskers(values)
    first, median, third = np.percentile(values, [25, 50, 75])
    return go.Box(y=[position], q1=[first], median=[median], q3=[third], lowerfence=[values[values >= low].min()],
                  upperfence=[values[values <= high].max()], orientation="h", name=name, width=0.5,
                  marker_color=BOX_COLOR, showlegend=False, hoverinfo="x")


def _plotted(points: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """At most MAX_PLOTTED_POINTS of the points (flagged ones first, then a seeded sample, in table order),
    and words for the title when some are left out."""
    if len(points) <= MAX_PLOTTED_POINTS:
        return points, ""
    flagged = points["outlier"].to_numpy(dtype=bool)
    order = np.random.default_rng(0).permutation(len(points))
    chosen = np.concatenate([np.flatnonzero(flagged), order[~flagged[order]]])[:MAX_PLOTTED_POINTS]
    return points.iloc[np.sort(chosen)], f" ({MAX_PLOTTED_POINTS:,} of {len(points):,} images plotted)"


def _points(go, points: pd.DataFrame, positions: np.ndarray):
    """Selectable points just above their box, slightly jittered, red when flagged by the outlier score."""
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(points))
    return go.Scattergl(
        x=points["mean"].to_numpy(), y=positions + 0.42 + jitter, mode="markers", name="images",
        customdata=points.index.tolist(),  # a plain list: plotly.js would hand back typed arrays as dicts
        marker=dict(size=5, color=np.where(points["outlier"].to_numpy(), FLAGGED_COLOR, BEYOND_COLOR), opacity=0.7),
        text=points["id"].to_numpy(), hovertemplate="%{text}<br>mean %{x:.1f}<extra></extra>", showlegend=False)


def box_plot_figure(table: pd.DataFrame, show_all_points: bool = False):
    """The original study's figure: mean pixel value per emotion (current labels, live images) as
    horizontal boxes; the points beyond their emotion's whiskers (or every image) are selectable."""
    import plotly.graph_objects as go

    live, emotions = table[~table["dropped"]], table_emotions(table)
    figure = go.Figure()
    beyond = np.zeros(len(live), dtype=bool)
    for position, emotion in enumerate(emotions):
        members = (live["current_label"] == emotion).to_numpy()
        values = live["mean"].to_numpy()[members]
        if not len(values):
            continue
        figure.add_trace(_box(go, values, position, emotion))
        low, high = whiskers(values)
        beyond[members] = (values < low) | (values > high)
    points, left_out = _plotted(live if show_all_points else live[beyond])
    positions = label_codes(points["current_label"], emotions).astype(np.float64)
    figure.add_trace(_points(go, points, positions))
    figure.update_layout(height=520, margin=dict(l=10, r=10, t=30, b=10), dragmode="select",
                         xaxis_title="average pixel value", title_text="Average pixel value per emotion" + left_out,
                         yaxis=dict(tickvals=list(range(len(emotions))), ticktext=list(emotions),
                                    range=[-0.6, len(emotions) - 0.2]))
    return figure


def overall_box_figure(table: pd.DataFrame, show_all_points: bool = False):
    """The study's overall box plot: mean pixel value of every live image in one box; the points beyond
    its whiskers (or every image) are selectable."""
    import plotly.graph_objects as go

    live = table[~table["dropped"]]
    values = live["mean"].to_numpy()
    figure, left_out = go.Figure(), ""
    if len(values):
        figure.add_trace(_box(go, values, 0, "all"))
        low, high = whiskers(values)
        points, left_out = _plotted(live if show_all_points else live[(values < low) | (values > high)])
        figure.add_trace(_points(go, points, np.zeros(len(points))))
    figure.update_layout(height=520, margin=dict(l=10, r=10, t=30, b=10), dragmode="select",
                         xaxis_title="average pixel value", title_text="All images" + left_out,
                         yaxis=dict(tickvals=[0], ticktext=["all"], range=[-0.6, 0.8]))
    return figure
