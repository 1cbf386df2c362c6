"""Train: launch a background training run on the curated (or raw) data and watch the queue live.

Runs live in SQLite and their own processes (fer_core.jobs): they go on when this page is left,
reloaded, or the server restarts.
"""

import streamlit as st

from fer_app import runs, session
from fer_core import views
from fer_core.models import MODEL_NAMES, SIZES
from fer_core.sampling import SAMPLING_NAMES

session.setup("Train")
path = session.require_data_path()  # training needs no audit: the worker loads the data itself

with st.form("train_form"):
    st.caption(f"Data: {views.escape_markdown(path)} · curated = with the edits in the log, raw = as the files are")
    top = st.columns(4)
    top[0].selectbox("Model", MODEL_NAMES, key=runs.MODEL)
    top[1].selectbox("Sampling", SAMPLING_NAMES, key=runs.SAMPLING,
                     help="How the Training split is rebalanced; validation and test are never resampled.")
    top[2].radio("Size preset", SIZES, index=SIZES.index("full"), key=runs.SIZE, horizontal=True,
                 help="tiny: a few thousand weights, for trying the pipeline in seconds.")
    top[3].radio("Data", ["curated", "raw"], key=runs.DATA, horizontal=True)
    bottom = st.columns(4)
    bottom[0].number_input("Epochs (at most; early stopping on PublicTest)", 1, 500, value=30, key=runs.EPOCHS)
    bottom[1].selectbox("Batch size", [16, 32, 64, 128, 256], index=2, key=runs.BATCH_SIZE)
    bottom[2].number_input("Seed", 0, 2**31 - 1, value=0, key=runs.SEED)
    bottom[3].number_input("Limit (images, stratified; empty = all)", 1, None, value=None, key=runs.LIMIT)
    st.form_submit_button("Launch", type="primary", icon=":material/play_arrow:", on_click=runs.launch)

st.subheader("Runs")
runs.show_queue()
