"""Glue of the curated-vs-raw comparison: on the Train page the device runs will use, the estimate (hours
of a full model on a CPU said before launching) and the launched experiment's progress; on the Results
page the Compare view of a finished comparison, its progress while runs are queued or running, and
which run failed.

The device is asked once per server process, in a background thread that starts TensorFlow in a
process of its own (fer_core.training.device): importing TensorFlow in the page would cost seconds on
the first visit and hundreds of MB in the server, and the newest run's metrics.json may describe
another machine or be missing. Pages never wait for it: they say "checking" and refresh when it is in.
"""

from __future__ import annotations

import contextlib
import json
import threading

import streamlit as st

from fer_core import jobs
from fer_core.jobs import compare as compare_jobs
from fer_core.training import device as training_devices
from fer_core.views import comparison as views
from fer_core.views import image_tiles
from fer_core.views import runs as results

from . import runs, speed

REFRESH_SECONDS = runs.REFRESH_SECONDS
PROGRESS_COLUMNS = {  # widths in pixels, so that every column fits at 1280 px ("succeeded" and run ids were clipped)
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=100.0, format="%.0f%%",
                                                width=120),
    "seed": st.column_config.NumberColumn("seed", format="%d", width=50),
    "arm": st.column_config.TextColumn("arm", width=65), "state": st.column_config.TextColumn("state", width=85),
    "epoch": st.column_config.TextColumn("epoch", width=60), "eta": st.column_config.TextColumn("ETA", width=70),
    "stage": st.column_config.TextColumn("stage"), "run": st.column_config.TextColumn("run")}
PICKED = "results_comparison"


# ---------------------------------------------------------------------------------------------
# Train page: device, estimate, progress of the launched comparison


@st.cache_resource(show_spinner=False)
def _device_probe() -> dict[str, str | None]:
    """{"device": None until the probe answers}; the probe starts once per server process."""
    holder: dict[str, str | None] = {"device": None}

    def probe() -> None:
        holder["device"] = training_devices.probe_training_device()

    threading.Thread(target=probe, name="training-device-probe", daemon=True).start()
    return holder


def training_device() -> str | None:
    """`GPU: <name>`, `CPU` or `unknown (…)` as a run here will record it; None while TensorFlow starts."""
    return _device_probe()["device"]


def show_plan() -> None:
    """The device, the estimate of what Launch would queue and, for the full size on a CPU, the hours it
    takes; polls only until the device is known and this machine's speed measured (fer_app.speed)."""
    device = training_device()
    with contextlib.suppress(ValueError):  # a bad value in the form: the plan says so
        speed.start_measuring(runs.planned_configs(), device_known=bool(device) and not device.startswith("unknown"))
    pending = training_device() is None or speed.measuring()
    st.fragment(_plan, run_every=REFRESH_SECONDS if pending else None)(pending)


def _plan(was_pending: bool) -> None:
    device = training_device()
    if was_pending and device is not None and not speed.measuring():
        st.rerun()  # the page renders again without the polling (and measures what the device probe held back)
    if jobs.selected_backend() == jobs.RAY:
        where = "Runs go to the Ray cluster ($FER_AUDIT_RAY_ADDRESS); each run's device is in its metrics."
    elif device is None:
        where = "Device: checking (TensorFlow is starting in a separate process, once per server)…"
    else:
        where = f"Runs on this machine train on: **{image_tiles.escape_markdown(device)}**."
    seconds, estimate = runs.estimate()
    st.markdown(f"{where} {estimate}")
    if seconds is not None and st.session_state[runs.SIZE] == "full" and device == "CPU":
        st.warning(f"Size full on a CPU: about **{seconds / 3600:,.1f} hours** before the results. Full is meant "
                   "for a GPU (see the README's set-up); fast and tiny finish sooner on a CPU.",
                   icon=":material/schedule:")


def shown_comparison(records: list[jobs.RunRecord]) -> str | None:
    """The comparison to follow on the Train page: the one launched in this session, else the newest one
    with runs still queued or running."""
    comparisons = compare_jobs.comparison_experiments(records)
    launched = st.session_state.get(runs.LAUNCHED_COMPARISON)
    if launched in comparisons:
        return launched
    return next((experiment_id for experiment_id, members in comparisons.items()
                 if results.active_runs(members)), None)


def show_progress(experiment_id: str, key: str) -> None:
    """The experiment's runs by arm and seed, live while any is queued or running; failed runs named."""
    members = compare_jobs.experiment_runs(experiment_id)
    active = bool(results.active_runs(members))
    st.fragment(_progress, run_every=REFRESH_SECONDS if active else None)(experiment_id, key, active)


def _progress(experiment_id: str, key: str, was_active: bool) -> None:
    try:
        if was_active:
            jobs.drain()  # brings states up to date and starts queued runs, as the Train queue does
        members = compare_jobs.experiment_runs(experiment_id)
    except ValueError as error:
        st.error(image_tiles.escape_markdown(f"Cannot read experiment {experiment_id}: {error}"))
        return
    if was_active and not results.active_runs(members):
        st.rerun()  # every run ended: the page shows the comparison (or what failed) without polling
    st.markdown(f"**{experiment_id}** · {image_tiles.escape_markdown(views.describe_experiment(members))} · "
                f"{views.progress_summary(members)}")
    st.dataframe(views.progress_table(members), hide_index=True, key=f"{key}_progress",
                 column_config=PROGRESS_COLUMNS)
    for line in views.failed_runs(members):
        st.error(image_tiles.escape_markdown(line))


def show_launched(records: list[jobs.RunRecord]) -> None:
    """Train page: the followed comparison's progress, and a link to its result once every run has ended."""
    experiment_id = shown_comparison(records)
    if experiment_id is None:
        return
    st.subheader("Curated vs raw")
    show_progress(experiment_id, "train_comparison")
    st.page_link("pages/5_Results.py", label="The comparison on the Results page", icon=":material/analytics:")


# ---------------------------------------------------------------------------------------------
# Results page: the Compare view


def show_comparisons(records: list[jobs.RunRecord]) -> None:
    """Pick a comparison experiment (newest first) and show it; nothing when the workspace has none."""
    comparisons = compare_jobs.comparison_experiments(records)
    if not comparisons:
        return
    st.subheader("Curated vs raw: does curation help?")
    labels = {experiment_id: f"{views.describe_experiment(members)} ({experiment_id})"
              for experiment_id, members in comparisons.items()}
    experiment_id = st.selectbox("Comparison", list(labels), format_func=labels.get, key=PICKED)
    members = comparisons[experiment_id]
    if results.active_runs(members) or views.failed_runs(members):
        show_progress(experiment_id, "results_comparison")
        if views.failed_runs(members) and not results.active_runs(members):
            st.info("No comparison: it needs every run of both arms to succeed. Launch it again on the Train page.")
        return
    try:
        with st.spinner("Scoring both arms on the same test images (once; stored in the experiment's folder)…"):
            comparison = compare_jobs.read_comparison(experiment_id)
    except ValueError as error:  # the rest of the page still renders
        st.error(image_tiles.escape_markdown(f"Cannot compare experiment {experiment_id}: {error}"))
        return
    if comparison is not None:  # None: a run was queued again since the list was read
        show_comparison(comparison)


def show_comparison(comparison: dict) -> None:
    """The headline difference with both intervals, the verdict, recall per emotion, the arms, the warning."""
    st.markdown(f"**{views.headline_label(comparison)}**")
    st.markdown(f"### {views.headline(comparison)}")
    st.markdown(views.bootstrap_line(comparison))
    st.info(f"Verdict: {image_tiles.escape_markdown(comparison['verdict'])}", icon=":material/balance:")
    st.dataframe(views.arm_table(comparison), hide_index=True, key="results_comparison_arms")
    st.caption(views.arm_table_note(comparison))
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.plotly_chart(views.recall_difference_figure(comparison), key="results_comparison_recall")
    right.caption(views.RECALL_FIGURE_NOTE)
    right.download_button("compare.json", json.dumps(comparison, indent=2), f"{comparison['experiment_id']}.json",
                          mime="application/json", icon=":material/download:", key="results_comparison_json")
    with st.expander("NOT A VALID MEASURE: accuracy on test labels relabelled by the mislabel suggestions"):
        st.warning(image_tiles.escape_markdown(views.circular_text(comparison)), icon=":material/block:")
    st.divider()
