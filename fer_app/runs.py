"""Glue of the Train and Results pages: launching and cancelling runs from callbacks, the live queue,
and the column formats of the results tables.

Runs live in SQLite and their own processes (fer_core.jobs): they go on when a page is left,
reloaded, or the server restarts. The queue's poll calls `jobs.drain()`, the one call that brings
run states up to date and starts queued work; listing runs never starts anything.
"""

from __future__ import annotations

import streamlit as st

from fer_core import jobs, results, views
from fer_core.train_config import TrainConfig
from fer_core.workspace import check_under_data_root, data_root

from .session import DATA_PATH, call_safely, flash

REFRESH_SECONDS = 2
SHOWN_RUNS = 12
# Widget keys of the Train form.
MODEL, SAMPLING, SIZE, DATA, EPOCHS, BATCH_SIZE, SEED, LIMIT = (
    "train_model", "train_sampling", "train_size", "train_data", "train_epochs", "train_batch_size", "train_seed",
    "train_limit")

SCORES = {name: st.column_config.NumberColumn(label, format="percent") for name, label in (
    ("accuracy", "accuracy"), ("leak_free_accuracy", "leak-free acc."), ("macro_f1", "macro-F1"),
    ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("recall_before", "recall before"),
    ("recall_after", "recall after"))}
LABELS = {"train_images": "train images", "run": st.column_config.TextColumn("run", width="small")}
CHANGES = {name: st.column_config.NumberColumn(label, format="%+.3f")
           for name, label in (("recall_change", "Δ recall"), ("f1_change", "Δ F1"))}


def config_from_form() -> TrainConfig:
    """The TrainConfig the Train form's widgets describe (ValueError naming a bad value)."""
    state = st.session_state
    return TrainConfig(model=state[MODEL], sampling=state[SAMPLING], epochs=int(state[EPOCHS]),
                       batch_size=int(state[BATCH_SIZE]), size=state[SIZE], seed=int(state[SEED]),
                       limit=int(state[LIMIT]) if state[LIMIT] else None, raw=state[DATA] == "raw")


def launch() -> None:
    """Callback of the Train form's Launch button: queue the run."""
    config = call_safely(config_from_form, failure="Cannot launch")
    if config is None:
        return
    path = call_safely(check_under_data_root, st.session_state[DATA_PATH], data_root(), failure="Cannot launch")
    if path is None:
        return
    run_id = call_safely(jobs.submit, config, str(path), failure="Cannot launch")
    if run_id is not None:
        flash("ok", f"Run {run_id} queued")


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
        st.error(views.escape_markdown(f"Cannot read the runs: {error}"))
        return
    if not records:
        st.info("No runs yet: launch one above.")
        return
    st.dataframe(results.queue_table(records[:SHOWN_RUNS]), hide_index=True, key="train_queue", column_config={
        "run": st.column_config.TextColumn("run", width="small"),
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=100.0, format="%.0f%%"),
        **{name: st.column_config.NumberColumn(name, format="%.3f") for name in ("loss", "accuracy", "val_accuracy")}})
    for record in results.active_runs(records):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.write(f"**{record.run_id}** · {record.config['model']} · {record.state}: "
                     f"{views.escape_markdown(results.stage_text(record))}")
            st.button("Cancel", key=f"cancel_{record.run_id}", on_click=cancel, args=(record.run_id,),
                      icon=":material/stop_circle:")
    for record in [record for record in records[:SHOWN_RUNS] if record.state == jobs.FAILED][:3]:
        st.error(f"Run {record.run_id} failed: {views.escape_markdown(record.error or 'no reason recorded')}")
        with st.expander(f"Log of run {record.run_id}"):
            st.code(results.log_tail(record) or "(empty log)", language=None)
    if results.finished_with_metrics(records):
        st.page_link("pages/5_Results.py", label="See the results", icon=":material/analytics:")
