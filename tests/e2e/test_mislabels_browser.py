"""Suspected mislabels in a real browser: the Overview card, then accept one suggestion on the Review page."""

from test_browser import (WAIT_MS, browser_page, metric, pick, pytestmark, screenshot_folder, server, short, tile,
                          tile_id)  # noqa: F401
from test_mislabels import stored_result

from fer_core.curation.edits import read_edits
from fer_core.dataset.loading import load
from fer_core.labels import EMOTIONS


def test_accept_one_suggestion(server, workspace, tmp_path):  # noqa: F811 (the server fixture)
    from playwright.sync_api import expect

    dataset = load(tmp_path / "fer", workspace=workspace)  # the folder the server fixture serves
    training = [sample for sample, usage in zip(dataset.ids, dataset.usages) if usage == "Training"][:2]
    suspects = {sample: ((int(dataset.labels[dataset.index_of(sample)]) + 3) % 7, given)
                for sample, given in zip(training, (0.03, 0.06))}
    stored_result(dataset, suspects, workspace)

    shots = screenshot_folder(tmp_path)
    with browser_page(shots, "mislabels_failure.png") as page:
        page.goto(server)
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Suspected mislabels")).to_be_visible(
            timeout=WAIT_MS)
        assert metric(page, "Suspected mislabels") == "2"
        page.screenshot(path=str(shots / "mislabels_overview.png"))

        page.goto(f"{server}/Review")
        page.get_by_text("Suspected mislabels (model)").click()
        first = tile(page, "mis", "→")
        expect(first).to_be_visible(timeout=WAIT_MS)
        page.screenshot(path=str(shots / "mislabels_queue.png"))
        picked = tile_id(first)
        pick(first)
        form = page.locator('[data-testid="stForm"]').filter(has_text="image(s) picked")
        expect(form).to_contain_text("1 image(s) picked", timeout=WAIT_MS)
        form.get_by_role("button", name="Accept suggestion").click()
        bar = page.locator('[class*="st-key-last_edit_bar"]')
        expect(bar).to_contain_text("Relabeled 1 image(s) to the model's suggestion", timeout=WAIT_MS)
        page.screenshot(path=str(shots / "mislabels_accepted.png"))
        log = read_edits(workspace)
        assert [(edit.action, short(edit.sample_id)) for edit in log] == [("relabel", picked)]
        assert log[0].new_label == EMOTIONS[suspects[training[0]][0]]
        assert log[0].reason.startswith("suggested by model (score ")

