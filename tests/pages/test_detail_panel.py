"""The image panel (fer_app/detail.py) in AppTest: opened from a tile's Details or the sidebar's search, it shows
the image's flags with their numbers and its history; relabel from it writes one batch, undoable; find similar
picks neighbours and acts on them in one batch; an unknown id is said in one line."""

import time

from streamlit.testing.v1 import AppTest
from test_pages import button, open_page, texts

from fer_core.curation.edits import read_edits

REVIEW = "pages/3_Review.py"


def search(app: AppTest, text: str) -> AppTest:
    app.text_input(key="detail_search").set_value(text).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def panel_open(app: AppTest) -> bool:
    """The panel's form is there, in whichever tab is open (the story's or find similar's)."""
    return any(box.key in ("detail_emotion", "similar_emotion") for box in app.selectbox)


def until_neighbours_shown(app: AppTest) -> AppTest:
    """The features are made in a background thread (the tab polls while it waits): run again until they are in."""
    deadline = time.monotonic() + 60
    while not any(b.key == "similar_pick_all" for b in app.button):
        assert time.monotonic() < deadline and not app.exception, "no neighbours shown"
        time.sleep(0.2)
        app.run()
    return app


def test_search_opens_the_panel_with_flags_and_an_unknown_id_says_so_in_one_line(app):
    app = open_page(app, REVIEW)
    assert "41 · why: duplicate (exact) · leak" in texts(app)  # a Review tile says why it is listed
    app = search(app, "no_such_face")
    lines = [caption.value.replace("\\", "") for caption in app.sidebar.caption if "no" in caption.value]
    assert lines == ["No image with id 'no_such_face' in this data (50 images)."] and not panel_open(app)
    app = search(app, "Training_47.png")  # the planted blank frame (make_synthetic's row 47)
    assert panel_open(app) and [code.value for code in app.code] == ["train/neutral/Training_47.png"]
    assert app.text_input(key="detail_search").value == ""  # emptied: the same id can be asked for again
    shown = texts(app)
    assert "**outlier**: outlier score 11.2 · blank · std 0.0" in shown
    assert "No edit of this image yet." in shown


def test_details_button_relabel_from_the_panel_writes_one_batch_then_undo(app):
    app = open_page(app, REVIEW)
    app.button(key="rev_details_0").click().run()
    assert panel_open(app)
    sample_id = app.code[0].value
    app.selectbox(key="detail_emotion").set_value("surprise")
    app.text_input(key="detail_reason").set_value("looks surprised")
    if any(box.key == "detail_confirm_test" for box in app.checkbox):
        app.checkbox(key="detail_confirm_test").check()
    button(app, "Relabel picked", "detail_form").click().run()
    log = read_edits()
    assert [(edit.sample_id, edit.action, edit.new_label) for edit in log] == [(sample_id, "relabel", "surprise")]
    assert panel_open(app) and "Relabeled 1 image(s) to surprise" in texts(app)
    assert "looks surprised" in app.dataframe[-1].value["reason"].tolist()  # the panel's history
    app.button(key="undo_last_edit_detail").click().run()
    log = read_edits()
    assert [edit.action for edit in log] == ["relabel", "undo"] and log[1].undoes == log[0].edit_id
    assert not any(b.key == "undo_last_edit_detail" for b in app.button)  # offered once


def test_find_similar_pick_all_then_drop_is_one_batch(app):
    app = search(open_page(app, REVIEW), "Training_1.png")
    assert panel_open(app) and not any(box.key == "similar_count" for box in app.selectbox)  # only the open tab runs
    app.session_state["detail_tab"] = "Find similar"  # what a click on the tab sets
    app = until_neighbours_shown(app.run())
    app.selectbox(key="similar_count").set_value(12).run()
    app.button(key="similar_pick_all").click().run()
    picked = [box for box in app.checkbox if box.key.startswith("similar_pick_") and box.value]
    assert len(picked) == 12
    app.text_input(key="similar_reason").set_value("same session")
    if any(box.key == "similar_confirm_test" for box in app.checkbox):
        app.checkbox(key="similar_confirm_test").check()
    button(app, "Drop picked", "similar_form").click().run()
    log = read_edits()
    assert len({edit.batch_id for edit in log}) == 1 and len(log) == 12 and {e.action for e in log} == {"drop"}
    assert "train/disgust/Training_1.png" not in [edit.sample_id for edit in log]  # not its own neighbour
    assert button(app, "Drop picked", "similar_form").disabled  # picks cleared: nothing to act on twice
    assert panel_open(app) and "Dropped 12 image(s) (12 edits logged)" in texts(app)
    assert sum(box.key.startswith("similar_pick_") for box in app.checkbox) == 0  # dropped: no longer pickable


def test_a_duplicate_groups_details_show_what_decided_each_pair(app):
    app = open_page(app, "pages/1_Duplicates.py")
    next(b for b in app.button if b.key.startswith("strip_") and "_details_" in b.key).click().run()
    assert panel_open(app)
    shown = texts(app)
    assert "**duplicate**: near group of 2 images; closest: " in shown and "identical pixels" in shown
    assert any(b.key.startswith("detail_") and "_details_" in b.key for b in app.button)  # the panel's own strip
