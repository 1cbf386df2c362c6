"""Suspected mislabels in the app (issue 12): the Overview card or its compute button, the Review
page's "Suspected mislabels" queue (given → suggested on each tile), accept and reject."""

import json

import pytest
from test_mislabels import stored_result
from test_pages import button, metrics, open_page, pick_boxes, sample_id, texts

from fer_core.curation.edits import read_edits
from fer_core.dataset.loading import load
from fer_core.labels import EMOTIONS
from fer_core.mislabels.config import MislabelConfig


def suspects_of(dataset) -> dict[str, tuple[int, float]]:
    """Two Training images the stored result doubts: id → (suggested emotion, probability of the given one)."""
    training = [sample for sample, usage in zip(dataset.ids, dataset.usages) if usage == "Training"][:2]
    return {sample: ((int(dataset.labels[dataset.index_of(sample)]) + 3) % len(EMOTIONS), given)
            for sample, given in zip(training, (0.03, 0.06))}


def test_without_a_result_the_overview_offers_to_compute_with_an_estimate_and_review_says_so(app, synthetic_folder):
    app = open_page(app, None)
    assert any(b.label == "Find suspected mislabels" for b in app.button)
    training_images = sum(usage == "Training" for usage in load(synthetic_folder).usages)
    assert f"minutes for {training_images:,} Training images on a 2-core CPU" in texts(app)
    app = open_page(app, "pages/3_Review.py")
    app.toggle(key="rev_mislabels").set_value(True).run()
    assert "have not been computed" in texts(app)
    assert not pick_boxes(app, "mis")


def test_a_result_with_other_settings_is_shown_and_offers_to_recompute_with_the_defaults(app, workspace,
                                                                                          synthetic_folder):
    dataset = load(synthetic_folder, workspace=workspace)
    stored_result(dataset, suspects_of(dataset), workspace, MislabelConfig(folds=2, size="tiny", epochs=1))

    app = open_page(app, None)
    assert metrics(app)["Suspected mislabels"] == "2"
    assert "Computed with other settings (2 folds of cnn, tiny, up to 1 epochs)." in texts(app)
    assert any(b.label == "Recompute" for b in app.button)


def test_review_queue_shows_given_to_suggested_and_accept_then_reject(app, workspace, synthetic_folder):
    dataset = load(synthetic_folder, workspace=workspace)
    suspects = suspects_of(dataset)
    stored_result(dataset, suspects, workspace)

    app = open_page(app, None)
    assert metrics(app)["Suspected mislabels"] == "2"
    app = open_page(app, "pages/3_Review.py")
    app.toggle(key="rev_mislabels").set_value(True).run()
    boxes = pick_boxes(app, "mis")
    assert [sample_id(box) for box in boxes] == list(suspects)  # most suspect first
    first = list(suspects)[0]
    given, suggested = EMOTIONS[dataset.labels[dataset.index_of(first)]], EMOTIONS[suspects[first][0]]
    assert f"{given} → {suggested} (model confidence" in texts(app)

    boxes[0].check().run()
    button(app, "Accept suggestion", "mis_form").click().run()
    assert not app.exception and not app.error, [error.value for error in app.error]
    relabels = [edit for edit in read_edits() if edit.action == "relabel"]
    assert [(edit.sample_id, edit.new_label) for edit in relabels] == [(first, suggested)]
    assert relabels[0].reason.startswith("suggested by model (score ")
    assert [sample_id(box) for box in pick_boxes(app, "mis")] == list(suspects)[1:]

    pick_boxes(app, "mis")[0].check().run()
    button(app, "Keep given label", "mis_form").click().run()
    assert [edit.action for edit in read_edits()][-1] == "review_ok"
    assert not pick_boxes(app, "mis") and "**0** suspected mislabel(s) to decide" in texts(app)


def test_conflicting_duplicate_groups_show_the_model_suggestion(app, workspace, synthetic_folder):
    app.session_state["dup_conflicting"] = True
    app = open_page(app, "pages/1_Duplicates.py")
    assert "Model suggests" not in texts(app)  # nothing computed yet

    dataset = load(synthetic_folder, workspace=workspace)
    stored_result(dataset, suspects_of(dataset), workspace)
    app.run()
    assert "Model suggests **" in texts(app) and "for this photo (confidence 0." in texts(app)


@pytest.mark.parametrize("shape", ["list", "dict without the counts"])
def test_a_cached_summary_of_the_wrong_shape_leaves_the_overview_whole(app, workspace, synthetic_folder, shape):
    """Guards (issue 22): a cached mislabel summary.json of valid JSON but the wrong shape took the Overview's
    cards and Export down (AttributeError, KeyError); it now counts as absent, so the card offers to compute."""
    dataset = load(synthetic_folder, workspace=workspace)
    stored_result(dataset, suspects_of(dataset), workspace)
    document = [] if shape == "list" else {"raw_fingerprint": dataset.fingerprint}
    for summary_path in (workspace / "cache" / "mislabels").glob("*/summary.json"):
        summary_path.write_text(json.dumps(document))
    app = open_page(app, None)
    assert any(b.label == "Find suspected mislabels" for b in app.button)
    assert "Export the curated data" in [subheader.value for subheader in app.subheader]


def test_the_overview_follows_a_mislabel_job_started_by_its_button(app, workspace, monkeypatch):
    """Issue 24: the button sits in the card's fragment, so its click reran only the fragment, whose polling
    had been set (off) by the full run before the job: the line stayed "starting" while the job was at
    fold 1/3. Now the card asks for a full rerun when a job appears, and the browser polls it."""
    import os

    import browser_events

    from fer_core.jobs import local, records

    def pretend_worker(home, run_id):  # no training here: the test process stands in for the worker
        records.update_run(home, run_id, pid=os.getpid(), pid_started=local.process_start_time(os.getpid()))

    monkeypatch.setattr(local, "launch_worker", pretend_worker)
    app.switch_page("app.py")
    messages = browser_events.run(app)
    compute = next(b for b in app.button if b.label == "Find suspected mislabels")
    assert browser_events.fragment_of(messages, compute.id) not in browser_events.timers(messages)  # no polling
    after_click = browser_events.click(app, compute, messages)
    assert "Finding suspected mislabels: starting" in texts(app)
    card = browser_events.fragment_of(after_click, app.button(key="mis_cancel").id)
    assert browser_events.timers(after_click).get(card) == 2.0, "the browser would never poll the job"

    run_id = records.read_runs(workspace)[0].run_id
    records.update_run(workspace, run_id, stage="fold 1/3")
    browser_events.run(app, card)  # the browser's timer: the card's fragment alone
    assert "Finding suspected mislabels: fold 1/3" in texts(app)


def test_review_filters_narrow_the_suspected_mislabel_queue(app, workspace, synthetic_folder):
    """Issue 24: with "Suspected mislabels" on, the emotion / usage / flag filters stayed in the sidebar but
    the queue ignored them; they now narrow it (and "Show dropped images", meaningless there, is hidden)."""
    from fer_core.audit import run_audit
    from fer_core.curation import edits
    from fer_core.views import audit_table as views

    dataset = load(synthetic_folder, workspace=workspace)
    suspects = list(suspects_of(dataset))
    stored_result(dataset, suspects_of(dataset), workspace)
    table = views.annotate(run_audit(dataset, workspace=workspace), edits.replay_edits([]))
    duplicates = set(dataset.ids[views.filter_samples(table, flags=("duplicate",))])
    assert 0 < len(duplicates & set(suspects)) < len(suspects)  # the flag filter below tells them apart
    given = EMOTIONS[dataset.labels[dataset.index_of(suspects[0])]]

    app = open_page(app, "pages/3_Review.py")
    app.toggle(key="rev_mislabels").set_value(True).run()
    shown = lambda: [sample_id(box) for box in pick_boxes(app, "mis")]  # noqa: E731
    assert shown() == suspects
    assert not [box for box in app.checkbox if box.key == "rev_show_dropped"]
    app.multiselect(key="rev_flags").set_value(["duplicate"]).run()
    assert shown() == [sample for sample in suspects if sample in duplicates]
    assert "**1** suspected mislabel(s) match the filters (of 2 to decide)" in texts(app)
    app.multiselect(key="rev_flags").set_value([]).run()
    app.multiselect(key="rev_emotions").set_value([emotion for emotion in EMOTIONS if emotion != given]).run()
    assert shown() == [sample for sample in suspects if EMOTIONS[dataset.labels[dataset.index_of(sample)]] != given]
    app.multiselect(key="rev_emotions").set_value([]).run()
    app.multiselect(key="rev_usages").set_value(["PrivateTest"]).run()
    assert shown() == []  # suspects are Training images
