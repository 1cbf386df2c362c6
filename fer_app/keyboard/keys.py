"""Key presses from the browser: a small `st.components.v2` component (keys.js, no iframe) and the
mapping from keys to review actions.

Streamlit has no key handler. A maintained package (streamlit-shortcuts) clicks buttons from a
listener that also fires while the reviewer types into a text field, and puts an iframe on the page
per call; this component ignores keys typed into fields, names the item that was on screen with each
press, and hands presses over as an acknowledged list, so none is lost or handled twice.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

COMPONENT_NAME = "fer_audit.review_keys"
SCRIPT = Path(__file__).with_name("keys.js")
NAVIGATION = {"ArrowRight": "next", "j": "next", "ArrowLeft": "previous", "k": "previous"}
ACTIONS = {"a": "accept", "o": "keep", "d": "drop", "u": "undo", "z": "undo"}
MAX_NUMBER_KEYS = 9  # labels 1–9 have a number key; any further label has its button only
REVISION = "review_keys_revision"  # counts the listener's renders, so the browser keeps the newest


@functools.cache
def _component():
    return st.components.v2.component(COMPONENT_NAME, js=SCRIPT.read_text(encoding="utf-8"))


def item_tag(item: str) -> str:
    """A short tag for an item key, safe in a widget key and a CSS class: the panel puts the item on screen in
    a container keyed with it, and each key press sends the tag it found there."""
    return hashlib.sha256(item.encode()).hexdigest()[:12] if item else ""


def bound_keys(label_count: int) -> list[str]:
    """Every key the review listens to (number keys for the first labels, up to 9)."""
    numbers = [str(number) for number in range(1, min(label_count, MAX_NUMBER_KEYS) + 1)]
    return [*NAVIGATION, *ACTIONS, *numbers]


def action_of(key: str, label_count: int) -> tuple[str, int | None] | None:
    """(action, label index) for a key: ("next", None), ("relabel", 2) for "3", ...; None for other keys."""
    if key in NAVIGATION:
        return NAVIGATION[key], None
    if key in ACTIONS:
        return ACTIONS[key], None
    if key.isdigit() and 1 <= int(key) <= min(label_count, MAX_NUMBER_KEYS):
        return "relabel", int(key) - 1
    return None


def new_presses(value: Any, acknowledged: dict) -> tuple[list[dict], dict]:
    """The presses in the component's state not handled yet, in order, and the acknowledgement after them.

    A press belongs to one page load (`nonce`); a reload starts a new count, so every press of an
    unknown nonce is new.
    """
    presses = value.get("presses") if isinstance(value, dict) else None
    if not isinstance(presses, dict) or not isinstance(presses.get("events"), list):
        return [], acknowledged
    nonce = presses.get("nonce")
    done = int(acknowledged.get("seq", 0)) if acknowledged.get("nonce") == nonce else 0
    fresh = [press for press in presses["events"]
             if isinstance(press, dict) and isinstance(press.get("seq"), int) and press["seq"] > done]
    if not fresh:
        return [], acknowledged
    return fresh, {"nonce": nonce, "seq": max(press["seq"] for press in fresh)}


def listen(key: str, item_prefix: str, label_count: int, acknowledged: dict, on_press: Callable[[], None]) -> None:
    """Mount the listener: `on_press` runs (before the rerun) when keys were pressed; read them with
    `new_presses(st.session_state[key], acknowledged)`. Each press carries the tag of the item on screen then,
    read from the container keyed `<item_prefix><tag>` ("" when there is none)."""
    revision = st.session_state[REVISION] = st.session_state.get(REVISION, 0) + 1
    _component()(key=key, data={"itemPrefix": item_prefix, "keys": bound_keys(label_count), "revision": revision,
                                "acknowledged": acknowledged}, on_presses_change=on_press, height=0)
