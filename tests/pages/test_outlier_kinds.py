"""AppTest: the Outliers page filters its gallery by outlier kind and captions each tile with its kind."""

from test_pages import open_page, pick_boxes, sample_id, texts

# make_synthetic's planted non-faces as write_folders names them (<split>/<emotion>/<Usage>_<row>.png)
PLANTED = {"blank": "train/neutral/Training_47.png", "placeholder": "train/happy/Training_48.png",
           "drawing": "train/surprise/Training_49.png"}


def test_kind_filter_shows_only_that_kind_with_its_evidence(app):
    app = open_page(app, "pages/2_Outliers.py")
    kind_box = app.selectbox(key="out_kind")
    assert kind_box.options == ["every kind", "blank", "placeholder", "drawing", "no usable face"]
    assert "blank 1, placeholder 1, drawing 1" in texts(app)  # the counts per kind above the gallery
    every = {sample_id(box) for box in pick_boxes(app, "out_rank")}
    assert set(PLANTED.values()) <= every
    for kind, planted in PLANTED.items():
        app.selectbox(key="out_kind").set_value(kind).run()
        assert not app.exception
        assert [sample_id(box) for box in pick_boxes(app, "out_rank")] == [planted]
        assert f" · {kind}" in texts(app)  # the tile's caption: score · evidence · kind
    app.selectbox(key="out_kind").set_value("").run()
    assert {sample_id(box) for box in pick_boxes(app, "out_rank")} == every
