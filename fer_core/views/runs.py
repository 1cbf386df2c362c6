"""What the Train and Results pages show about training runs, as pure functions of run records.

Times (elapsed, ETA, durations), tables (queue with progress and ETA, finished runs), training curves
and download bytes. Nothing here imports streamlit, so every view is tested without a browser.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from fer_core.curation.replay import count_edits_in_effect
from fer_core.training.estimates import estimate_remaining_seconds
from fer_core.views.confusion import confusion_of, per_class_table

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from fer_core.curation.edits import Edit
    from fer_core.jobs import RunRecord


SUCCEEDED = "succeeded"  # jobs.SUCCEEDED; jobs is not imported here so the page logic stays light


ACTIVE_STATES = ("queued", "running")


CURVE_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


HISTORY_NAME = "history.json"


TRAIN_KIND = "train"  # jobs' kind of a training run; other kinds (suspected mislabels) are jobs, not runs
KIND_NAMES = {TRAIN_KIND: "training", "mislabels": "suspected mislabels"}


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


def data_version(record: "RunRecord", edit_log: Sequence["Edit"] = ()) -> str:
    """`raw`, or `curated · N edits`: the edits in effect when the run was submitted (relabels, drops and
    restores not undone by then), the count the Overview shows, not rows of the log."""
    if record.config.get("raw"):
        return "raw"
    submitted = parse_time(record.created_at)
    count = count_edits_in_effect([edit for edit in edit_log if parse_time(edit.created_at) <= submitted])
    return f"curated · {count:,} edit{'s' if count != 1 else ''} in effect"


def planned_epochs(record: "RunRecord") -> int:
    """The epochs a run plans, by its typed config's own rule (`epochs_to_run`; a mislabel job's per fold);
    for a run whose stored config no longer parses, the epochs it reported."""
    settings = record.settings
    return settings.epochs_to_run if settings is not None else len(record.events)


def describe_run(record: "RunRecord") -> str:
    """A one-line label for pickers: model, sampling, data, epochs, when, id."""
    config = record.config
    data = "raw" if config.get("raw") else "curated"
    limit = f" · limit {config['limit']:,}" if config.get("limit") else ""
    when = (parse_time(record.created_at) or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M")
    return (f"{config.get('model')} · {config.get('sampling')} · {data} · {config.get('size')} · "
            f"{planned_epochs(record)} ep{limit} · {when} ({record.run_id})")


def kind_name(record: "RunRecord") -> str:
    """What a job is, in words: `training`, `suspected mislabels`."""
    return KIND_NAMES.get(record.kind, record.kind)


def queue_table(records: Sequence["RunRecord"], now: datetime | None = None) -> pd.DataFrame:
    """One row per job with its live progress: its kind, epoch x / N, percent done, elapsed, ETA, the last
    epoch's loss and accuracies, what it trains, and its stage. Progress columns come first: they change.
    Epoch columns are a training run's; another kind (suspected mislabels: folds of models) says where it
    is in its stage, not as a training run stuck at epoch 0."""
    rows = []
    for record in records:
        config, last = record.config, (record.events[-1] if record.events else {})
        training = record.kind == TRAIN_KIND
        epochs = planned_epochs(record)
        remaining = (estimate_remaining_seconds([event["seconds"] or 0.0 for event in record.events], epochs)
                     if record.state == "running" and training else None)
        rows.append({
            "run": record.run_id,
            "kind": kind_name(record),
            "state": record.state,
            "model": config.get("model"),
            "sampling": config.get("sampling"),
            "data": "raw" if config.get("raw") else "curated",
            "epoch": f"{len(record.events)} / {epochs}" if training else "—",
            "progress": 100.0 * len(record.events) / max(1, epochs) if training else None,
            "loss": last.get("loss"),
            "accuracy": last.get("accuracy"),
            "val_accuracy": last.get("val_accuracy"),
            "elapsed": format_duration(elapsed_seconds(record, now)),
            "eta": format_duration(remaining) if record.state == "running" and training else "—",
            "stage": stage_text(record),
        })
    return pd.DataFrame(rows, columns=["run", "kind", "state", "epoch", "progress", "elapsed", "eta", "loss",
                                       "accuracy", "val_accuracy", "model", "sampling", "data", "stage"])


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
            "epochs": f"{metrics.get('epochs_run', len(record.events))} / {planned_epochs(record)}",
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
    """Succeeded training runs that recorded metrics (what the Results page can show), newest first as given;
    a suspected-mislabels job's summary is not a run's scores."""
    return [record for record in records if record.kind == TRAIN_KIND and record.state == SUCCEEDED and record.metrics]


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


def metrics_csv(record: "RunRecord") -> bytes:
    """One row per emotion: the run's settings and overall scores, per-emotion scores and confusion counts."""
    metrics, config = record.metrics or {}, record.config
    table = per_class_table(metrics)
    confusion = confusion_of(metrics)
    for index, emotion in enumerate(confusion.emotions):
        table[f"predicted_{emotion}"] = np.asarray(confusion)[:, index]
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
