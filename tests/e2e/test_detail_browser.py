"""The image panel in a real browser: a finished tiny run's confusion cell → an image's Details → Find similar →
Pick all → Drop picked writes one batch of exactly the neighbours shown; Undo once, and not twice.

Reuses the server fixture of test_browser.py (streamlit on a free port, synthetic folder data, a fresh
workspace); the tiny run (1 epoch, as test_report_browser.py's) is queued as the server starts. Screenshots go
to a tmp folder, or to $FER_E2E_SCREENSHOTS when set.
"""

import re
import time

import numpy as np
from test_browser import WAIT_MS, browser_page, pytestmark, screenshot_folder, server, settle  # noqa: F401 (fixture, skip)

from fer_core import jobs
from fer_core.curation.edits import read_edits
from fer_core.dataset.loading import load
from fer_core.training.config import TrainConfig
from fer_core.training.features import descriptor_features
from fer_core.views.similar import nearest_neighbours

RUN_TIMEOUT_SECONDS = 240  # a 1-epoch tiny CNN: about 30 s on a busy two-core machine, most of it TensorFlow start-up


def queue_tiny_run(data, workspace) -> str:
    return jobs.submit(TrainConfig(model="cnn", sampling="none", epochs=1, size="tiny", batch_size=32), data, workspace)


def wait_until_finished(run_id: str, workspace) -> jobs.RunRecord:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not jobs.get_run(run_id, workspace).finished:
        assert time.monotonic() < deadline, "the tiny training run did not finish"
        time.sleep(0.5)
    record = jobs.get_run(run_id, workspace)
    assert record.state == jobs.SUCCEEDED, record.error
    return record


def test_open_an_image_from_a_confusion_cell_and_drop_its_neighbours_in_one_batch(server, workspace, tmp_path):
    from playwright.sync_api import expect

    data = tmp_path / "fer"  # where the server fixture wrote the synthetic folders
    run_id = queue_tiny_run(data, workspace)
    shots = screenshot_folder(tmp_path)
    with browser_page(shots, "detail_failure.png") as page:
        page.goto(f"{server}/Review")  # the audit runs while the model trains
        expect(page.get_by_role("button", name="Details").first).to_be_visible(timeout=WAIT_MS)
        record = wait_until_finished(run_id, workspace)
        confusion = np.array(record.metrics["confusion"])
        row, column = np.unravel_index(int(np.argmax(confusion)), confusion.shape)  # the fullest cell
        page.goto(f"{server}/Results")
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        expect(chart.locator(".heatmaplayer, .hm").first).to_be_attached(timeout=WAIT_MS)
        settle(page)
        area = chart.locator(".nsewdrag").first.bounding_box()
        page.mouse.click(area["x"] + area["width"] * (column + 0.5) / 7, area["y"] + area["height"] * (row + 0.5) / 7)
        tiles = page.locator(".st-key-details_tiles_results_cell")
        expect(tiles.get_by_role("button", name="Details").first).to_be_visible(timeout=WAIT_MS)
        settle(page)
        tiles.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "1_cell_tiles.png"))

        tiles.get_by_role("button", name="Details").first.click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("Predictions of the finished runs")).to_be_visible(timeout=WAIT_MS)
        sample_id = dialog.locator('[data-testid="stCode"]').first.inner_text().strip()
        assert sample_id.startswith("test/")  # a PrivateTest image of the cell
        expect(dialog.get_by_text("Edit history")).to_be_visible()
        settle(page)
        dialog.screenshot(path=str(shots / "2_panel_story.png"))

        dialog.get_by_role("tab", name="Find similar").click()
        pick_all = dialog.get_by_role("button", name="Pick all")
        expect(pick_all).to_be_visible(timeout=WAIT_MS)
        form = dialog.locator('[data-testid="stForm"]').filter(has_text="image(s) picked").last
        expect(form.get_by_role("button", name="Drop picked")).to_be_disabled()  # nothing picked: nothing to do
        pick_all.click()
        expect(form).to_contain_text("12 image(s) picked", timeout=WAIT_MS)
        form.get_by_placeholder("why (kept in the edit history)").fill("e2e: same photo session")
        confirm = form.get_by_text(re.compile(r"Yes, change \d+ PublicTest/PrivateTest image"))
        if confirm.count():
            confirm.click()
        settle(page)
        dialog.screenshot(path=str(shots / "3_similar_picked.png"))
        form.get_by_role("button", name="Drop picked").click()
        expect(dialog.get_by_text("Dropped 12 image(s) (12 edits logged)").first).to_be_visible(timeout=WAIT_MS)
        settle(page)
        dialog.screenshot(path=str(shots / "4_dropped.png"))

        dataset = load(data, workspace=workspace)
        expected = nearest_neighbours(descriptor_features(dataset), dataset.index_of(sample_id), 12,
                                      mirrored_features=descriptor_features(dataset, mirrored=True))
        log = read_edits(workspace)
        assert len({edit.batch_id for edit in log}) == 1 and {edit.action for edit in log} == {"drop"}
        assert sorted(edit.sample_id for edit in log) == sorted(dataset.ids[expected["row"]])

        undo = dialog.get_by_role("button", name="Undo")
        undo.click()
        expect(dialog.get_by_text("Undone: 12 edits reversed")).to_be_visible(timeout=WAIT_MS)
        settle(page)
        expect(undo).to_have_count(0, timeout=WAIT_MS)  # undone once: no second Undo of the same batch
        log = read_edits(workspace)
        assert [edit.action for edit in log].count("undo") == 12 and len({edit.batch_id for edit in log}) == 2
        settle(page)
        dialog.screenshot(path=str(shots / "5_undone.png"))
