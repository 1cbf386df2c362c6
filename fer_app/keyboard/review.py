"""Keyboard review: one image (or one duplicate group) at a time, large, with why it is in its queue; a
key or a button decides, each decision is one edit batch written at once, and the queue moves on.

The queue's item keys are taken when the review starts and again whenever the page's queue changes
otherwise than by this review's decisions (a filter moved): the review then goes on at the item on
screen, or at the first item not decided in this review. The panel is a fragment: a decision reruns
only the panel (the edit log's state is read afresh, the audit and the curated table are not
recomputed), which keeps a decision's round trip short on FER-2013.
"""

from __future__ import annotations

import logging
import sys

import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.views import image_tiles
from fer_core.views.review_queue import (Evidence, ReviewQueue, label_names, resumed_position, same_queue,
                                         status_of)

from ..author import current_author
from ..session import one_line, workspace
from . import decisions, keys

LARGE = 6  # 48 px → 288 px for one image
GROUP_SIZES = ((4, 4), (8, 3), (sys.maxsize, 2))  # (members up to, enlargement): 192, 144 or 96 px each
RECENT_SHOWN = 5
log = logging.getLogger("fer_app")


def _review(place: str) -> dict:
    """This place's review in the session: item keys, position, its decisions (for undo), the items it decided
    or undid (which may leave or re-enter the page's queue without making it another queue), the last message."""
    return st.session_state.setdefault(f"keyboard_{place}", {"name": None, "keys": [], "position": 0, "decisions": [],
                                                             "touched": [], "message": None, "acknowledged": {}})


def _current(review: dict) -> str:
    """The item key on screen; "" at the end of the queue or in an empty one."""
    return review["keys"][review["position"]] if review["position"] < len(review["keys"]) else ""


def review(report: AuditReport, queue: ReviewQueue, place: str) -> None:
    """The keyboard review of `queue` (`place`: a short name for its session keys, e.g. "rev")."""
    state = _review(place)
    decided = {decision["key"] for decision in state["decisions"]}
    if state["name"] != queue.name or not same_queue(state["keys"], queue.keys, set(state["touched"])):
        state.update(name=queue.name, keys=list(queue.keys),
                     position=resumed_position(queue.keys, _current(state) or None, decided))
    _panel(report, queue, place)


def _say(state: dict, kind: str, text: str) -> None:
    state["message"] = (kind, text)


def _act(report: AuditReport, queue: ReviewQueue, place: str, action: str, label: int | None, shown: str) -> None:
    """One key or button: move, undo, or decide on the item that was on screen (`shown`: its tag)."""
    state = _review(place)
    total, position = len(state["keys"]), state["position"]
    if action in ("next", "previous"):
        state["position"] = min(position + 1, total) if action == "next" else max(position - 1, 0)
        state["message"] = None
        return
    if action == "undo":
        _undo(state)
        return
    if not total:
        return _say(state, "error", "The queue is empty: nothing to decide.")
    if position >= total:
        return _say(state, "error", "End of the queue: nothing left to decide here (← goes back).")
    item = _current(state)
    if shown != keys.item_tag(item):
        return _say(state, "error", "Not done: that key was for the item before (the page had not caught up yet). "
                                    "Look at this one, then press again.")
    names = label_names(report.dataset)
    try:
        evidence = queue.describe(item, edits.read_state(workspace()))
        written, text = decisions.decide(
            report.dataset, evidence, action, emotion=None if label is None else names[label],
            reason=st.session_state.get(f"kb_{place}_reason", "").strip(), queue_name=queue.name,
            allow_test=bool(st.session_state.get(f"kb_{place}_allow_test")), author=current_author(),
            workspace=workspace())
    except Exception as error:
        if not isinstance(error, ValueError):
            log.exception("keyboard review: %s failed", action)
        return _say(state, "error", f"Not done: {one_line(error)}")
    if not written:
        return _say(state, "info", f"{text}: nothing to change (already so).")
    state["decisions"].append({"key": item, "batch": written[0].batch_id, "text": text})
    state["touched"].append(item)
    state["position"] = position + 1
    count = len(written)
    _say(state, "ok", f"{text} ({count} edit{'s' if count != 1 else ''} logged; u undoes it)")


def _undo(state: dict) -> None:
    """Undo this review's newest decision (exactly its batch) and go back to its item."""
    if not state["decisions"]:
        return _say(state, "error", "Nothing to undo in this review.")
    last = state["decisions"][-1]
    try:
        edits.undo_batch(last["batch"], "undone in the app", author=current_author(), workspace=workspace())
    except ValueError as error:  # undone meanwhile (e.g. from the history): nothing left to undo in it
        state["decisions"].pop()
        return _say(state, "error", f"Not undone: {one_line(error)}")
    except Exception as error:  # the log could not be written: the decision stays, to undo later
        log.exception("keyboard review: undo failed")
        return _say(state, "error", f"Not undone: {one_line(error)}")
    state["decisions"].pop()
    state["touched"].append(last["key"])
    if last["key"] not in state["keys"]:  # it left the queue when the queue was taken afresh
        state["keys"].insert(min(state["position"], len(state["keys"])), last["key"])
    state["position"] = state["keys"].index(last["key"])
    _say(state, "ok", f"Undone: {last['text']}")


def _on_keys(report: AuditReport, queue: ReviewQueue, place: str) -> None:
    state = _review(place)
    presses, state["acknowledged"] = keys.new_presses(st.session_state.get(f"kb_{place}_keys"), state["acknowledged"])
    count = len(label_names(report.dataset))
    for press in presses:
        action = keys.action_of(str(press.get("key", "")), count)
        if action is not None:
            _act(report, queue, place, action[0], action[1], str(press.get("item", "")))


@st.fragment
def _panel(report: AuditReport, queue: ReviewQueue, place: str) -> None:
    state = _review(place)
    total, position, item = len(state["keys"]), state["position"], _current(state)
    decided = len(state["decisions"])
    keys.listen(f"kb_{place}_keys", f"kb_{place}_item_", len(label_names(report.dataset)), state["acknowledged"],
                on_press=lambda: _on_keys(report, queue, place))
    where = f"item {position + 1:,} of {total:,}" if item else f"{total:,} item(s)"
    st.markdown(f"**Keyboard review: {queue.name}** · {where} · {decided:,} decided in this review")
    if state["message"]:  # right under the header, where the eyes are, however tall the item below
        kind, text = state["message"]
        {"ok": st.success, "info": st.info, "error": st.error}[kind](image_tiles.escape_markdown(text))
    evidence = None
    if not total:
        st.info("The queue is empty: nothing to review here. Change the filters, or go back to the gallery.")
    elif not item:
        st.success(f"End of the queue: all {total:,} item(s) seen, {decided:,} decided in this review. "
                   "← goes back to the last one.")
    else:
        try:
            evidence = queue.describe(item, edits.read_state(workspace()))
        except Exception as error:  # e.g. a newer mislabel result no longer flags it; the keys still move on
            if not isinstance(error, ValueError):
                log.exception("keyboard review: cannot show %s", item)
            st.error(image_tiles.escape_markdown(f"Cannot show {item}: {one_line(error)}"))
            return _controls(report, queue, place, state, item, suggested=False)
        with st.container(key=f"kb_{place}_item_{keys.item_tag(item)}"):  # a key names the item it is on
            _show(report, evidence, state)
    _controls(report, queue, place, state, item, suggested=evidence is not None and evidence.suggestion is not None)


def _controls(report: AuditReport, queue: ReviewQueue, place: str, state: dict, item: str, suggested: bool) -> None:
    _buttons(report, queue, place, item, suggested)
    _options(queue, place)
    _recent(state)


def _show(report: AuditReport, evidence: Evidence, state: dict) -> None:
    """The item large with its evidence: one image beside its facts, or a group's members side by side."""
    st.markdown(image_tiles.escape_markdown(evidence.reason))
    if evidence.is_group:
        factor = next(factor for most, factor in GROUP_SIZES if len(evidence.members) <= most)
        with st.container(horizontal=True, gap="small"):
            for number, member in enumerate(evidence.members, start=1):
                with st.container(width=48 * factor + 8, gap=None):
                    st.image(_pixels(report, member.row, member.dropped, factor), width=48 * factor)
                    facts = [f"#{number}", status_of(member), member.usage, image_tiles.short_id(member.sample_id)]
                    note = f"  \n{member.note}" if member.note else ""
                    st.caption(image_tiles.escape_markdown(" · ".join(facts) + note))
    else:
        member = evidence.members[0]
        left, right = st.columns([1, 2], vertical_alignment="top")
        left.image(_pixels(report, member.row, member.dropped, LARGE), width=48 * LARGE)
        right.markdown(image_tiles.escape_markdown(f"Now: {status_of(member)} · {member.usage} · {member.sample_id}"))
    suggestion = (f"`a` accepts: **{image_tiles.escape_markdown(evidence.suggestion)}**" if evidence.suggestion
                  else "No suggestion to accept: a number key relabels.")
    earlier = [decision["text"] for decision in state["decisions"] if decision["key"] == evidence.key]
    earlier_text = f" · decided in this review: {image_tiles.escape_markdown(earlier[-1])}" if earlier else ""
    st.markdown(suggestion + earlier_text)


def _pixels(report: AuditReport, row: int, dropped: bool, factor: int):
    pixels = report.dataset.pixels[row]
    return image_tiles.upscale(image_tiles.faded(pixels) if dropped else pixels, factor)


def _buttons(report: AuditReport, queue: ReviewQueue, place: str, item: str, suggested: bool) -> None:
    """The same actions for the mouse, each bound to the item on screen; the key legend on the labels."""
    def button(label: str, action: str, label_index: int | None = None, **options) -> None:
        st.button(label, key=f"kb_{place}_{action}" + ("" if label_index is None else f"_{label_index}"),
                  on_click=_act, args=(report, queue, place, action, label_index, keys.item_tag(item)), **options)

    with st.container(horizontal=True, key=f"kb_{place}_actions"):
        button("← Previous (k)", "previous")
        button("Next (j) →", "next")
        button("Accept suggestion (a)", "accept", type="primary" if suggested else "secondary")
        button("Keep label: reviewed OK (o)", "keep")
        button("Drop (d)", "drop")
        button("Undo (u)", "undo", icon=":material/undo:")
    names = label_names(report.dataset)
    with st.container(horizontal=True, key=f"kb_{place}_labels"):
        for index, name in enumerate(names):
            number = f"{index + 1} " if index < keys.MAX_NUMBER_KEYS else ""
            button(f"{number}{name}", "relabel", index)
    beyond = " (labels past 9: their buttons)" if len(names) > keys.MAX_NUMBER_KEYS else ""
    st.caption(f"Keys: `→` or `j` next · `←` or `k` previous · `a` accept the suggestion · `o` keep the label "
               f"(reviewed OK) · `1`–`{min(len(names), keys.MAX_NUMBER_KEYS)}` relabel{beyond} · `d` drop · "
               "`u` or `z` undo the last decision. Each decision is one edit batch, written at once; keys typed "
               "into a text field are not taken.")


def _options(queue: ReviewQueue, place: str) -> None:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input("Reason for relabels and drops (optional)", key=f"kb_{place}_reason",
                      placeholder=decisions.default_reason(queue.name), width=420)
        st.toggle(decisions.ALLOW_TEST_LABEL, key=f"kb_{place}_allow_test",
                  help="Dropping or relabeling test images changes what every later run is scored on.")


def _recent(state: dict) -> None:
    recent = state["decisions"][-RECENT_SHOWN:][::-1]
    if recent:
        st.caption("This review, newest first: " + " · ".join(image_tiles.escape_markdown(decision["text"])
                                                             for decision in recent))

