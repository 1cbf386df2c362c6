"""What the Train and Results pages show about training runs, as pure functions of run records.

Tables (queue with progress and ETA, finished runs, per-emotion metrics, recall changes), Plotly
figures (confusion matrix in counts or row-normalized, difference of two runs, training curves)
and download bytes. Nothing here imports streamlit, so every view is tested without a browser.
Confusion matrices follow training.py: rows are true emotions, columns predicted, FER order.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from fer_core.labels import EMOTIONS

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from fer_core.curation.edits import Edit
    from fer_core.jobs import RunRecord

SUCCEEDED = "succeeded"  # jobs.SUCCEEDED; jobs is not imported here so the page logic stays light
ACTIVE_STATES = ("queued", "running")
CURVE_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
HISTORY_NAME = "history.json"


# ---------------------------------------------------------------------------------------------
# Time: elapsed, ETA, durations in words


def parse_time(text: str | None) -> datetime | None:
    """An ISO timestamp from the runs table or the edit log (seconds or milliseconds), or None."""
    return datetime.fromisoformat(text) if text else None


def elapsed_seconds(record: "RunRecord", now: datetime | None = None) -> float | None:
    """Seconds from the start of a run to its end (or to `now` while it runs); None before it starts."""
    started = parse_time(record.started_at)
    if started is None:
        return None
    ended = parse_time(record.finished_at) or now or datetime.now(timezone.utc)
    return max(0.0, (ended - started).total_seconds())


def estimate_remaining_seconds(epoch_seconds: Sequence[float], epochs: int) -> float | None:
    """Seconds until the last epoch ends: remaining epochs × the typical epoch time; None before the first.

    The first epoch includes graph compilation, so once later epochs exist it is left out of the
    typical time (the median of the last three). Early stopping can end a run sooner: an upper bound.
    """
    done = len(epoch_seconds)
    if done == 0:
        return None
    steady = list(epoch_seconds[1:]) if done > 1 else list(epoch_seconds)
    return max(0, epochs - done) * float(np.median(steady[-3:]))


def format_duration(seconds: float | None) -> str:
    """`1 h 02 min`, `3 min 05 s`, `42 s`; an em dash for unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def planned_epochs(config: dict[str, Any]) -> int:
    """The epochs a run's config plans: its `epochs`, else its size's default (TrainConfig.epochs_to_run)."""
    from fer_core.training.config import DEFAULT_EPOCHS

    return int(config.get("epochs") or DEFAULT_EPOCHS.get(config.get("size") or "full", 1))


REFERENCE_IMAGES_PER_SECOND = {"tiny": {None: 900.0}, "full": {None: 79.0}, "fast": {
    None: 400.0, "cnn": 373.0, "cnn_lstm": 400.0, "vit": 790.0, "cnn_attention": 400.0, "xception": 630.0}}
FULL_TRAINING_IMAGES = 28_709  # FER-2013's Training split
RESAMPLED_SHARE = 50_505 / 28_709  # ROS and SMOTE grow every emotion to the largest (happy)
RUN_OVERHEAD_SECONDS = 60.0  # TensorFlow start, leak search, evaluation and writing


def reference_images_per_second(size: str | None, model: str | None) -> float:
    """Training images/s (batch 128) of a size and model on the idle 2-core dev VM (README): the estimate's fallback."""
    by_model = REFERENCE_IMAGES_PER_SECOND.get(size or "full", REFERENCE_IMAGES_PER_SECOND["full"])
    return by_model.get(model, by_model[None])


def estimate_run_seconds(config: dict[str, Any], finished: Sequence["RunRecord"] = (),
                         training_images: int = FULL_TRAINING_IMAGES) -> tuple[float, str]:
    """Seconds a run will take (planned epochs, no early stop) and what the estimate rests on.

    Speed: the median images/s of this workspace's finished runs of the same model and size when
    there are any, else the reference speed of the size measured on the development VM.
    """
    speeds = [record.metrics["images_per_second"] for record in finished
              if record.metrics and record.metrics.get("images_per_second")
              and record.config.get("model") == config.get("model") and record.config.get("size") == config.get("size")]
    if speeds:
        speed, basis = float(np.median(speeds)), f"the speed of {len(speeds)} finished run(s) like it here"
        basis = f"at {speed:,.0f} training images/s, {basis}"
    else:
        speed = reference_images_per_second(config.get("size"), config.get("model"))
        basis = (f"at about {speed:,.0f} training images/s, measured on an idle 2-core CPU "
                 f"(no finished {config.get('model')} {config.get('size')} run here yet)")
    images = min(training_images, config["limit"]) if config.get("limit") else training_images
    if config.get("sampling") in ("ros", "smote"):
        images *= RESAMPLED_SHARE
    full_split = training_images == FULL_TRAINING_IMAGES and not config.get("limit")
    basis += f", {planned_epochs(config)} epochs of {images:,.0f} training images{' (FER-2013)' if full_split else ''}"
    return RUN_OVERHEAD_SECONDS + planned_epochs(config) * images / speed, basis


# ---------------------------------------------------------------------------------------------
# Tables of runs


def data_version(record: "RunRecord", edit_log: Sequence["Edit"] = ()) -> str:
    """`raw`, or `curated · N edits`: the rows of the edit log written before the run was submitted."""
    if record.config.get("raw"):
        return "raw"
    submitted = parse_time(record.created_at)
    count = sum(1 for edit in edit_log if parse_time(edit.created_at) <= submitted)
    return f"curated · {count:,} edit{'s' if count != 1 else ''}"


def describe_run(record: "RunRecord") -> str:
    """A one-line label for pickers: model, sampling, data, epochs, when, id."""
    config = record.config
    data = "raw" if config.get("raw") else "curated"
    limit = f" · limit {config['limit']:,}" if config.get("limit") else ""
    when = (parse_time(record.created_at) or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M")
    return (f"{config.get('model')} · {config.get('sampling')} · {data} · {config.get('size')} · "
            f"{planned_epochs(config)} ep{limit} · {when} ({record.run_id})")


def queue_table(records: Sequence["RunRecord"], now: datetime | None = None) -> pd.DataFrame:
    """One row per run with its live progress: epoch x / N, percent done, elapsed, ETA, the last epoch's
    loss and accuracies, what it trains, and its stage. Progress columns come first: they change."""
    rows = []
    for record in records:
        config, last = record.config, (record.events[-1] if record.events else {})
        epochs = planned_epochs(config)
        remaining = (estimate_remaining_seconds([event["seconds"] or 0.0 for event in record.events], epochs)
                     if record.state == "running" else None)
        rows.append({
            "run": record.run_id,
            "state": record.state,
            "model": config.get("model"),
            "sampling": config.get("sampling"),
            "data": "raw" if config.get("raw") else "curated",
            "epoch": f"{len(record.events)} / {epochs}",
            "progress": 100.0 * len(record.events) / max(1, epochs),
            "loss": last.get("loss"),
            "accuracy": last.get("accuracy"),
            "val_accuracy": last.get("val_accuracy"),
            "elapsed": format_duration(elapsed_seconds(record, now)),
            "eta": format_duration(remaining) if record.state == "running" else "—",
            "stage": stage_text(record),
        })
    return pd.DataFrame(rows, columns=["run", "state", "epoch", "progress", "elapsed", "eta", "loss", "accuracy",
                                       "val_accuracy", "model", "sampling", "data", "stage"])


def stage_text(record: "RunRecord") -> str:
    """What a run is doing, in words, including before its worker wrote a stage."""
    if record.stage:
        return record.stage
    return {"queued": "waiting for a free worker", "running": "starting"}.get(record.state, "")


def runs_table(records: Sequence["RunRecord"], edit_log: Sequence["Edit"] = ()) -> pd.DataFrame:
    """Finished-run summary: model, sampling, data version, accuracy, leak-free accuracy, macro-F1, device, duration."""
    rows = []
    for record in records:
        metrics, config = record.metrics or {}, record.config
        rows.append({
            "run": record.run_id,
            "model": config.get("model"),
            "sampling": config.get("sampling"),
            "size": config.get("size"),
            "data": data_version(record, edit_log),
            "train_images": metrics.get("train_images_before_sampling", metrics.get("train_images")),
            "epochs": f"{metrics.get('epochs_run', len(record.events))} / {planned_epochs(config)}",
            "test_images": metrics.get("test_images"),
            "accuracy": metrics.get("accuracy"),
            "leak_free_accuracy": metrics.get("leak_free_accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "device": metrics.get("device"),
            "duration": format_duration(metrics.get("seconds", elapsed_seconds(record))),
        })
    return pd.DataFrame(rows, columns=["run", "model", "sampling", "size", "data", "train_images", "test_images",
                                       "epochs", "accuracy", "leak_free_accuracy", "macro_f1", "device", "duration"])


def finished_with_metrics(records: Sequence["RunRecord"]) -> list["RunRecord"]:
    """Succeeded runs that recorded metrics (what the Results page can show), newest first as given."""
    return [record for record in records if record.state == SUCCEEDED and record.metrics]


def active_runs(records: Sequence["RunRecord"]) -> list["RunRecord"]:
    return [record for record in records if record.state in ACTIVE_STATES]


def default_comparison(records: Sequence["RunRecord"]) -> tuple[str, str]:
    """Run ids to compare first: (before, after) = (newest raw run, newest curated run) when both exist,
    else the second newest and the newest. `records` are finished runs, newest first, at least two."""
    curated = [record.run_id for record in records if not record.config.get("raw")]
    raw = [record.run_id for record in records if record.config.get("raw")]
    if curated and raw:
        return raw[0], curated[0]
    return records[1].run_id, records[0].run_id


# ---------------------------------------------------------------------------------------------
# Per-emotion metrics and confusion matrices


def confusion_of(metrics: dict[str, Any]) -> np.ndarray:
    """The 7×7 confusion matrix of a metrics dict; ValueError when it is missing or misshapen."""
    matrix = np.asarray(metrics.get("confusion", []), dtype=np.int64)
    if matrix.shape != (len(EMOTIONS), len(EMOTIONS)):
        raise ValueError(f"metrics hold no {len(EMOTIONS)}×{len(EMOTIONS)} confusion matrix (got shape {matrix.shape})")
    return matrix


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
    """Precision, recall, F1 and support per emotion, in FER order."""
    per_class = metrics.get("per_class", {})
    rows = [{"emotion": emotion, **{key: per_class.get(emotion, {}).get(key)
                                    for key in ("precision", "recall", "f1", "support")}} for emotion in EMOTIONS]
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

    counts = np.asarray(matrix)
    values = normalize_rows(counts) if normalized else counts
    text = [[f"{value:.0%}" if normalized else f"{int(value):,}" for value in row] for row in values]
    hover = "true %{y}, predicted %{x}: %{customdata} images" + (" (%{z:.1%} of the row)" if normalized else "")
    figure = go.Figure(go.Heatmap(
        z=values, x=list(EMOTIONS), y=list(EMOTIONS), text=text, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1 if normalized else None, customdata=counts, hovertemplate=hover + "<extra></extra>",
        colorbar={"title": "of row", "tickformat": ".0%"} if normalized else {"title": "images"}))
    if clickable:
        true, predicted = np.meshgrid(np.arange(len(EMOTIONS)), np.arange(len(EMOTIONS)), indexing="ij")
        figure.add_trace(go.Scatter(
            x=np.asarray(EMOTIONS)[predicted.ravel()], y=np.asarray(EMOTIONS)[true.ravel()], mode="markers",
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

    before, after = np.asarray(before), np.asarray(after)
    change = difference_matrix(before, after)
    counts = difference_matrix(before, after, normalized=False)
    support = np.minimum(before.sum(axis=1), after.sum(axis=1))
    tiny = support < min_support
    shown = np.where(tiny[:, np.newaxis], np.nan, change)
    limit = max(0.05, float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 0.05)
    text = [[f"{count:+,}" if count else "0" for count in row] for row in counts]
    hover = [[f"{int(support[row]):,} test images of this emotion (fewer than {min_support}: greyed out)" if tiny[row]
              else f"{change[row, column]:+.1%} of the row" for column in range(len(EMOTIONS))]
             for row in range(len(EMOTIONS))]
    figure = go.Figure(go.Heatmap(
        z=[[None if np.isnan(value) else float(value) for value in row] for row in shown], x=list(EMOTIONS),
        y=list(EMOTIONS), text=text, texttemplate="%{text}", colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
        customdata=hover, colorbar={"title": "share", "tickformat": "+.0%"},
        hovertemplate="true %{y}, predicted %{x}: %{text} images, %{customdata}<extra></extra>"))
    figure.update_layout(plot_bgcolor="#d9d9d9")  # greyed rows (no colour) show this background
    return _matrix_layout(figure, title)


def _matrix_layout(figure: "go.Figure", title: str) -> "go.Figure":
    figure.update_layout(title=title or None, height=460, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    figure.update_xaxes(title="predicted", side="bottom")
    figure.update_yaxes(title="true", autorange="reversed")
    return figure


# ---------------------------------------------------------------------------------------------
# Training curves


def read_history(record: "RunRecord") -> pd.DataFrame:
    """Per-epoch loss and accuracy (train and validation): history.json when the run wrote it, else its events."""
    path = Path(record.out_dir) / HISTORY_NAME
    if path.exists():
        history = json.loads(path.read_text())
        frame = pd.DataFrame({column: history.get(column) for column in CURVE_COLUMNS})
    else:
        frame = pd.DataFrame(list(record.events), columns=list(CURVE_COLUMNS))
    return frame.loc[:, list(CURVE_COLUMNS)]


def curves_figure(history: pd.DataFrame) -> "go.Figure":
    """Loss and accuracy per epoch, train solid and validation dashed, side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for column, (name, metric) in enumerate((("loss", "loss"), ("accuracy", "accuracy")), start=1):
        for prefix, label, dash, color in (("", "train", "solid", "#4C78A8"), ("val_", "validation", "dash", "#F58518")):
            figure.add_trace(go.Scatter(x=history["epoch"], y=history[f"{prefix}{metric}"], mode="lines+markers",
                                        name=label, line={"dash": dash, "color": color}, legendgroup=label,
                                        showlegend=column == 1), row=1, col=column)
    figure.update_xaxes(title="epoch", dtick=1 if len(history) <= 15 else None)
    figure.update_yaxes(tickformat=".0%", row=1, col=2)  # accuracy in percent, as everywhere on the page
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return figure


# ---------------------------------------------------------------------------------------------
# Downloads


def metrics_csv(record: "RunRecord") -> bytes:
    """One row per emotion: the run's settings and overall scores, per-emotion scores and confusion counts."""
    metrics, config = record.metrics or {}, record.config
    table = per_class_table(metrics)
    confusion = confusion_of(metrics)
    for index, emotion in enumerate(EMOTIONS):
        table[f"predicted_{emotion}"] = confusion[:, index]
    overall = {"run_id": record.run_id, "model": config.get("model"), "sampling": config.get("sampling"),
               "size": config.get("size"), "raw": bool(config.get("raw")), "seed": config.get("seed"),
               "accuracy": metrics.get("accuracy"), "leak_free_accuracy": metrics.get("leak_free_accuracy"),
               "macro_f1": metrics.get("macro_f1")}
    table = pd.concat([pd.DataFrame([overall] * len(table)), table], axis=1)
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode()


def metrics_json(record: "RunRecord") -> bytes:
    """The run's metrics.json content, with its id and config, as UTF-8 bytes."""
    payload = {"run_id": record.run_id, "config": record.config, "metrics": record.metrics}
    return (json.dumps(payload, indent=2) + "\n").encode()


def download_name(record: "RunRecord", extension: str) -> str:
    return f"fer_audit_{record.run_id}_metrics.{extension}"


def log_tail(record: "RunRecord", lines: int = 40) -> str:
    """The last lines of a run's log, for the error expander."""
    return "\n".join(record.log_text().splitlines()[-lines:])
