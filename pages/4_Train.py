"""Train: launch a background training run, a grid of runs, or curated against raw data over N seeds
(one experiment, compared with 95 % intervals on the Results page), and watch the queue live.

Runs live in SQLite and their own processes (fer_core.jobs): they go on when this page is left,
reloaded, or the server restarts.
"""

import streamlit as st

from fer_app import compare, runs, session
from fer_core import jobs
from fer_core.jobs.compare import MAX_SEEDS
from fer_core.jobs.experiments import DATA_VARIANTS
from fer_core.training.config import DEFAULT_EPOCHS
from fer_core.training.models import MODEL_NAMES, SIZES, model_variants
from fer_core.training.sampling import SAMPLING_NAMES
from fer_core.views import image_tiles

session.setup("Train")
path = session.require_data_path()  # training needs no audit: the worker loads the data itself

st.caption(f"Data: {image_tiles.escape_markdown(path)} · curated = with the edits in the log, raw = as the files are")
st.radio("What to launch", [runs.ONE_RUN, runs.GRID, runs.COMPARE], key=runs.MODE, horizontal=True,
         help="A grid queues one run per model × sampling × data as one experiment; the Results page shows "
              "it as the study's table. Curated vs raw queues both data versions per seed as one experiment; "
              "the Results page compares them on the same test images with 95 % intervals.")
grid, paired = (st.session_state[runs.MODE] == mode for mode in (runs.GRID, runs.COMPARE))
top = st.columns(4)
if grid:
    top[0].multiselect("Models", MODEL_NAMES, default=["cnn"], key=runs.GRID_MODELS)
    top[1].multiselect("Samplings", SAMPLING_NAMES, default=["none", "class_weight"], key=runs.GRID_SAMPLINGS)
    top[3].multiselect("Data", DATA_VARIANTS, default=list(DATA_VARIANTS), key=runs.GRID_DATA)
else:
    top[0].selectbox("Model", MODEL_NAMES, key=runs.MODEL)
    top[1].selectbox("Sampling", SAMPLING_NAMES, key=runs.SAMPLING,
                     help="How the Training split is rebalanced; validation and test are never resampled.")
    if paired:
        top[3].number_input(f"Seeds (1–{MAX_SEEDS})", 1, MAX_SEEDS, value=runs.DEFAULT_SEEDS, key=runs.SEEDS,
                            help="Runs per data version: raw and curated each trained with the first seed, the next, …")
    else:
        top[3].radio("Data", ["curated", "raw"], key=runs.DATA, horizontal=True)
st.session_state.setdefault(runs.MODEL, MODEL_NAMES[0])
st.session_state.setdefault(runs.SAMPLING, SAMPLING_NAMES[0])
st.session_state.setdefault(runs.DATA, "curated")
top[2].radio("Size preset", SIZES, index=SIZES.index("fast"), key=runs.SIZE, horizontal=True,
             help="tiny: tries the pipeline in seconds; fast: learns in minutes on a CPU; full: for a GPU.")
if not grid and st.session_state[runs.MODEL] == "cnn_lstm":
    st.selectbox("CNN-LSTM variant", model_variants("cnn_lstm"), key=runs.VARIANT,
                 help="LSTM or bidirectional LSTM, reading the feature rows or columns, one or two layers.")
bottom = st.columns(4)
bottom[0].number_input("Epochs (at most; early stopping on PublicTest)", 1, 500, value=None, key=runs.EPOCHS,
                       placeholder=f"default ({DEFAULT_EPOCHS[st.session_state[runs.SIZE]]} for "
                                   f"{st.session_state[runs.SIZE]})")
bottom[1].selectbox("Batch size", [16, 32, 64, 128, 256], index=3, key=runs.BATCH_SIZE)
bottom[2].number_input("First seed" if paired else "Seed", 0, 2**31 - 1, value=0, key=runs.SEED)
bottom[3].number_input("Limit (Training images, stratified; empty = all)", 1, None, value=None, key=runs.LIMIT,
                       help="Trains on about this many Training images. The test images are never limited: "
                            "every run is scored on the whole PrivateTest split, so runs compare.")
compare.show_plan()
st.button("Launch", type="primary", icon=":material/play_arrow:", on_click=runs.launch, key="train_launch")

with session.stop_on_error("Cannot read the runs"):
    compare.show_launched(jobs.list_runs())
st.subheader("Runs")
runs.show_queue()
