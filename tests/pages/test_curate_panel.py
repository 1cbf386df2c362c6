"""The Overview's Curate panel (issue 23): it previews each rule, applies one batch per rule, shows nothing
left to do afterwards, and undoes one rule or the whole policy."""

from streamlit.testing.v1 import AppTest
from test_pages import open_page, texts

from fer_app.curate import AFTER_OTHERS, APPLY, NOTHING_TO_APPLY, POLICY, UNDO_ALL, rule_key
from fer_core.curation.edits import read_edits, read_state


def apply_button(app: AppTest):
    return app.button(key=APPLY)


def undo_button(app: AppTest, rule: str):
    return next(button for button in app.button if button.label.startswith(f"Undo {rule} ("))


def test_the_panel_previews_applies_and_undoes_rule_by_rule(app):
    app = open_page(app, None)
    shown = texts(app)
    assert "dedupe: 4 Training images to drop (angry 1, happy 1, sad 1, neutral 1)" in shown
    assert "non_faces: 2 Training images to drop (happy 1, neutral 1)" in shown
    assert "leaks: nothing to do" in shown and "mislabels: skipped" in shown
    assert not apply_button(app).disabled and read_edits() == []

    apply_button(app).click().run()
    assert not app.exception
    log = read_edits()
    assert sorted({edit.reason for edit in log}) == ["policy recommended: dedupe", "policy recommended: non_faces"]
    assert all(edit.sample_id.startswith("train/") for edit in log)
    shown = texts(app)
    assert "dedupe: nothing to do" in shown and "non_faces: nothing to do" in shown
    assert apply_button(app).disabled

    undo_button(app, "non_faces").click().run()
    assert len(read_state().dropped) == 4  # dedupe's drops stay
    assert "non_faces: 2 Training images to drop" in texts(app) and not apply_button(app).disabled
    app.button(key=UNDO_ALL).click().run()
    assert read_state().dropped == frozenset()
    assert not any(button.key == UNDO_ALL for button in app.button)  # nothing of a policy left in effect


def test_unticked_rules_are_neither_previewed_nor_applied_and_the_study_policy_is_offered(app):
    app = open_page(app, None)
    app.checkbox(key=rule_key("recommended", "dedupe")).uncheck().run()
    assert "dedupe:" not in texts(app)
    apply_button(app).click().run()
    # without dedupe, leaks drops the Training copy of the test image itself
    assert {edit.reason for edit in read_edits()} == {"policy recommended: leaks", "policy recommended: non_faces"}
    app.selectbox(key=POLICY).set_value("study").run()
    shown = texts(app)
    assert "conflicting_copies: 2 Training images to drop (happy 1, sad 1)" in shown
    assert "box_outliers: nothing to do" in shown  # `text`, its one box-plot outlier, is already dropped


def test_a_rule_left_nothing_by_the_rules_above_and_a_greyed_out_apply_say_why(app):
    """Guards two misreadings seen in a browser (tests/e2e/test_curate_compare_browser.py): "leaks: nothing to
    do" beside an Overview that counts a leaked test image (dedupe, above it, drops that copy first), and a
    greyed-out Apply with no word of why."""
    app = open_page(app, None)
    lines = [element.value for element in app.markdown]
    assert f"**leaks: nothing to do** {AFTER_OTHERS}" in lines
    assert NOTHING_TO_APPLY not in texts(app)
    apply_button(app).click().run()
    lines = [element.value for element in app.markdown]
    assert "**dedupe: nothing to do**" in lines  # the first rule is planned on the log alone
    assert f"**non_faces: nothing to do** {AFTER_OTHERS}" in lines
    assert apply_button(app).disabled and NOTHING_TO_APPLY in texts(app)
