"""The Map page in a real browser: a lasso drawn with the mouse around part of the map selects exactly the points
inside it (Clear forgets it for good), and the Review page then shows exactly those images, until Clear.

The map is built beforehand by the library (two principal components instead of UMAP, which
tests/test_embedding_map.py covers), so the server only reads it from the workspace's cache.
"""

import re

import numpy as np
from test_browser import (WAIT_MS, browser_page, pytestmark, screenshot_folder, server, settle,  # noqa: F401
                          short)

from fer_core.dataset.loading import load
from fer_core.training.features import DESCRIPTORS, FeatureSpace
from fer_core.views import embedding_map

# Each point's position on the screen (the plot area's corner plus plotly's own data → pixel mapping); the
# traces as plotly.js decoded them (the figure's arrays arrive base64-encoded).
POINTS_ON_SCREEN = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  const area = plot.querySelector('.nsewdrag').getBoundingClientRect();
  const xaxis = plot._fullLayout.xaxis, yaxis = plot._fullLayout.yaxis;
  return plot._fullData.flatMap(trace => Array.from(trace.x, (x, i) => [trace.customdata[i],
      area.left + xaxis.d2p(x), area.top + yaxis.d2p(trace.y[i])]));
}"""


def prebuilt_map(data, workspace, monkeypatch) -> None:
    monkeypatch.setattr(embedding_map, "project_features",
                        lambda features, config=None: embedding_map._principal_components(features))
    embedding_map.build_map(load(data, workspace=workspace), FeatureSpace(DESCRIPTORS, "descriptors"),
                            workspace=workspace)


def lasso_rectangle(points: list) -> tuple[float, float, float, float, list[str]]:
    """A rectangle (left, top, right, bottom) around the leftmost few points, its edges midway in gaps of at
    least 6 px between points, and the ids inside it."""
    xs = np.array([x for _, x, _ in points])
    ys = np.array([y for _, _, y in points])
    order = np.sort(xs)
    cut = next(index for index in range(4, len(order) - 1) if order[index + 1] - order[index] >= 6)
    right = (order[cut] + order[cut + 1]) / 2
    left, top, bottom = xs.min() - 8, ys.min() - 8, ys.max() + 8
    inside = [sample_id for sample_id, x, _ in points if x < right]
    return left, top, right, bottom, inside


def draw_lasso(page, left: float, top: float, right: float, bottom: float) -> None:
    corners = [(left, top), (right, top), (right, bottom), (left, bottom), (left, top + 1)]
    page.mouse.move(*corners[0])
    page.mouse.down()
    for x, y in corners[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_lasso_on_the_map_opens_exactly_those_images_in_review(server, workspace, tmp_path, monkeypatch):
    from playwright.sync_api import expect

    prebuilt_map(tmp_path / "fer", workspace, monkeypatch)
    shots = screenshot_folder(tmp_path)
    with browser_page(shots, "map_failure.png") as page:
        page.goto(f"{server}/Map")
        expect(page.locator(".js-plotly-plot .nsewdrag").first).to_be_visible(timeout=WAIT_MS)
        settle(page)
        expect(page.get_by_text("Drag a lasso")).to_be_visible(timeout=WAIT_MS)
        # the face stage's bar above the map goes when the stage ends, and the map moves up: wait for that first
        expect(page.get_by_text(re.compile("^Face stage"))).to_have_count(0, timeout=WAIT_MS)
        settle(page)
        left, top, right, bottom, inside = lasso_rectangle(page.evaluate(POINTS_ON_SCREEN))
        assert 5 <= len(inside) <= 24  # a part of the map, all on Review's first page
        draw_lasso(page, left, top, right, bottom)
        selected = page.get_by_text(f"{len(inside)} images selected on the map.")
        expect(selected).to_be_visible(timeout=WAIT_MS)
        settle(page)
        page.locator('[class*="st-key-map_selection"]').get_by_role("button", name="Clear").click()
        expect(page.get_by_text("Drag a lasso")).to_be_visible(timeout=WAIT_MS)
        settle(page)
        expect(selected).to_have_count(0)  # not selected again by the lasso the browser still remembers
        draw_lasso(page, left, top, right, bottom)
        expect(selected).to_be_visible(timeout=WAIT_MS)
        settle(page)
        page.screenshot(path=str(shots / "map_lasso.png"))

        page.get_by_role("link", name="Open in Review").click()
        bar = page.locator('[class*="st-key-selection_bar"]')
        expect(bar).to_contain_text(f"{len(inside)} images selected on the map", timeout=WAIT_MS)
        expect(page.get_by_text(f"{len(inside)} image(s) match.")).to_be_visible(timeout=WAIT_MS)
        settle(page)
        shown = page.locator('[class*="st-key-gallery_rev"] [class*="st-key-tile_rev_"] img').evaluate_all(
            "images => images.map(image => image.alt)")
        assert sorted(shown) == sorted(short(sample_id) for sample_id in inside)
        page.screenshot(path=str(shots / "map_review.png"))

        bar.get_by_role("button", name="Clear").click()
        expect(bar).to_have_count(0, timeout=WAIT_MS)
        expect(page.get_by_text("50 image(s) match.")).to_be_visible(timeout=WAIT_MS)
