"""Saved views: a named set of the Review page's filters, kept in the workspace database so anyone
working on the workspace can reopen it ("blurry training faces", "Ana's conflicts").

A view stores filters, never images: opening it later shows what matches then. Names are one line of
at most 64 characters, unique regardless of case; saving over an existing name is refused unless
asked (`replace`). Each save or delete is one transaction. A value a view names that the data no
longer offers (a tag removed from every image, say) is left out when it is opened, and said so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone

from fer_core import store
from fer_core.curation.edit_log import resolve_author
from fer_core.curation.tags import check_name

MAX_VIEW_NAME_CHARACTERS = 64
LIST_FILTERS = ("emotions", "usages", "flags", "tags")

VIEWS_SCHEMA = store.Schema("saved_views", ("saved_views",), """
CREATE TABLE IF NOT EXISTS saved_views (
    name     TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    filters  TEXT NOT NULL,
    author   TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
""")


@dataclass(frozen=True)
class ReviewFilters:
    """The Review page's filters: emotions, usages, flags (any of), tags (any of), the suspected-mislabels
    queue, and whether dropped images are shown."""

    emotions: tuple[str, ...] = ()
    usages: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    suspected_mislabels: bool = False
    show_dropped: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "a saved view") -> ReviewFilters:
        """The filters of `text`; keys this version does not know are ignored (a newer version may add
        filters), a value of the wrong type is a one-line ValueError naming `where`."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: its filters are not JSON ({error})") from None
        if not isinstance(document, dict):
            raise ValueError(f"{where}: its filters are not a JSON object")
        values = {}
        for field in fields(cls):
            if field.name not in document:
                continue
            value = document[field.name]
            if field.name in LIST_FILTERS:
                if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                    raise ValueError(f"{where}: {field.name} must be a list of names, not {value!r}")
                values[field.name] = tuple(value)
            elif isinstance(value, bool):
                values[field.name] = value
            else:
                raise ValueError(f"{where}: {field.name} must be true or false, not {value!r}")
        return cls(**values)

    def describe(self) -> str:
        """The filters in words, for messages: 'emotions happy, sad · tags blurry · dropped shown'."""
        parts = [f"{name} {', '.join(getattr(self, name))}" for name in LIST_FILTERS if getattr(self, name)]
        parts += ["suspected mislabels"] * self.suspected_mislabels + ["dropped shown"] * self.show_dropped
        return " · ".join(parts) or "no filter (every image)"

    def restricted_to(self, offered: Mapping[str, Sequence[str]]) -> tuple[ReviewFilters, list[str]]:
        """These filters keeping only the values `offered` (filter name → the values offered now), and
        the values left out, as 'flag conflict' or 'tag blurry'."""
        kept, left_out = {}, []
        for name in LIST_FILTERS:
            allowed = set(offered.get(name, ()))
            kept[name] = tuple(value for value in getattr(self, name) if value in allowed)
            left_out += [f"{name[:-1]} {value}" for value in getattr(self, name) if value not in allowed]
        return ReviewFilters(**kept, suspected_mislabels=self.suspected_mislabels,
                             show_dropped=self.show_dropped), left_out


@dataclass(frozen=True)
class SavedView:
    name: str
    filters: ReviewFilters
    author: str
    saved_at: str


def check_view_name(name: str) -> str:
    """A view name as stored: trimmed, non-empty, at most 64 characters, one line."""
    return check_name(name, "view name", MAX_VIEW_NAME_CHARACTERS)


def save_view(name: str, filters: ReviewFilters, *, author: str | None = None, replace: bool = False,
              workspace: str | os.PathLike | None = None) -> SavedView:
    """Save `filters` as view `name` (one transaction); an existing view of that name (any case) is
    replaced only with `replace`, else one-line ValueError."""
    name, author = check_view_name(name), resolve_author(author)
    saved_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with store.writing(workspace, VIEWS_SCHEMA) as connection, store.transaction(connection):
        existing = connection.execute("SELECT name, author, saved_at FROM saved_views WHERE name = ?",
                                      (name,)).fetchone()
        if existing and not replace:
            raise ValueError(f"a view named {existing[0]!r} exists (saved by {existing[1]}, {existing[2]}); "
                             f"choose another name or replace it")
        connection.execute("DELETE FROM saved_views WHERE name = ?", (name,))
        connection.execute("INSERT INTO saved_views (name, filters, author, saved_at) VALUES (?, ?, ?, ?)",
                           (name, filters.to_json(), author, saved_at))
    return SavedView(name, filters, author, saved_at)


def list_views(workspace: str | os.PathLike | None = None) -> list[SavedView]:
    """Every saved view, by name (case-insensitive); [] when there is none or no database yet."""
    with store.reading(workspace) as connection:
        if "saved_views" not in store.table_names(connection):
            return []
        rows = connection.execute("SELECT name, filters, author, saved_at FROM saved_views ORDER BY name").fetchall()
    return [SavedView(name, ReviewFilters.from_json(text, f"saved view {name!r}"), author, saved_at)
            for name, text, author, saved_at in rows]


def read_view(name: str, workspace: str | os.PathLike | None = None) -> SavedView:
    """The view named `name` (ASCII letters in any case, as the table's NOCASE compares); ValueError
    naming the views there are when there is none."""
    with store.reading(workspace) as connection:
        row = connection.execute("SELECT name, filters, author, saved_at FROM saved_views WHERE name = ?",
                                 (name.strip(),)).fetchone() if "saved_views" in store.table_names(connection) else None
    if row is None:
        there = ", ".join(repr(view.name) for view in list_views(workspace)[:10]) or "none yet"
        raise ValueError(f"no saved view named {name!r} (saved views: {there})")
    return SavedView(row[0], ReviewFilters.from_json(row[1], f"saved view {row[0]!r}"), row[2], row[3])


def delete_view(name: str, workspace: str | os.PathLike | None = None) -> SavedView:
    """Delete the view named `name` (one transaction); returns it, so a caller can say what went."""
    view = read_view(name, workspace)
    with store.writing(workspace, VIEWS_SCHEMA) as connection, store.transaction(connection):
        connection.execute("DELETE FROM saved_views WHERE name = ?", (view.name,))
    return view
