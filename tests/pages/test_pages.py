"""AppTest for every page: renders with no data, renders with the synthetic dataset, one edit per page."""

import pytest
from streamlit.testing.v1 import AppTest

from fer_core.edits import read_edits

PAGES = [None, "pages/1_Duplicates.py", "pages/2_Outliers.py", "pages/3_Review.py"]


def open_page(app: AppTest, page: str | None) -> AppTest:
    """Run the app on `page` (None = Overview), failing on any exception."""
    app.switch_page(page or "app.py")
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(app: AppTest) -> str:
    return "\n".join(str(element.value) for kind in ("markdown", "warning", "info", "error", "success", "caption", "toast")
                     for element in getattr(app, kind))


@pytest.mark.parametrize("page", PAGES)
def test_renders_without_data(app_without_data, page):
    app = open_page(app_without_data, page)
    if page is None:
        assert "FER_DATA" in texts(app)
        assert app.text_input(key="data_path_input").value == ""
    else:
        assert "No data chosen yet" in texts(app)
        assert any(link.proto.label == "Choose the data" for link in app.get("page_link"))


def test_wrong_path_shows_a_message_not_a_traceback(app_without_data, tmp_path):
    app = open_page(app_without_data, None)
    app.text_input(key="data_path_input").set_value(str(tmp_path / "nowhere")).run()
    assert not app.exception
    assert "no such file or folder" in texts(app)
    (tmp_path / "empty").mkdir()
    app.text_input(key="data_path_input").set_value(str(tmp_path / "empty")).run()
    assert not app.exception and app.error


@pytest.mark.parametrize("page", PAGES)
def test_renders_with_data(app, page):
    app = open_page(app, page)
    assert not app.error, [error.value for error in app.error]
    if page is None:
        values = {metric.label: metric.value for metric in app.metric}
        assert values["Images kept"] == "49"
        assert values["Exact-copy groups"] == "3" and values["Leaked test images"] == "1"
        assert len(app.get("plotly_chart")) == 1
    else:
        assert len(app.get("image")) > 0


def test_overview_click_path_drop_via_duplicates_changes_counts(app):
    app = open_page(app, "pages/1_Duplicates.py")
    key = "group_near_0"
    app.selectbox(key=f"{key}_action").set_value("drop_all")
    app.text_input(key=f"{key}_reason").set_value("test drop")
    next(button for button in app.button if button.label == "Apply").click().run()
    assert not app.exception
    log = read_edits()
    assert log and {edit.action for edit in log} == {"drop"} and log[0].reason == "test drop"
    assert "Dropped the group" in texts(app)
    app = open_page(app, None)
    values = {metric.label: metric.value for metric in app.metric}
    assert values["Images kept"] == str(49 - len(log))


def test_duplicates_leak_removal_preview_then_confirm(app):
    app = open_page(app, "pages/1_Duplicates.py")
    app.button(key="leak_preview_button").click().run()
    assert "would drop" in texts(app) and not read_edits()
    next(button for button in app.button if button.label.startswith("Drop 1 ")).click().run()
    log = read_edits()
    assert [edit.sample_id for edit in log] and {edit.action for edit in log} == {"drop"}


def test_outliers_click_path_relabel_from_gallery(app):
    app = open_page(app, "pages/2_Outliers.py")
    first = next(box for box in app.checkbox if box.key.startswith("out_rank_pick_"))
    first.check().run()
    app.selectbox(key="out_rank_emotion").set_value("surprise")
    app.text_input(key="out_rank_reason").set_value("test relabel")
    next(button for button in app.button if button.label == "Relabel picked"
         and button.proto.form_id == "out_rank_form").click().run()
    log = read_edits()
    assert len(log) == 1 and log[0].action == "relabel" and log[0].new_label == "surprise"
    assert log[0].sample_id == first.key.removeprefix("out_rank_pick_")


def test_review_click_path_drop_then_undo(app):
    app = open_page(app, "pages/3_Review.py")
    boxes = [box for box in app.checkbox if box.key.startswith("rev_pick_")][:2]
    for box in boxes:
        box.check()
    app.run()
    app.text_input(key="rev_reason").set_value("blurry")
    next(button for button in app.button if button.label == "Drop picked").click().run()
    log = read_edits()
    assert sorted(edit.sample_id for edit in log) == sorted(box.key.removeprefix("rev_pick_") for box in boxes)
    assert len(app.dataframe) == 1 and len(app.dataframe[0].value) == 2
    app.button(key="undo_button").click().run()
    log = read_edits()
    assert [edit.action for edit in log] == ["drop", "drop", "undo", "undo"]


def test_review_undo_offers_the_newest_batch(app):
    app = open_page(app, "pages/3_Review.py")
    for position, reason in ((0, "first"), (1, "second")):
        box = [box for box in app.checkbox if box.key.startswith("rev_pick_")][position]
        box.check().run()
        app.text_input(key="rev_reason").set_value(reason)
        next(button for button in app.button if button.label == "Drop picked").click().run()
        app.button(key="undo_button")  # the picker exists after each edit
    app.button(key="undo_button").click().run()
    log = read_edits()
    assert log[-1].action == "undo" and log[-1].undoes == log[1].edit_id and log[1].reason == "second"
