"""Glue of the Train and Results pages: launching and cancelling runs from callbacks, the live queue,
and the column formats of the results tables.

Runs live in SQLite and their own processes (fer_core.jobs): they go on when a page is left,
reloaded, or the server restarts. The queue's poll calls `jobs.drain()`, the one call that brings
run states up to date and starts queued work; listing runs never starts anything.
"""

from __future__ import annotations

import streamlit as st

from fer_core import jobs
from fer_core.jobs.compare import compare_configs, submit_compare
from fer_core.jobs.experiments import submit_sweep, sweep_configs
from fer_core.labels import TRAINING
from fer_core.training import estimates
from fer_core.training.config import TrainConfig
from fer_core.views import image_tiles, predictions, study
from fer_core.views import runs as results
from fer_core.workspace import check_under_data_root, data_root

from . import audit_task, speed
from .detail import tiles_with_details
from .session import DATA_PATH, call_safely, flash, workspace

REFRESH_SECONDS = 2
SHOWN_RUNS = 12
# Widget keys of the Train form.
MODEL, SAMPLING, SIZE, DATA, EPOCHS, BATCH_SIZE, SEED, LIMIT = (
    "train_model", "train_sampling", "train_size", "train_data", "train_epochs", "train_batch_size", "train_seed",
    "train_limit")
VARIANT, MODE, GRID_MODELS, GRID_SAMPLINGS, GRID_DATA, SEEDS = (
    "train_variant", "train_mode", "train_grid_models", "train_grid_samplings", "train_grid_data", "train_seeds")
ONE_RUN, GRID, COMPARE = "One run", "Grid (models × samplings × data)", "Curated vs raw, N seeds"
DEFAULT_SEEDS = 3
LAUNCHED_COMPARISON = "launched_comparison"  # the experiment id the Compare launcher queued in this session

# One unit on the Results page: every score and every change of a score in percent.
SCORES = {name: st.column_config.NumberColumn(label, format="percent") for name, label in (
    ("accuracy", "accuracy"), ("leak_free_accuracy", "leak-free acc."), ("macro_f1", "macro-F1"),
    ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("recall_before", "recall before"),
    ("recall_after", "recall after"))}
LABELS = {"train_images": st.column_config.NumberColumn("train images", format="localized"),  # 28,709 as elsewhere
          "test_images": st.column_config.NumberColumn("test images", format="localized"),
          "run": st.column_config.TextColumn("run", width="medium")}
CHANGES = {name: st.column_config.NumberColumn(label, format="percent")
           for name, label in (("recall_change", "Δ recall"), ("f1_change", "Δ F1"))}


def config_from_form() -> TrainConfig:
    """The TrainConfig the Train form's widgets describe (ValueError naming a bad value)."""
    state = st.session_state
    variant = state.get(VARIANT) if state[MODEL] == "cnn_lstm" else None
    return TrainConfig(model=state[MODEL], sampling=state[SAMPLING],
                       epochs=int(state[EPOCHS]) if state[EPOCHS] else None, variant=variant,
                       batch_size=int(state[BATCH_SIZE]), size=state[SIZE], seed=int(state[SEED]),
                       limit=int(state[LIMIT]) if state[LIMIT] else None, raw=state[DATA] == "raw")


def planned_configs() -> list[TrainConfig]:
    """What Launch would queue: the one config, every cell of the grid, or raw and curated per seed (ValueError
    on a bad value)."""
    base = config_from_form()
    if st.session_state[MODE] == COMPARE:
        return compare_configs(base, int(st.session_state[SEEDS]))
    if st.session_state[MODE] != GRID:
        return [base]
    return sweep_configs(base, st.session_state[GRID_MODELS], st.session_state[GRID_SAMPLINGS],
                         st.session_state[GRID_DATA])


def estimate() -> tuple[float | None, str]:
    """(seconds, `Estimated time: …`) for what Launch would queue (runs go one after another); no seconds
    when the form holds a bad value."""
    try:
        configs = planned_configs()
        finished = results.finished_with_metrics(jobs.list_runs())
        machine = speed.this_machine()  # the speeds of runs and measurements here count for runs here
        images = training_images()
        run_estimates = [estimates.estimate_run_seconds(config, finished, training_images=images,
                                                        measured=speed.measured_speed(config),
                                                        this_machine=machine) for config in configs]
    except ValueError as error:
        return None, f"Cannot estimate: {error}"
    total = sum(seconds for seconds, _ in run_estimates)
    what = "one run" if len(configs) == 1 else f"{len(configs)} runs, one after another"
    return total, (f"Estimated time: **{results.format_duration(total)}** for {what}, {run_estimates[0][1]}. "
                   f"Early stopping can end a run sooner.{speed.measurement_note(configs[0])}")


def training_images() -> int:
    """The Training images of the data the form names, once its audit is in (FER-2013's count until then)."""
    report = audit_task.finished_audit()
    if report is None:
        return estimates.FULL_TRAINING_IMAGES
    return int((report.dataset.usages == TRAINING).sum())


def launch() -> None:
    """Callback of the Launch button: queue the run, or the grid or the comparison as one experiment."""
    configs = call_safely(planned_configs, failure="Cannot launch")
    if not configs:
        return
    path = call_safely(check_under_data_root, st.session_state[DATA_PATH], data_root(), failure="Cannot launch")
    if path is None:
        return
    if st.session_state[MODE] == ONE_RUN:
        run_id = call_safely(jobs.submit, configs[0], str(path), failure="Cannot launch")
        if run_id is not None:
            flash("ok", f"Run {run_id} queued")
        return
    state = st.session_state
    if state[MODE] == COMPARE:
        queued = call_safely(submit_compare, config_from_form(), int(state[SEEDS]), str(path),
                             failure="Cannot launch the comparison")
        if queued is not None:
            state[LAUNCHED_COMPARISON] = queued[0]
            flash("ok", f"Experiment {queued[0]} queued: {len(queued[1])} runs (raw and curated × "
                        f"{int(state[SEEDS])} seeds)")
        return
    submitted = call_safely(submit_sweep, config_from_form(), state[GRID_MODELS], state[GRID_SAMPLINGS],
                            state[GRID_DATA], str(path), failure="Cannot launch the grid")
    if submitted is not None:
        flash("ok", f"Experiment {submitted[0]} queued: {len(submitted[1])} runs")


def cancel(run_id: str) -> None:
    record = call_safely(jobs.cancel, run_id, failure=f"Cannot cancel run {run_id}")
    if record is not None:
        flash("ok", f"Run {run_id} is {record.state}")


@st.fragment(run_every=REFRESH_SECONDS)
def show_queue() -> None:
    """The runs table, live: each poll drains the queue (updates states, starts queued runs)."""
    try:
        jobs.drain()
        records = jobs.list_runs()
    except ValueError as error:
        st.error(image_tiles.escape_markdown(f"Cannot read the runs: {error}"))
        return
    if not records:
        st.info("No runs yet: launch one above.")
        return
    st.dataframe(results.queue_table(records[:SHOWN_RUNS]), hide_index=True, key="train_queue", column_config={
        "run": st.column_config.TextColumn("run", width="medium"),
        "kind": st.column_config.TextColumn("kind", help="training, or suspected mislabels (started on the Overview)"),
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=100.0, format="%.0f%%"),
        "loss": st.column_config.NumberColumn("loss", format="%.3f"),  # a loss is not a share: no percent
        "accuracy": st.column_config.NumberColumn("train accuracy", format="percent"),  # as on Results
        "val_accuracy": st.column_config.NumberColumn("PublicTest accuracy", format="percent")})
    for record in results.active_runs(records):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.write(f"**{record.run_id}** · {results.kind_name(record)} · {record.config.get('model')} · "
                     f"{record.state}: {image_tiles.escape_markdown(results.stage_text(record))}")
            st.button("Cancel", key=f"cancel_{record.run_id}", on_click=cancel, args=(record.run_id,),
                      icon=":material/stop_circle:")
    for record in [record for record in records[:SHOWN_RUNS] if record.state == jobs.FAILED][:3]:
        st.error(f"Run {record.run_id} failed: {image_tiles.escape_markdown(record.error or 'no reason recorded')}")
        with st.expander(f"Log of run {record.run_id}"):
            st.code(results.log_tail(record) or "(empty log)", language=None)
    if results.finished_with_metrics(records):
        st.page_link("pages/5_Results.py", label="See the results", icon=":material/analytics:")


# ---------------------------------------------------------------------------------------------
# Results page: misclassified images of a confusion cell, the experiment grid

TILES_SHOWN = 24
TRUE_CELL, PREDICTED_CELL = "results_cell_true", "results_cell_predicted"


@st.cache_resource(show_spinner="Reading the images…", max_entries=2)
def _dataset(path: str, workspace_path: str):
    """The dataset a run was trained on (its decoded cache makes this a second or two), held once."""
    from fer_core.dataset.loading import load

    return load(path, workspace=workspace_path)


def select_cell(chart_key: str) -> None:
    """A click on a confusion-matrix cell picks that cell (true = row, predicted = column)."""
    points = (st.session_state.get(chart_key) or {}).get("selection", {}).get("points", [])
    if points:
        st.session_state[TRUE_CELL], st.session_state[PREDICTED_CELL] = points[0]["y"], points[0]["x"]


def show_misclassified(record: jobs.RunRecord) -> None:
    """Pickers for one confusion cell (a click on the matrix sets them) and that cell's images as tiles."""
    emotions = predictions.confusion_of(record.metrics).emotions  # the run's label set
    table = predictions.read_predictions(record)
    if table is None:
        st.info("This run wrote no predictions.csv (runs before per-image predictions): no images to show.")
        return
    if st.session_state.get(TRUE_CELL) not in emotions or st.session_state.get(PREDICTED_CELL) not in emotions:
        st.session_state[TRUE_CELL], st.session_state[PREDICTED_CELL] = predictions.worst_cell(record.metrics)
    left, right = st.columns(2)
    true_emotion = left.selectbox("True emotion", emotions, key=TRUE_CELL)
    predicted_emotion = right.selectbox("Predicted as", emotions, key=PREDICTED_CELL)
    cell = predictions.misclassified(table, true_emotion, predicted_emotion)
    st.caption(f"{len(cell):,} PrivateTest images filed as {true_emotion} and predicted {predicted_emotion}"
               f"{f'; the {TILES_SHOWN} most confident shown' if len(cell) > TILES_SHOWN else ''}.")
    if cell.empty:
        return
    dataset = call_safely(_dataset, record.data_path, workspace(), failure="Cannot read the images")
    if dataset is None:
        return
    shown = cell.head(TILES_SHOWN)
    known = [sample_id for sample_id in shown["id"] if dataset.has_id(sample_id)]
    images = [dataset.pixels[dataset.index_of(sample_id)] for sample_id in known]
    confidence = dict(zip(shown["id"], shown["confidence"]))
    tiles_with_details(images, [f"{confidence[sample_id]:.0%} confident · {image_tiles.short_id(sample_id)}"
                                for sample_id in known], known, key="results_cell")


def show_experiment_grid(records: list[jobs.RunRecord]) -> None:
    """The study's table for one experiment (picked by id): models × samplings, raw | curated | change."""
    from fer_core.jobs.experiments import grid_rows

    experiments = sorted({record.experiment_id for record in records if record.experiment_id}, reverse=True)
    if not experiments:
        st.info("No experiment yet: launch a grid on the Train page (or `python -m fer_core jobs sweep`).")
        return
    experiment = st.selectbox("Experiment", experiments, key="results_experiment")
    table = study.study_table(grid_rows([record for record in records if record.experiment_id == experiment]))
    percent = {name: st.column_config.NumberColumn(name, format="percent")
               for name in table.columns if name not in ("model", "sampling", "state")}
    st.dataframe(table, hide_index=True, key="results_study_table", column_config=percent)
    st.download_button("Table CSV", study.study_csv(table), f"fer_audit_{experiment}_table.csv", mime="text/csv",
                       icon=":material/download:", key="results_study_csv")
