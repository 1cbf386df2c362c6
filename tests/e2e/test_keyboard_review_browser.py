"""Keyboard review in a real browser (issue 24): 20 suspected mislabels decided with the keyboard only
(accept, keep, relabel, drop, two decisions undone and decided again, moves back and forth), then the
edit log holds exactly those decisions, one batch each. Prints the decisions per minute (each key waits
for the page to show its result, as a reviewer would)."""

import time

from test_browser import WAIT_MS, browser_page, pytestmark, screenshot_folder, server, settle  # noqa: F401
from test_mislabels import stored_result

from fer_app.keyboard.keys import item_tag
from fer_core.curation.edits import read_edits, read_state
from fer_core.curation.replay import find_active_edits
from fer_core.dataset.loading import load
from fer_core.labels import EMOTIONS
from fer_core.views.review_queue import mislabel_queue

IMAGES = 20
# The keys, image by image (queue order): accept, keep, relabel (number), drop; "d u o" = drop, undo it,
# then keep; "→ ←" / "j k" move away and back first.
SCRIPT = ["a", "o", "#", "d", "d u o", "a", "o", "#", "j k a", "d", "a", "# z a", "o", "#", "→ ← d", "a", "o", "#",
          "d", "a"]


# The page shows `shown` in its header and the image (group) tagged `tag` ("" for none, at the end): what
# a reviewer waits for before the next key. Checked at each animation frame (expect() polls at intervals of
# up to 1 s, which would be measured too).
PAGE_SHOWS = """([shown, tag]) => [...document.querySelectorAll('[data-testid="stMarkdown"]')]
    .some(element => element.innerText.includes(shown))
    && (tag === "" ? !document.querySelector('[class*="st-key-kb_rev_mis_item_"]')
                   : !!document.querySelector(`.st-key-kb_rev_mis_item_${tag}`)
                     && document.querySelectorAll('[class*="st-key-kb_rev_mis_item_"]').length === 1)"""
# one item container only: under load the item before can linger in the page for a moment while the new one
# is drawn, and a key pressed then names the item before (refused, as it should be, but the script moves on)


def header_shows(page, text: str) -> None:
    """Wait until the panel says `text` (its header or its message) in any of its texts: under load the header of
    the rerun before can stand beside the new one for a moment (a locator would then match two)."""
    page.wait_for_function("""(text) => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
        .some(element => element.innerText.includes(text))""",
                           arg=text, polling="raf", timeout=WAIT_MS)


def relabel_key(label: int) -> str:
    """A number key for an emotion other than the image's own."""
    return str((label + 3) % len(EMOTIONS) + 1)


def test_twenty_decisions_by_keyboard_only(server, workspace, tmp_path):  # noqa: F811 (the server fixture)
    dataset = load(tmp_path / "fer", workspace=workspace)  # the folder the server fixture serves
    training = [sample for sample, usage in zip(dataset.ids, dataset.usages) if usage == "Training"][:IMAGES]
    suspects = {sample: ((int(dataset.labels[dataset.index_of(sample)]) + 2) % len(EMOTIONS), 0.01 + 0.001 * number)
                for number, sample in enumerate(training)}
    result = stored_result(dataset, suspects, workspace)
    queue = list(mislabel_queue(result, dataset, read_state(workspace)).keys)
    assert sorted(queue) == sorted(training)

    shots = screenshot_folder(tmp_path)
    with browser_page(shots, "keyboard_failure.png") as page:
        page.goto(f"{server}/Review")
        page.get_by_text("Suspected mislabels (model)").click()
        settle(page)
        page.get_by_text("Keyboard review: one at a time").click()
        header_shows(page, f"item 1 of {IMAGES} · 0 decided")
        page.wait_for_function("() => document.body.dataset.reviewKeys === 'listening'", timeout=WAIT_MS)
        settle(page)
        page.screenshot(path=str(shots / "keyboard_first.png"))

        reason = page.get_by_label("Reason for relabels and drops (optional)")
        reason.press_sequentially("d1a")  # typed into a field: no decision
        settle(page)
        assert read_edits(workspace) == []
        reason.fill("")  # relabels and drops then get the default reason
        page.get_by_text("Keys:").click()  # focus back on the page
        settle(page)

        expected, decided, started, waits = [], 0, time.monotonic(), []
        for number, (sample_id, keys) in enumerate(zip(queue, SCRIPT)):
            label = int(dataset.labels[dataset.index_of(sample_id)])
            for key in keys.split():
                if key == "#":
                    key = relabel_key(label)
                press_started = time.monotonic()
                page.keyboard.press({"→": "ArrowRight", "←": "ArrowLeft"}.get(key, key))
                if key in ("→", "j"):
                    position = number + 2
                elif key in ("u", "z", "←", "k"):
                    decided -= key in ("u", "z")
                    position = number + 1
                else:
                    decided += 1
                    position = number + 2
                shown = f"item {position} of {IMAGES} · {decided} decided" if position <= IMAGES else \
                    f"{IMAGES} item(s) · {decided} decided"
                tag = item_tag(queue[position - 1]) if position <= IMAGES else ""
                page.wait_for_function(PAGE_SHOWS, arg=[shown, tag], polling="raf", timeout=WAIT_MS)
                waits.append(time.monotonic() - press_started)
            final = keys.split()[-1]
            final = relabel_key(label) if final == "#" else final
            expected.append((sample_id, final))
            if number == 4:
                page.screenshot(path=str(shots / "keyboard_after_undo.png"))
        elapsed = time.monotonic() - started
        header_shows(page, f"End of the queue: all {IMAGES} item(s) seen, {IMAGES} decided")
        page.screenshot(path=str(shots / "keyboard_end.png"))

        # Undo twice: the two newest decisions, newest first; then a key pressed twice before the page caught
        # up acts once (the second one named the image just decided, so it is refused, not applied to the next).
        before = len(read_edits(workspace))
        for step in (1, 2):
            page.keyboard.press("u")
            page.wait_for_function(PAGE_SHOWS, arg=[f"item {IMAGES + 1 - step} of {IMAGES} · {IMAGES - step} decided",
                                                    item_tag(queue[IMAGES - step])], polling="raf", timeout=WAIT_MS)
        page.keyboard.press("o")
        page.keyboard.press("o")
        header_shows(page, "Not done: that key was for the item before")
        header_shows(page, f"item {IMAGES} of {IMAGES} · {IMAGES - 1} decided")
        page.screenshot(path=str(shots / "keyboard_double_press.png"))
        assert [(edit.action, edit.sample_id) for edit in read_edits(workspace)[before:]] == [
            ("undo", queue[IMAGES - 1]), ("undo", queue[IMAGES - 2]), ("review_ok", queue[IMAGES - 2])]

    per_minute, median = IMAGES / (elapsed / 60), sorted(waits)[len(waits) // 2]
    print(f"\nkeyboard review: {IMAGES} decisions (+2 undone, 2 undos, 2 moves away and back) in {elapsed:.1f} s: "
          f"{per_minute:.0f} decisions per minute; key → page updated: median {median:.2f} s, "
          f"slowest {max(waits):.2f} s over {len(waits)} keys")

    log = read_edits(workspace)[:before]  # the 20 decisions (the steps after them are checked above)
    active = [edit for edit in find_active_edits(log) if edit.action != "undo"]
    assert len({edit.batch_id for edit in active}) == IMAGES == len(active)  # one batch per decision
    action_of = {"a": "relabel", "o": "review_ok", "d": "drop"}
    got = [(edit.sample_id, edit.action, edit.new_label) for edit in active]
    want = []
    for sample_id, key in expected:
        if key in action_of and key != "a":
            want.append((sample_id, action_of[key], None))
        elif key == "a":
            want.append((sample_id, "relabel", EMOTIONS[suspects[sample_id][0]]))
        else:
            want.append((sample_id, "relabel", EMOTIONS[int(key) - 1]))
    assert got == want
    undone = [edit for edit in log if edit.action != "undo" and edit not in active]
    undos = [edit for edit in log if edit.action == "undo"]
    assert [(edit.sample_id, edit.action) for edit in undone] == [(queue[4], "drop"), (queue[11], "relabel")]
    assert [edit.undoes for edit in undos] == [edit.edit_id for edit in undone]
    for edit, (_, key) in zip(active, expected):  # the reasons the gallery's forms write, else the default
        if key == "a":
            assert edit.reason.startswith("suggested by model (score "), edit.reason
        else:
            assert edit.reason == {"o": "suggested relabel rejected: given label kept"}.get(
                key, "keyboard review of suspected mislabels"), (key, edit.reason)
