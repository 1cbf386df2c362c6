"""Training in a real browser: launch a tiny run on the Train page, watch it finish, see its confusion matrix.

Reuses the server fixture of test_browser.py (streamlit on a free port, synthetic folder data, a
fresh workspace). Screenshots go to a tmp folder, or to $FER_E2E_SCREENSHOTS when set.
"""

from test_browser import WAIT_MS, browser_page, pytestmark, screenshot_folder, server, settle  # noqa: F401 (fixture, skip)

from fer_core import jobs

RUN_WAIT_MS = 240_000  # a 2-epoch tiny CNN: about 30 s on a busy two-core machine, most of it TensorFlow start-up


def test_launch_a_run_and_see_its_confusion_matrix(server, workspace, tmp_path):
    from playwright.sync_api import expect

    shots = screenshot_folder(tmp_path)
    with browser_page(shots, "training_failure.png") as page:
        page.goto(f"{server}/Train")
        form = page.locator('[data-testid="stMainBlockContainer"]')  # the Train page's widgets (no st.form: the
        expect(form.get_by_text("Estimated time:")).to_be_visible(timeout=WAIT_MS)  # estimate follows them)
        settle(page)
        form.get_by_text("tiny", exact=True).click()
        epochs = form.get_by_label("Epochs (at most; early stopping on PublicTest)")
        epochs.fill("2")
        epochs.press("Tab")
        form.get_by_role("button", name="Launch", exact=True).click()

        expect(page.get_by_role("button", name="Cancel")).to_be_visible(timeout=WAIT_MS)  # queued or running
        records = jobs.list_runs(workspace)
        assert len(records) == 1 and records[0].config["size"] == "tiny" and records[0].config["epochs"] == 2
        page.screenshot(path=str(shots / "train_running.png"))
        # The live table: its cells are drawn on a canvas; glide-data-grid keeps an accessible copy in the DOM.
        expect(page.locator('[data-testid="stDataFrame"]').get_by_text("2 / 2")).to_be_attached(timeout=RUN_WAIT_MS)
        expect(page.get_by_role("link", name="See the results")).to_be_visible(timeout=WAIT_MS)
        assert jobs.list_runs(workspace)[0].state == jobs.SUCCEEDED
        page.screenshot(path=str(shots / "train_finished.png"))

        page.get_by_role("link", name="See the results").click()
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        expect(chart).to_be_visible(timeout=WAIT_MS)
        expect(chart.locator(".heatmaplayer, .hm").first).to_be_attached(timeout=WAIT_MS)
        expect(chart.get_by_text("neutral").first).to_be_attached()
        settle(page)
        page.screenshot(path=str(shots / "results.png"))

        # A click on a cell shows that cell's images: row "angry" (top; the y axis runs down), column "surprise".
        area = chart.locator(".nsewdrag").first.bounding_box()
        row, column = 0, 5
        page.mouse.click(area["x"] + area["width"] * (column + 0.5) / 7, area["y"] + area["height"] * (row + 0.5) / 7)
        caption = page.get_by_text("images filed as angry and predicted surprise")
        expect(caption).to_be_visible(timeout=WAIT_MS)
        caption.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "results_cell.png"))
