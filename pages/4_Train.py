"""Train: launch a background training run on the curated (or raw) data and watch the queue live.

Runs live in SQLite and their own processes (fer_core.jobs): they go on when this page is left,
reloaded, or the server restarts.
"""

import streamlit as st

from fer_core import jobs, results, review, ui
from fer_core.models import MODEL_NAMES, SIZES
from fer_core.sampling import SAMPLING_NAMES
from fer_core.training import TrainConfig

REFRESH_SECONDS = 2
SHOWN_RUNS = 12


def launch() -> None:
    state = st.session_state
    try:
        config = TrainConfig(model=state.train_model, sampling=state.train_sampling, epochs=int(state.train_epochs),
                             batch_size=int(state.train_batch_size), size=state.train_size, seed=int(state.train_seed),
                             limit=int(state.train_limit) if state.train_limit else None,
                             raw=state.train_data == "raw")
        run_id = jobs.submit(config, state[ui.DATA_PATH])
    except ValueError as error:
        state[ui.FLASH] = ("error", f"Cannot launch: {error}")
        return
    state[ui.FLASH] = ("ok", f"Run {run_id} queued")


def cancel(run_id: str) -> None:
    record = jobs.cancel(run_id)
    st.toast(f"Run {run_id} is {record.state}", icon=":material/stop_circle:")


ui.setup("Train")
path = ui.require_data_path()  # training needs no audit: the worker loads the data itself

with st.form("train_form"):
    st.caption(f"Data: {review.escape_markdown(path)} · curated = with the edits in the log, raw = as the files are")
    top = st.columns(4)
    top[0].selectbox("Model", MODEL_NAMES, key="train_model")
    top[1].selectbox("Sampling", SAMPLING_NAMES, key="train_sampling",
                     help="How the Training split is rebalanced; validation and test are never resampled.")
    top[2].radio("Size preset", SIZES, index=SIZES.index("full"), key="train_size", horizontal=True,
                             help="tiny: a few thousand weights, for trying the pipeline in seconds.")
    top[3].radio("Data", ["curated", "raw"], key="train_data", horizontal=True)
    bottom = st.columns(4)
    bottom[0].number_input("Epochs (at most; early stopping on PublicTest)", 1, 500, value=30, key="train_epochs")
    bottom[1].selectbox("Batch size", [16, 32, 64, 128, 256], index=2, key="train_batch_size")
    bottom[2].number_input("Seed", 0, 2**31 - 1, value=0, key="train_seed")
    bottom[3].number_input("Limit (images, stratified; empty = all)", 1, None, value=None, key="train_limit")
    st.form_submit_button("Launch", type="primary", icon=":material/play_arrow:", on_click=launch)


@st.fragment(run_every=REFRESH_SECONDS)
def show_queue() -> None:
    records = jobs.list_runs()
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
                     f"{review.escape_markdown(results.stage_text(record))}")
            st.button("Cancel", key=f"cancel_{record.run_id}", on_click=cancel, args=(record.run_id,),
                      icon=":material/stop_circle:")
    for record in [record for record in records[:SHOWN_RUNS] if record.state == jobs.FAILED][:3]:
        st.error(f"Run {record.run_id} failed: {review.escape_markdown(record.error or 'no reason recorded')}")
        with st.expander(f"Log of run {record.run_id}"):
            st.code(results.log_tail(record) or "(empty log)", language=None)
    if results.finished_with_metrics(records):
        st.page_link("pages/5_Results.py", label="See the results", icon=":material/analytics:")


st.subheader("Runs")
show_queue()
