"""What a browser does that AppTest does not: a click inside a fragment reruns only that fragment, and a
fragment with `run_every` reruns on the browser's timer. AppTest reruns the whole script on every click,
so bugs that live in a fragment's own rerun (polling that never starts) need these.

Each run here records the messages the browser would receive (AppTest's element tree drops the
fragment ids of elements and the auto-rerun timers).
"""

from __future__ import annotations

import functools

import pytest
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest, local_script_runner


def run(app: AppTest, fragment_id: str | None = None) -> list:
    """Run the app (only fragment `fragment_id`, when given) and return the forward messages it sent."""
    sent: list = []
    parse = local_script_runner.parse_tree_from_messages

    def keep_messages(messages):
        sent[:] = list(messages)
        return parse(messages)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_script_runner, "parse_tree_from_messages", keep_messages)
        if fragment_id is not None:  # the request a browser sends for a fragment's widget or timer
            patch.setattr(local_script_runner, "RerunData", functools.partial(RerunData, fragment_id_queue=[fragment_id]))
        app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    return sent


def fragment_of(messages: list, widget_id: str) -> str:
    """The fragment a widget was drawn in ('' when outside any), as its message tells the browser."""
    for message in messages:
        if message.WhichOneof("type") == "delta" and message.delta.WhichOneof("type") == "new_element":
            element = message.delta.new_element
            kind = element.WhichOneof("type")
            if getattr(getattr(element, kind), "id", None) == widget_id:
                return message.delta.fragment_id
    raise AssertionError(f"no widget {widget_id} in the messages")


def click(app: AppTest, button, messages: list) -> list:
    """Click `button` as a browser does: its callback runs, then its fragment reruns (or the whole page,
    outside any fragment). `messages` are those of the run that drew the button."""
    button.click()
    return run(app, fragment_of(messages, button.id) or None)


def timers(messages: list) -> dict[str, float]:
    """The fragments the browser reruns on a timer after these messages: fragment id → seconds."""
    return {message.auto_rerun.fragment_id: message.auto_rerun.interval for message in messages
            if message.WhichOneof("type") == "auto_rerun"}
