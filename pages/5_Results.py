"""Results: curated vs raw over seeds (the difference with its 95 % intervals, recall per emotion, the
verdict; progress while its runs train); finished runs side by side; one run's confusion matrix (click a
cell for its images), per-emotion scores and curves; two runs compared (e.g. raw data before cleaning,
curated after); an experiment grid as the study's table. Scores in percent, differences in points."""

import streamlit as st

from fer_app import compare, runs, session
from fer_app.runs import CHANGES, LABELS, SCORES
from fer_core import jobs
from fer_core.curation import edits
from fer_core.views import predictions
from fer_core.views import confusion
from fer_core.views import runs as results

session.setup("Results")
with session.stop_on_error("Cannot read the runs"):
    records = jobs.list_runs()
compare.show_comparisons(records)
finished = results.finished_with_metrics(records)
if not finished:
    st.info("No finished run yet. Launch one on the Train page; its results appear here when it ends.")
    st.page_link("pages/4_Train.py", label="Train a model", icon=":material/model_training:")
    st.stop()
try:
    log = edits.read_edits()
except ValueError:
    log = []

st.subheader("Finished runs")
st.dataframe(results.runs_table(finished, log), hide_index=True, key="results_runs",
             column_config={**SCORES, **LABELS})
labels = {record.run_id: results.describe_run(record) for record in finished}
by_id = {record.run_id: record for record in finished}

st.subheader("One run")
record = by_id[st.selectbox("Run", list(labels), format_func=labels.get, key="results_run")]
for warning in predictions.test_set_warnings([record]):
    st.warning(warning)
normalized = st.toggle("Row-normalized (share of each true emotion = recall on the diagonal)", value=True,
                       key="results_normalized")
left, right = st.columns([3, 2])
left.plotly_chart(confusion.confusion_figure(confusion.confusion_of(record.metrics), normalized,
                                           title="Confusion matrix on PrivateTest (click a cell)", clickable=True),
                  key="results_confusion", on_select=lambda: runs.select_cell("results_confusion"),
                  selection_mode="points")
with right:
    metrics = record.metrics
    leak_free = metrics.get("leak_free_accuracy")
    st.write(f"Accuracy **{metrics['accuracy']:.1%}** · leak-free **{'n/a' if leak_free is None else f'{leak_free:.1%}'}** "
             f"({metrics.get('leaked_test_images', 0):,} leaked test images left out) · "
             f"macro-F1 **{metrics['macro_f1']:.1%}** · on {predictions.test_set_note(record)}")
    st.dataframe(confusion.per_class_table(metrics), hide_index=True, key="results_per_class", column_config=SCORES)
    with st.container(horizontal=True):
        st.download_button("Metrics CSV", results.metrics_csv(record), results.download_name(record, "csv"),
                           mime="text/csv", icon=":material/download:", key="results_csv")
        st.download_button("Metrics JSON", results.metrics_json(record), results.download_name(record, "json"),
                           mime="application/json", icon=":material/download:", key="results_json")
with st.expander("Images of one confusion cell", expanded=True):
    runs.show_misclassified(record)
st.plotly_chart(results.curves_figure(results.read_history(record)), key="results_curves")

st.subheader("Experiment: performance of the sampling techniques for the proposed models")
runs.show_experiment_grid(records)

st.subheader("Compare two runs")
if len(finished) < 2:
    st.info("Finish a second run (for example the same model on raw data) to compare the two.")
    st.stop()
before_id, after_id = results.default_comparison(finished)
left, right = st.columns(2)
before = by_id[left.selectbox("Before", list(labels), index=list(labels).index(before_id), format_func=labels.get,
                              key="results_before")]
after = by_id[right.selectbox("After", list(labels), index=list(labels).index(after_id), format_func=labels.get,
                              key="results_after")]
for warning in predictions.test_set_warnings([before, after]):
    st.warning(warning)
left.plotly_chart(confusion.confusion_figure(confusion.confusion_of(before.metrics), normalized, title="Before"),
                  key="results_before_confusion")
right.plotly_chart(confusion.confusion_figure(confusion.confusion_of(after.metrics), normalized, title="After"),
                   key="results_after_confusion")
st.caption("Each cell of the difference says how many more (+) or fewer (−) test images landed there after; its "
           f"colour is the change of the row's share (blue gained, red lost). Grey rows: fewer than "
           f"{confusion.MIN_ROW_SUPPORT} test images of that emotion in a run, too few to read a change from.")
left, right = st.columns([3, 2])
left.plotly_chart(confusion.difference_figure(confusion.confusion_of(before.metrics), confusion.confusion_of(after.metrics),
                                            title="After − before (images)"), key="results_difference")
right.dataframe(confusion.recall_changes(before.metrics, after.metrics), hide_index=True, key="results_recall_changes",
                column_config={**SCORES, **CHANGES})
