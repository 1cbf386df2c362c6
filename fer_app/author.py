"""Who is editing: a name asked once per browser session and written with every edit, tag and view.

Without it every row of the edit log said the server's OS user ("root" in a container). The name
starts as $FER_AUDIT_AUTHOR (else the OS user), can be changed in the sidebar on any page, and is
kept in the session (not in the widget, whose state a page change would drop), so it is asked once.
"""

from __future__ import annotations

import streamlit as st

from fer_core.curation.edit_log import MAX_REASON_CHARACTERS, default_author

AUTHOR = "author"  # session key: the name the app's edits carry
AUTHOR_INPUT = "author_input"  # its sidebar field


def current_author() -> str:
    """The name this browser session's edits carry."""
    return st.session_state.get(AUTHOR) or default_author()


def _keep_author() -> None:
    """Callback: keep the typed name on one line; an emptied field goes back to the default."""
    typed = " ".join(str(st.session_state.get(AUTHOR_INPUT, "")).split())
    st.session_state[AUTHOR] = typed or default_author()
    st.session_state[AUTHOR_INPUT] = st.session_state[AUTHOR]


def author_input() -> None:
    """The sidebar field 'Your name', on every page; the edit history shows it on each row."""
    state = st.session_state
    state.setdefault(AUTHOR, default_author())
    state[AUTHOR_INPUT] = state[AUTHOR]  # each page draws its own field (a new widget): show the kept name
    st.text_input("Your name (kept with your edits)", key=AUTHOR_INPUT, max_chars=MAX_REASON_CHARACTERS,
                  on_change=_keep_author,
                  help="Every edit, tag and saved view you make is logged under this name (the edit history's "
                       "author column). Set once per browser session; starts as $FER_AUDIT_AUTHOR or the "
                       "server's user name.")
