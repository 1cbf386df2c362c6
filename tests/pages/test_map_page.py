"""AppTest of the Map page: no data, the map built in the background then read from the cache, the colour
choice, and a selection on the map narrowing the Review page until cleared.

UMAP itself is tested in tests/test_embedding_map.py; here the projection is two principal components, so the
page's flow costs no compilation.
"""

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_mislabels import stored_result

from fer_app import selection
from fer_core.dataset.loading import load
from fer_core.views import embedding_map

MAP = "pages/7_Map.py"
REVIEW = "pages/3_Review.py"


@pytest.fixture
def cheap_projection(monkeypatch) -> list[int]:
    calls = []

    def project(features, config=embedding_map.MapConfig()):
        calls.append(len(features))
        return embedding_map._principal_components(np.asarray(features, np.float32))
    monkeypatch.setattr(embedding_map, "project_features", project)
    return calls


def open_page(app: AppTest, page: str) -> AppTest:
    app.switch_page(page)
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def texts(app: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error")
    return "\n".join(str(element.value) for kind in kinds for element in getattr(app, kind)).replace("\\", "")


def trace_names(app: AppTest) -> list[str]:
    figure = json.loads(app.get("plotly_chart")[0].proto.spec)
    return [trace["name"].split(" (")[0] for trace in figure["data"]]


def test_map_page_without_data_links_home(app_without_data):
    app = open_page(app_without_data, MAP)
    assert "No data chosen yet" in texts(app)


def test_map_is_built_once_then_read_from_the_cache_and_coloured_by_choice(app, cheap_projection, synthetic_folder,
                                                                          workspace):
    app = open_page(app, MAP)
    assert not app.error, [error.value for error in app.error]
    assert cheap_projection == [50] and len(app.get("plotly_chart")) == 1
    assert "50 images · Shape descriptors" in texts(app)
    assert set(trace_names(app)) <= {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    app.selectbox(key="map_colouring").set_value("leak").run()
    assert trace_names(app) == ["not leak", "leak"]
    app.selectbox(key="map_colouring").set_value("suspected mislabel").run()
    assert "have not been computed" in texts(app) and trace_names(app) == ["not suspected mislabel"]
    dataset = load(synthetic_folder, workspace=workspace)
    suspect = dataset.ids[dataset.usages == "Training"][0]
    stored_result(dataset, {suspect: ((int(dataset.labels[dataset.index_of(suspect)]) + 3) % 7, 0.03)}, workspace)
    app.run()
    assert trace_names(app) == ["not suspected mislabel", "suspected mislabel"]
    assert json.loads(app.get("plotly_chart")[0].proto.spec)["data"][1]["customdata"] == [suspect]
    assert cheap_projection == [50]  # a rerun reads the map back
    app = open_page(app, MAP)
    assert cheap_projection == [50]


def test_a_map_selection_narrows_review_until_cleared(app, cheap_projection, synthetic_folder):
    app = open_page(app, MAP)
    assert not app.get("image") and "Drag a lasso" in texts(app)  # no preview before a selection
    files = sorted(path.relative_to(synthetic_folder).as_posix() for path in synthetic_folder.rglob("*.png"))
    picked = [files[0], files[len(files) // 2], files[-1]]  # test and train images
    app.session_state[selection.SELECTION] = selection.Selection(tuple(picked), "the map")
    app.run()
    assert "**3** images selected on the map." in texts(app) and len(app.get("image")) == 3  # the preview
    assert [link.proto.label for link in app.get("page_link") if link.proto.label == "Open in Review"]
    app = open_page(app, REVIEW)
    assert "3 images selected on the map" in texts(app) and "**3** image(s) match." in texts(app)
    shown = sorted(box.key.split("_pick_", 1)[1].split("_", 1)[1] for box in app.checkbox if "_pick_" in box.key)
    assert shown == sorted(picked)
    app.button(key="selection_clear").click().run()
    assert "selected on the map" not in texts(app) and "**50** image(s) match." in texts(app)
