"""Issue 23 in a real browser: curate by policy on the Overview, undo it, then open a finished comparison.

Reuses the server fixture of test_browser.py (streamlit on a free port, the synthetic folder data with its
planted copies, cross-split copy and blank/text images, a fresh workspace). The comparison is recorded
without training (tests/comparisons.py: real statistics on made-up predictions, stored as real runs).
Every step waits for what it expects (never a fixed time). Screenshots of each step go to a tmp folder,
or to $FER_E2E_SCREENSHOTS when set.
"""

import re

from comparisons import record_comparison
from test_browser import (WAIT_MS, browser_page, pytestmark, screenshot_folder, server,  # noqa: F401
                          settle)

from fer_core.curation.edits import read_edits

TICKED_RULES = ("dedupe", "leaks", "non_faces")  # mislabels is skipped: no mislabel result for this data
TALL = {"width": 1400, "height": 2600}  # the whole Overview in one screenshot (the app scrolls inside its page)
PLANNED = re.compile(r"^(\w+): (\d+) Training images? to drop \(")


def planned_drops(panel) -> dict[str, int]:
    """{rule: images to drop} as the preview's bold lines say them."""
    lines = panel.locator('[data-testid="stMarkdownContainer"] strong').all_inner_texts()
    return {match[1]: int(match[2]) for match in map(PLANNED.match, lines) if match}


def no_error_shown(page) -> None:
    """No traceback and no error line on the page (a failed apply or undo is an error line at the top)."""
    settle(page)
    assert page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts() == []


def click_when_idle(page, button) -> None:
    """Click once the script run is over, so the click is not lost in a redraw."""
    settle(page)
    button.click()


def test_curate_by_policy_undo_it_and_open_a_finished_comparison(server, workspace, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    shots = screenshot_folder(tmp_path)
    with browser_page(shots, "curate_compare_failure.png") as page:
        # 1. The recommended policy, previewed then applied: one batch per rule, no test image touched.
        page.set_viewport_size(TALL)
        page.goto(server)
        # .first: once in a full-suite run the Overview kept a stale copy of its cards from an earlier script
        # run below the mislabel card for 90 s (a Streamlit redraw left behind; open, see the session note);
        # the live cards are the first
        edits_in_effect = page.locator('[data-testid="stMetric"]').filter(has_text="Edits in effect").locator(
            '[data-testid="stMetricValue"]').first
        expect(edits_in_effect).to_have_text("0", timeout=WAIT_MS)
        panel = page.locator('[data-testid="stVerticalBlock"]').filter(  # the innermost block holding both
            has=page.locator('[data-testid="stSelectbox"]').filter(has_text="Policy")).filter(
            has=page.locator(".st-key-curate_apply")).last
        expect(panel.get_by_role("combobox", name="Policy")).to_have_value(re.compile("^Recommended: duplicates"),
                                                                          timeout=WAIT_MS)
        for rule in TICKED_RULES:
            expect(panel.get_by_role("checkbox", name=re.compile(rf"^\W*{rule}\W*:"))).to_be_checked()
        expect(panel).to_contain_text("mislabels: skipped", timeout=WAIT_MS)  # no mislabel result for this data
        expect(panel).to_contain_text("leaks: nothing to do (after the rules above)")  # dedupe drops the leak first
        expect(panel).not_to_contain_text("Nothing to apply")
        planned = planned_drops(panel)
        assert set(planned) == {"dedupe", "non_faces"} and all(count > 0 for count in planned.values()), planned
        apply = panel.get_by_role("button", name="Apply", exact=True)
        expect(apply).to_be_enabled()
        panel.screenshot(path=str(shots / "1_preview.png"))

        click_when_idle(page, apply)
        expect(page.get_by_text("Policy recommended applied:").first).to_be_visible(timeout=WAIT_MS)
        expect(apply).to_be_disabled(timeout=WAIT_MS)  # nothing left to do: Apply cannot write an empty batch
        expect(panel).to_contain_text("Nothing to apply: the ticked rules have nothing left to change.")
        expect(panel).to_contain_text("dedupe: nothing to do")
        expect(panel).to_contain_text("non_faces: nothing to do")
        log = read_edits(workspace)
        batches = {}
        for edit in log:
            batches.setdefault(edit.batch_id, []).append(edit)
        assert sorted((edits[0].reason, len(edits)) for edits in batches.values()) == sorted(
            (f"policy recommended: {rule}", count) for rule, count in planned.items())
        assert all(len({edit.reason for edit in edits}) == 1 for edits in batches.values())
        assert [edit.sample_id for edit in log if not edit.sample_id.startswith("train/")] == []  # no test image
        assert {edit.action for edit in log} == {"drop"}
        expect(edits_in_effect).to_have_text(str(len(log)), timeout=WAIT_MS)
        undo_all = page.get_by_role("button", name="Undo the policy")
        expect(undo_all).to_be_visible()
        no_error_shown(page)
        page.screenshot(path=str(shots / "2_applied.png"))
        apply.click(force=True)  # a click on the disabled Apply writes nothing
        settle(page)
        assert read_edits(workspace) == log

        # 2. Undo one rule, then the rest of the policy; after that there is nothing left to undo.
        applied = len(log)
        undo_rule = page.get_by_role("button", name=f"Undo non_faces ({planned['non_faces']})")
        click_when_idle(page, undo_rule)
        expect(page.get_by_text("Undone: policy recommended: non_faces").first).to_be_visible(timeout=WAIT_MS)
        expect(undo_rule).to_have_count(0, timeout=WAIT_MS)
        expect(apply).to_be_enabled(timeout=WAIT_MS)  # non_faces has something to do again
        assert planned_drops(panel) == {"non_faces": planned["non_faces"]}
        expect(edits_in_effect).to_have_text(str(planned["dedupe"]), timeout=WAIT_MS)

        settle(page)
        undo_all.dblclick()  # a double click still undoes once: one undo row per edit, no error
        expect(page.get_by_text("Undone: policy recommended (").first).to_be_visible(timeout=WAIT_MS)
        expect(undo_all).to_have_count(0, timeout=WAIT_MS)  # undoing twice is not offered
        expect(page.get_by_role("button", name=re.compile(r"^Undo \w+ \("))).to_have_count(0)
        log = read_edits(workspace)
        undone = [edit for edit in log if edit.action == "undo"]
        assert len(log) == 2 * applied and len(undone) == applied
        assert sorted(edit.undoes for edit in undone) == sorted(edit.edit_id for edit in log[:applied])
        assert sorted({edit.reason for edit in undone}) == ["undone in the app: policy recommended",
                                                            "undone in the app: policy recommended: non_faces"]
        expect(edits_in_effect).to_have_text("0", timeout=WAIT_MS)
        assert planned_drops(panel) == planned  # the preview names the rules again, with the same counts
        expect(apply).to_be_enabled()
        no_error_shown(page)
        page.screenshot(path=str(shots / "3_undone.png"))

        # 3. A finished comparison on the Results page: interval first, the verdict, the circular figure fenced.
        experiment_id, comparison = record_comparison((tmp_path / "fer").resolve(), workspace)
        page.set_viewport_size({"width": 1400, "height": 1800})
        page.get_by_role("link", name="Results").first.click()
        headline = page.get_by_text(re.compile(r"points \[.+\]"))
        expect(headline.first).to_be_visible(timeout=WAIT_MS)
        difference = comparison["difference"]["leak_free_accuracy"]
        low, high = (f"{value * 100:+.1f}".replace("-", "−") for value in (difference["low"], difference["high"]))
        expect(headline.first).to_contain_text(f"points [{low}, {high}]")
        expect(page.get_by_text(f"Verdict: {comparison['verdict']}")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_role("combobox", name="Comparison")).to_have_value(re.compile(re.escape(experiment_id)))
        circular = page.locator('[data-testid="stExpander"]').filter(has_text="NOT A VALID MEASURE")
        expect(circular).to_have_count(1, timeout=WAIT_MS)
        no_error_shown(page)
        page.screenshot(path=str(shots / "4_compare.png"))
        warning = circular.get_by_text(re.compile("curated accuracy 71.2 % if the 57 test labels"))
        expect(warning).to_be_hidden()  # folded: the circular figure is never the first thing read
        circular.locator("summary").click()
        expect(warning).to_be_visible(timeout=WAIT_MS)
        circular.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "5_not_valid.png"))
