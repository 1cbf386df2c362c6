"""A set of images picked elsewhere (a lasso on the map, "open in Review" from a detail panel) that the
Review page narrows its rows to, until cleared.

It lives in the session (ids, never arrays) and outlives page changes: it is not page-scoped state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from fer_core.views.embedding_map import rows_of_ids

SELECTION = "review_selection"  # Selection, or absent
GENERATION = "review_selection_generation"  # counts changes, so a chart that made a selection can be made anew


@dataclass(frozen=True)
class Selection:
    """The ids picked, in the order given without repeats, and where they were picked (e.g. "the map")."""

    ids: tuple[str, ...]
    source: str


def set_selection(ids, source: str) -> Selection:
    """Replace the selection with `ids` picked on `source`; an empty `ids` clears it."""
    unique = tuple(dict.fromkeys(str(sample_id) for sample_id in ids))
    if not unique:
        clear_selection()
        return Selection((), source)
    st.session_state[SELECTION] = Selection(unique, source)
    _count_change()
    return st.session_state[SELECTION]


def current_selection() -> Selection | None:
    """The selection, or None when nothing is selected."""
    return st.session_state.get(SELECTION)


def clear_selection() -> None:
    st.session_state.pop(SELECTION, None)
    _count_change()


def generation() -> int:
    """How many times the selection changed in this session: a chart keyed by it starts without the lasso
    that the browser still remembers for its previous key (which would otherwise select again)."""
    return st.session_state.get(GENERATION, 0)


def _count_change() -> None:
    st.session_state[GENERATION] = generation() + 1


def narrow_rows(table: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """`rows` (a page's filtered rows) narrowed to the selection, under a bar that says so and can clear it;
    `rows` as they are when nothing is selected."""
    picked = current_selection()
    if picked is None:
        return rows
    narrowed = rows_of_ids(table, picked.ids, rows)
    selection_bar(len(narrowed))
    return narrowed


def selection_bar(shown: int) -> None:
    """On the Review page: how many images the selection holds, how many of them the filters show, and Clear."""
    selection = current_selection()
    if selection is None:
        return
    count = len(selection.ids)
    hidden = f" ({count - shown:,} hidden by the filters or dropped)" if shown < count else ""
    with st.container(horizontal=True, vertical_alignment="center", key="selection_bar"):
        st.info(f"{count:,} image{'s' if count != 1 else ''} selected on {selection.source}{hidden}: "
                "only these are shown.", icon=":material/filter_alt:")
        st.button("Clear", key="selection_clear", icon=":material/close:", on_click=clear_selection,
                  help="Show every image matching the filters again.")
