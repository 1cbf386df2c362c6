"""AppTest for every page: renders with no data, renders with the synthetic dataset, one edit per page."""

import pytest
from streamlit.testing.v1 import AppTest

from fer_core.curation.edits import read_edits

PAGES = [None, "pages/1_Duplicates.py", "pages/2_Outliers.py", "pages/3_Review.py"]


def open_page(app: AppTest, page: str | None) -> AppTest:
    """Run the app on `page` (None = Overview), failing on any exception."""
    app.switch_page(page or "app.py")
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(app: AppTest) -> str:
    """Every message on the page, Markdown escapes removed."""
    kinds = ("markdown", "subheader", "warning", "info", "error", "success", "caption", "toast")
    return "\n".join(str(element.value) for kind in kinds for element in getattr(app, kind)).replace("\\", "")


def pick_boxes(app: AppTest, gallery: str) -> list:
    """The pick checkboxes (one per tile) of gallery `gallery`."""
    return [box for box in app.checkbox if box.key.startswith(f"{gallery}_pick_")]


def training_boxes(app: AppTest, gallery: str) -> list:
    """Pick boxes of Training images (acting on test images asks for a confirmation first)."""
    return [box for box in pick_boxes(app, gallery) if sample_id(box).startswith("train/")]


def sample_id(box) -> str:
    """The sample id of a pick checkbox (key `<gallery>_pick_<generation>_<id>`)."""
    return box.key.split("_pick_", 1)[1].split("_", 1)[1]


def button(app: AppTest, label: str, form: str | None = None):
    return next(b for b in app.button if b.label == label and (form is None or b.proto.form_id == form))


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


@pytest.mark.parametrize("page", PAGES)
def test_renders_without_data(app_without_data, page):
    app = open_page(app_without_data, page)
    if page is None:
        assert "FER_DATA" in texts(app)
        assert app.text_input(key="data_path_input").value == ""
    else:
        assert "No data chosen yet" in texts(app)
        assert any(link.proto.label == "Choose the data" for link in app.get("page_link"))


def test_wrong_path_shows_a_message_not_a_traceback(app_without_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_AUDIT_DATA_ROOT", str(tmp_path))
    app = open_page(app_without_data, None)
    app.text_input(key="data_path_input").set_value(str(tmp_path / "nowhere")).run()
    assert not app.exception
    assert "no such file or folder" in texts(app)
    (tmp_path / "empty").mkdir()
    app.text_input(key="data_path_input").set_value("empty").run()  # relative to the data root
    assert not app.exception and app.error


@pytest.mark.parametrize("page", PAGES)
def test_renders_with_data(app, page):
    app = open_page(app, page)
    assert not app.error, [error.value for error in app.error]
    if page is None:
        values = metrics(app)
        assert values["Images kept"] == "50"
        assert values["Exact-copy groups open"] == "3" and values["Test images leaked"] == "1"
        assert len(app.get("plotly_chart")) == 1
    elif page.endswith("Duplicates.py"):
        assert len(app.get("image")) > 0
    else:
        assert pick_boxes(app, "out_rank" if "Outliers" in page else "rev")


def test_overview_click_path_drop_via_duplicates_changes_counts(app):
    app = open_page(app, "pages/1_Duplicates.py")
    key = "group_near_0"
    app.segmented_control(key=f"{key}_action").set_value("drop_all").run()
    app.text_input(key=f"{key}_reason").set_value("test drop")
    if any(box.key == f"{key}_confirm_test" for box in app.checkbox):
        app.checkbox(key=f"{key}_confirm_test").check()
    button(app, "Apply", f"{key}_form").click().run()
    assert not app.exception
    log = read_edits()
    assert log and {edit.action for edit in log} == {"drop"} and log[0].reason == "test drop"
    assert "Dropped the group" in texts(app)
    app = open_page(app, None)
    assert metrics(app)["Images kept"] == str(50 - len(log))


def test_duplicates_leak_removal_preview_then_confirm(app):
    app = open_page(app, "pages/1_Duplicates.py")
    app.button(key="leak_preview_button").click().run()
    assert "would drop" in texts(app) and not read_edits()
    next(b for b in app.button if b.label.startswith("Drop 1 ")).click().run()
    log = read_edits()
    assert [edit.sample_id for edit in log] and {edit.action for edit in log} == {"drop"}


def test_outliers_click_path_relabel_from_gallery(app):
    app = open_page(app, "pages/2_Outliers.py")
    first = training_boxes(app, "out_rank")[0]
    first.check().run()
    app.selectbox(key="out_rank_emotion").set_value("surprise")
    app.text_input(key="out_rank_reason").set_value("test relabel")
    button(app, "Relabel picked", "out_rank_form").click().run()
    log = read_edits()
    assert len(log) == 1 and log[0].action == "relabel" and log[0].new_label == "surprise"
    assert log[0].sample_id == sample_id(first)


def test_review_click_path_drop_then_undo(app):
    app = open_page(app, "pages/3_Review.py")
    boxes = training_boxes(app, "rev")[:2]
    for box in boxes:
        box.check().run()
    app.text_input(key="rev_reason").set_value("blurry")
    button(app, "Drop picked").click().run()
    log = read_edits()
    assert sorted(edit.sample_id for edit in log) == sorted(sample_id(box) for box in boxes)
    assert len(app.dataframe) == 1 and len(app.dataframe[0].value) == 2
    app.button(key="undo_button").click().run()
    log = read_edits()
    assert [edit.action for edit in log] == ["drop", "drop", "undo", "undo"]
