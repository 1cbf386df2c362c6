"""What the Results page, the report and the CLI show of a raw-against-curated comparison (compare.json):
the headline difference with its intervals, the per-arm table, recall per emotion as bars with error bars,
the circular figure's warning, and the experiment's progress. Pure functions of the compare.json dict and
of run records.

Units: an arm's score is a percentage of test images; a difference between arms is in percentage
points ("points"), every interval too. Text uses the minus sign (−), as printed matter does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from fer_core.training.compare import VERDICT_METRIC, recall_difference_frame
from fer_core.views.runs import queue_table

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from fer_core.jobs import RunRecord

METRIC_NAMES = {"accuracy": "accuracy", "leak_free_accuracy": "leak-free accuracy", "macro_f1": "macro-F1"}
GAINED, LOST, UNSURE = "#4C78A8", "#E45756", "#9D9D9D"  # interval above 0, below 0, containing 0
ACTIVE_STATES = ("queued", "running")
RECALL_FIGURE_NOTE = ("Each bar: an emotion's recall on the curated data minus on the raw data, in points, averaged "
                      "over the seeds; the whisker is its 95 % interval over seeds. Blue: the interval lies above 0 "
                      "(curation helped that emotion), red: below 0, grey: it contains 0. Under each emotion: its "
                      "PrivateTest images.")


def signed_points(value: float | None) -> str:
    """A difference (a fraction) in points: `+1.2`, `−0.3`; `n/a` when unknown."""
    return "n/a" if value is None else format(value * 100, "+.1f").replace("-", "−")


def bracket(low: float | None, high: float | None) -> str:
    """`[−0.3, +2.7]` in points; `n/a` when the interval was not computed."""
    return "n/a" if low is None or high is None else f"[{signed_points(low)}, {signed_points(high)}]"


def percent_with_sd(figure: dict[str, Any]) -> str:
    """An arm's {mean, sd} as `58.3% ± 0.4` (sd in points; one seed: no sd), never broken across lines."""
    if figure.get("mean") is None:
        return "n/a"
    spread = "" if figure.get("sd") is None else f"\u00a0±\u00a0{figure['sd'] * 100:.1f}"
    return f"{figure['mean'] * 100:.1f}%{spread}"


def headline_metric(comparison: dict[str, Any]) -> str:
    """The figure the verdict judges: leak-free accuracy, or accuracy when every test image leaked."""
    return VERDICT_METRIC if comparison["difference"][VERDICT_METRIC]["mean"] is not None else "accuracy"


def headline(comparison: dict[str, Any]) -> str:
    """`+1.2 points [−0.3, +2.7] (95 %, paired over 3 seeds)`: the judged difference and its t interval."""
    difference = comparison["difference"][headline_metric(comparison)]
    seeds = len(comparison["seeds"])
    if difference["low"] is None:
        return f"{signed_points(difference['mean'])} points (one seed: no interval over seeds)"
    return (f"{signed_points(difference['mean'])} points {bracket(difference['low'], difference['high'])} "
            f"(95 %, paired over {seeds} seeds)")


def headline_label(comparison: dict[str, Any]) -> str:
    return f"{METRIC_NAMES[headline_metric(comparison)].capitalize()}, curated − raw"


def bootstrap_line(comparison: dict[str, Any]) -> str:
    """The test-image bootstrap interval of the judged difference, saying what was resampled."""
    metric = headline_metric(comparison)
    difference = comparison["difference"][metric]
    images = comparison["leak_free_test_images" if metric == VERDICT_METRIC else "test_images"]
    which = "leak-free " if metric == VERDICT_METRIC else ""
    return (f"Test-image bootstrap: {bracket(difference['bootstrap_low'], difference['bootstrap_high'])} points "
            f"(95 %, {comparison['bootstrap_resamples']:,} resamples of the {images:,} {which}PrivateTest images, "
            "paired: both arms on the same resample)")


def arm_table(comparison: dict[str, Any]) -> pd.DataFrame:
    """One row per score: each arm's mean ± sd over the seeds (%), curated − raw and both 95 % intervals (points)."""
    rows = []
    for metric, name in METRIC_NAMES.items():
        difference = comparison["difference"][metric]
        rows.append({"score": name,
                     "raw": percent_with_sd(comparison["arms"]["raw"][metric]),
                     "curated": percent_with_sd(comparison["arms"]["curated"][metric]),
                     "curated − raw (points)": signed_points(difference["mean"]),
                     "95 % over seeds (t)": bracket(difference["low"], difference["high"]),
                     "95 % over test images (bootstrap)": bracket(difference["bootstrap_low"],
                                                                  difference["bootstrap_high"])})
    return pd.DataFrame(rows)


def arm_table_note(comparison: dict[str, Any]) -> str:
    seeds = ", ".join(map(str, comparison["seeds"]))
    return (f"Mean ± sd over seeds {seeds}, in % of the {comparison['test_images']:,} PrivateTest images every run "
            f"scored, with their original labels ({comparison['leaked_test_images']:,} with a Training copy left out "
            "of leak-free accuracy); differences and intervals in percentage points. Macro-F1 has no bootstrap "
            "(it is not a mean over images).")


def recall_difference_figure(comparison: dict[str, Any], height: int = 340) -> "go.Figure":
    """Recall per emotion, curated − raw, in points: a bar per emotion with its 95 % t interval over seeds as
    error bars, blue where the interval lies above 0, red below, grey where it contains 0 (or is unknown)."""
    import plotly.graph_objects as go

    frame = recall_difference_frame(comparison)
    points = frame[["difference", "low", "high"]] * 100
    colors = [GAINED if low > 0 else LOST if high < 0 else UNSURE for low, high in zip(points["low"], points["high"])]
    ticks = [emotion if support == 0 else f"{emotion}<br>{int(support):,}"
             for emotion, support in zip(frame["emotion"], frame["support"])]
    figure = go.Figure(go.Bar(
        x=ticks, y=points["difference"], marker_color=colors,
        error_y={"type": "data", "array": points["high"] - points["difference"],
                 "arrayminus": points["difference"] - points["low"], "color": "#333333", "thickness": 1.2},
        customdata=(frame[["raw_recall", "curated_recall"]] * 100).join(points[["low", "high"]]).to_numpy(),
        hovertemplate="%{x}<br>recall raw %{customdata[0]:.1f} %, curated %{customdata[1]:.1f} %<br>"
                      "curated − raw %{y:+.1f} points [%{customdata[2]:+.1f}, %{customdata[3]:+.1f}]<extra></extra>"))
    figure.add_hline(y=0, line_color="#666666", line_width=1)
    figure.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=False, template="plotly_white",
        title_text="Recall per emotion, curated − raw (bars: 95 % interval over seeds)",
        yaxis_title="recall difference (points)", xaxis_title="emotion (PrivateTest images)")
    return figure


def circular_text(comparison: dict[str, Any]) -> str:
    """The relabelled-test-set figure, always under NOT A VALID MEASURE and beside the honest one (one line)."""
    figure = comparison["not_a_valid_measure"]
    if figure["relabelled_test_accuracy"] is None:
        return f"NOT A VALID MEASURE (test labels relabelled by the mislabel suggestions): {figure['note']}"
    honest = comparison["arms"]["curated"]["accuracy"]["mean"]
    return (f"NOT A VALID MEASURE: curated accuracy {figure['relabelled_test_accuracy'] * 100:.1f} % if the "
            f"{figure['test_labels_changed']:,} test labels the mislabel suggestions would change were changed "
            f"(circular: the suggestions come from models); on the original labels {honest * 100:.1f} %.")


def describe_experiment(records: Sequence["RunRecord"]) -> str:
    """`cnn · none · size fast · 20 epochs · 3 seeds × raw, curated` for a picker or a title."""
    config = records[0].config
    seeds = len({record.config.get("seed") for record in records})
    epochs = records[0].settings.epochs_to_run if records[0].settings is not None else config.get("epochs")
    limit = f" · limit {config['limit']:,}" if config.get("limit") else ""
    return (f"{config.get('model')} · {config.get('sampling')} · size {config.get('size')} · {epochs} epochs{limit} · "
            f"{seeds} seed{'s' if seeds != 1 else ''} × raw, curated")


def describe_comparison(comparison: dict[str, Any]) -> str:
    """`cnn · none · size fast · 3 seeds × raw, curated` from compare.json's own config."""
    config, seeds = comparison.get("config", {}), len(comparison["seeds"])
    epochs = f" · {config['epochs']} epochs" if config.get("epochs") else ""
    limit = f" · limit {config['limit']:,}" if config.get("limit") else ""
    return (f"{config.get('model')} · {config.get('sampling')} · size {config.get('size')}{epochs}{limit} · "
            f"{seeds} seed{'s' if seeds != 1 else ''} × raw, curated")


def progress_table(records: Sequence["RunRecord"]) -> pd.DataFrame:
    """The experiment's runs, raw then curated by seed, with the queue's live columns (epoch, progress, ETA);
    the queue below shows the rest (elapsed, loss, accuracies)."""
    ordered = sorted(records, key=lambda record: (not record.config.get("raw"), record.config.get("seed") or 0))
    table = queue_table(ordered)
    table["arm"] = ["raw" if record.config.get("raw") else "curated" for record in ordered]
    table["seed"] = [record.config.get("seed") for record in ordered]
    return table[["arm", "seed", "state", "epoch", "progress", "eta", "stage", "run"]]


def progress_summary(records: Sequence["RunRecord"]) -> str:
    """`2 of 6 runs finished · 1 running · 3 queued` (failed and cancelled runs named by count)."""
    states = [record.state for record in records]
    finished = sum(state not in ACTIVE_STATES for state in states)
    parts = [f"{finished} of {len(states)} runs finished"]
    parts += [f"{states.count(state)} {state}" for state in ("running", "queued", "failed", "cancelled")
              if states.count(state)]
    return " · ".join(parts)


def failed_runs(records: Sequence["RunRecord"]) -> list[str]:
    """One line per run that failed or was cancelled: arm, seed, run id, error."""
    return [f"Run {record.run_id} ({'raw' if record.config.get('raw') else 'curated'}, seed "
            f"{record.config.get('seed')}) {record.state}" + (f": {record.error}" if record.error else "")
            for record in records if record.state in ("failed", "cancelled")]
