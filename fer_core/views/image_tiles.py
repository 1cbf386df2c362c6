"""Showing images and acting on them: escaped text and short ids for tiles, enlarged pixels, pages of a
gallery, picks from a plot's selection, and the undo picker's batches.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from PIL import Image

from fer_core.labels import USAGES

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")

UPSCALE_FACTOR = 3  # 48 px → 144 px, nearest neighbour, so the pixels stay crisp
DROPPED_FADE = 0.65  # share of light grey blended into a dropped image: still recognisable, visibly out
DROPPED_GREY = 235


def escape_markdown(text: object) -> str:
    """Text shown verbatim where Streamlit renders Markdown (captions, messages): no links, no emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def short_id(sample_id: str) -> str:
    """A sample id short enough for a 144 px caption: `train/angry/Training_10118481.jpg` → `10118481`."""
    name = str(sample_id).rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for usage in USAGES:
        stem = stem.removeprefix(f"{usage}_")
    return stem or name


def upscale(image: np.ndarray, factor: int = UPSCALE_FACTOR) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (each pixel becomes a factor×factor block)."""
    return np.repeat(np.repeat(np.asarray(image), factor, axis=0), factor, axis=1)


def faded(image: np.ndarray, share: float = DROPPED_FADE) -> np.ndarray:
    """A dropped image greyed out (blended with light grey), so a group shows at a glance which copies
    are gone, not only by a word under them."""
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    return np.asarray(Image.blend(picture, Image.new(picture.mode, picture.size, DROPPED_GREY), share))


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


def page_slice(total: int, page: int, page_size: int) -> slice:
    """Items of the 1-based `page` (clamped to the pages that exist)."""
    if page_size < 1:
        raise ValueError(f"page size {page_size} must be at least 1")
    page = min(max(1, page), page_count(total, page_size))
    return slice((page - 1) * page_size, min(page * page_size, total))


def selected_rows(points: list[dict]) -> list[int]:
    """Dataset rows of the points picked in a chart whose points carry the row as customdata."""
    rows = []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, (int, float, str)):
            rows.append(int(data))
    return list(dict.fromkeys(rows))


def undoable_batches(history: pd.DataFrame, limit: int = 50) -> dict[str, str]:
    """Batches with active edits, newest first, as batch id → a one-line description for a picker; a batch
    that mixes actions names each with its count (`drop × 4, relabel × 1`), so none hides behind the first."""
    active = history[history["active"] & (history["action"] != "undo")]
    if active.empty:
        return {}
    batches = active.groupby("batch_id", sort=False).agg(
        last=("edit_id", "max"), reason=("reason", "first"), created_at=("created_at", "first"))
    counts = active.groupby(["batch_id", "action"], sort=False).size()
    actions = {batch: ", ".join(f"{action} × {count}" for (_, action), count in counts.loc[[batch]].items())
               for batch in batches.index}
    batches = batches.sort_values("last", ascending=False).head(limit)
    return {batch: f"#{row['last']} {actions[batch]} · {row['created_at'][:19]} · {row['reason'] or 'no reason'}"
            for batch, row in batches.iterrows()}
