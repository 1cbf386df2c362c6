"""Keyboard review (issue 24): one item at a time on the Review, Outliers and Duplicates pages; each decision
one edit batch written at once, undo by batch, the queue advancing, its end and an empty queue saying so.
The keys themselves are pressed in a real browser (tests/e2e/test_keyboard_review_browser.py); here the
buttons, which run the same actions, and the pure parts (queues, key mapping, press hand-over)."""

from test_mislabel_review import suspects_of
from test_mislabels import stored_result
from test_pages import open_page, texts

from fer_app.keyboard import keys
from fer_core.curation.edits import read_edits, undo_batch
from fer_core.dataset.loading import load
from fer_core.labels import EMOTIONS
from fer_core.views.review_queue import Member, majority_label, resumed_position, same_queue


def click(app, label: str):
    """Click the keyboard review's button `label` (each action has one for the mouse) and run."""
    next(button for button in app.button if button.label == label).click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def header(app) -> str:
    return next(line for line in texts(app).splitlines() if line.startswith("**Keyboard review:"))


def keyboard_review(app, page: str = "pages/3_Review.py", place: str = "rev", **session):
    for key, value in session.items():
        app.session_state[key] = value
    app = open_page(app, page)
    app.toggle(key=f"{place}_keyboard").set_value(True).run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def test_suspected_mislabels_accept_undo_keep_then_the_end_of_the_queue(app, workspace, synthetic_folder):
    dataset = load(synthetic_folder, workspace=workspace)
    suspects = suspects_of(dataset)
    stored_result(dataset, suspects, workspace)
    first, second = suspects
    app = keyboard_review(app, rev_mislabels=True, author="Ada Reviewer")
    assert "Keyboard review: suspected mislabels** · item 1 of 2 · 0 decided" in header(app)
    given, suggested = EMOTIONS[dataset.labels[dataset.index_of(first)]], EMOTIONS[suspects[first][0]]
    assert f"Suspected mislabel: given {given}, the model suggests {suggested}" in texts(app)
    assert f"`a` accepts: **{suggested}**" in texts(app) and "Keys: `→` or `j` next" in texts(app)
    assert len(app.get("image")) == 1

    click(app, "Accept suggestion (a)")
    log = read_edits()
    assert [(edit.action, edit.sample_id, edit.new_label) for edit in log] == [("relabel", first, suggested)]
    assert log[0].reason.startswith("suggested by model (score ")
    assert log[0].author == "Ada Reviewer"  # the session's name, not the server's user
    assert "item 2 of 2 · 1 decided" in header(app)  # the queue advanced

    click(app, "Undo (u)")
    log = read_edits()
    assert [edit.action for edit in log] == ["relabel", "undo"] and log[1].undoes == log[0].edit_id
    assert log[1].batch_id != log[0].batch_id and log[1].author == "Ada Reviewer"
    assert "item 1 of 2 · 0 decided" in header(app) and "Undone: Relabeled" in texts(app)
    click(app, "Undo (u)")
    assert "Nothing to undo in this review." in texts(app) and len(read_edits()) == 2

    click(app, "Keep label: reviewed OK (o)")
    assert (read_edits()[-1].action, read_edits()[-1].sample_id) == ("review_ok", first)
    assert read_edits()[-1].reason == "suggested relabel rejected: given label kept"  # as the gallery's Keep
    click(app, "Keep label: reviewed OK (o)")
    assert read_edits()[-1].sample_id == second
    assert "End of the queue: all 2 item(s) seen, 2 decided in this review" in texts(app)
    batches = len({edit.batch_id for edit in read_edits()})
    click(app, "Accept suggestion (a)")
    assert "End of the queue: nothing left to decide here" in texts(app)
    assert len({edit.batch_id for edit in read_edits()}) == batches  # nothing written
    click(app, "← Previous (k)")
    assert "item 2 of 2" in header(app) and "decided in this review: Kept the given label" in texts(app)

    undo_batch(read_edits()[-1].batch_id)  # undone meanwhile, e.g. from the history
    click(app, "Undo (u)")
    assert "Not undone: no active edits in batch" in texts(app)
    click(app, "Undo (u)")  # the decision before it
    assert read_edits()[-1].undoes == next(edit.edit_id for edit in read_edits() if edit.sample_id == first
                                           and edit.action == "review_ok")


def test_filtered_images_relabel_by_number_drop_test_images_need_the_switch_and_an_empty_queue(app):
    app = keyboard_review(app, rev_usages=["Training"], rev_emotions=["fear"])
    total = int(header(app).split(" of ")[1].split(" ")[0])
    assert "Keyboard review: images matching the filters** · item 1 of" in header(app) and total >= 2
    shown = next(line for line in texts(app).splitlines() if line.startswith("Now: "))
    click(app, "4 happy")
    log = read_edits()
    assert [(edit.action, edit.old_label, edit.new_label) for edit in log] == [("relabel", "fear", "happy")]
    assert log[0].sample_id in shown and log[0].reason == "keyboard review of images matching the filters"
    assert f"item 2 of {total}" in header(app)

    app.text_input(key="kb_rev_reason").set_value("blurred beyond use").run()
    click(app, "Drop (d)")
    assert (read_edits()[-1].action, read_edits()[-1].reason) == ("drop", "blurred beyond use")
    click(app, "Next (j) →")
    click(app, "Accept suggestion (a)")  # no model result: nothing to accept
    assert "Not done: no suggestion for" in texts(app) and len(read_edits()) == 2

    app = keyboard_review(app, rev_usages=["PublicTest"], rev_emotions=[])
    click(app, "Drop (d)")
    assert "PublicTest/PrivateTest image(s)" in texts(app) and len(read_edits()) == 2  # refused, nothing written
    app.toggle(key="kb_rev_allow_test").set_value(True).run()
    click(app, "Drop (d)")
    assert read_edits()[-1].action == "drop" and len(read_edits()) == 3

    app = keyboard_review(app, rev_flags=["conflict"])  # PublicTest images in a conflicting group: none
    assert "The queue is empty: nothing to review here." in texts(app)
    for label in ("Drop (d)", "4 happy", "Keep label: reviewed OK (o)"):
        click(app, label)
        assert "The queue is empty: nothing to decide." in texts(app)
    click(app, "Undo (u)")  # the panel's last decision, made in the queue before: undone, and its image shown
    assert read_edits()[-1].action == "undo" and read_edits()[-1].undoes == read_edits()[-2].edit_id
    assert "Undone: Dropped" in texts(app) and "item 1 of 1" in header(app)


def test_outliers_of_a_kind_and_conflicting_groups_are_queues_too(app):
    app = keyboard_review(app, "pages/2_Outliers.py", "out", out_kind="blank")
    assert "Keyboard review: blank outliers** · item 1 of 1" in header(app)
    assert "Outlier: score" in texts(app) and "blank" in texts(app)
    click(app, "Keep label: reviewed OK (o)")
    assert [(edit.action, edit.reason) for edit in read_edits()] == [("review_ok", "reviewed: OK as is")]
    assert "End of the queue" in texts(app)

    app = keyboard_review(app, "pages/1_Duplicates.py", "dup", dup_conflicting=True)
    assert "Keyboard review: near-duplicate groups** · item 1 of 1" in header(app)
    assert "labels disagree" in texts(app) and len(app.get("image")) == 2  # the members side by side
    assert "#1 " in texts(app) and "#2 " in texts(app)
    click(app, "Accept suggestion (a)")  # two members, two labels: no majority
    assert "Not done: no suggestion for the group of 2 images" in texts(app)
    click(app, "2 disgust")
    changed = [edit for edit in read_edits() if edit.action == "relabel"]
    assert len({edit.batch_id for edit in changed}) == 1 and {edit.new_label for edit in changed} == {"disgust"}
    assert "End of the queue" in texts(app)


def test_keys_map_to_actions_and_presses_are_handed_over_once_in_order():
    assert keys.action_of("ArrowRight", 7) == ("next", None) == keys.action_of("j", 7)
    assert keys.action_of("k", 7) == ("previous", None) and keys.action_of("z", 7) == ("undo", None)
    assert keys.action_of("3", 7) == ("relabel", 2) and keys.action_of("8", 7) is None
    assert keys.action_of("9", 12) == ("relabel", 8) and keys.action_of("x", 7) is None
    assert keys.bound_keys(5)[-1] == "5" and "6" not in keys.bound_keys(5)

    value = {"presses": {"nonce": "n1", "events": [{"seq": 1, "key": "a", "item": "x"},
                                                   {"seq": 2, "key": "o", "item": "x"}]}}
    fresh, done = keys.new_presses(value, {})
    assert [press["key"] for press in fresh] == ["a", "o"] and done == {"nonce": "n1", "seq": 2}
    assert keys.new_presses(value, done) == ([], done)  # the same list again: nothing new
    value["presses"]["events"].append({"seq": 3, "key": "d", "item": "y"})
    assert [press["key"] for press in keys.new_presses(value, done)[0]] == ["d"]
    reloaded = {"presses": {"nonce": "n2", "events": [{"seq": 1, "key": "u", "item": "y"}]}}
    assert [press["key"] for press in keys.new_presses(reloaded, done)[0]] == ["u"]
    assert keys.new_presses(None, done) == ([], done) and keys.new_presses({"presses": 3}, done) == ([], done)


def test_a_queue_taken_afresh_goes_on_where_the_reviewer_was():
    assert resumed_position(["a", "b", "c"], "b", set()) == 1
    assert resumed_position(["a", "b", "c"], "gone", {"a"}) == 1  # first not decided in this review
    assert resumed_position(["a", "b"], None, {"a", "b"}) == 2  # the end
    assert same_queue(["a", "b", "c"], ["b", "c"], {"a"})  # "a" was decided and left: the same queue
    assert same_queue(["b", "c"], ["a", "b", "c"], {"a"})  # "a" was undone and came back
    assert not same_queue(["a", "b", "c"], ["c", "d"], {"a"})  # a filter changed
    members = [Member(f"id{i}", i, label, label, "Training", dropped, False) for i, (label, dropped) in
               enumerate([("sad", False), ("happy", False), ("happy", True)])]
    assert majority_label(members) is None  # sad 1, happy 1 live
    assert majority_label([*members, Member("id9", 9, "sad", "sad", "Training", False, False)]) == "sad"
