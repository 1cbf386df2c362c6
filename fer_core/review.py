"""Pure helpers behind the app's pages: the curated view of the audit tables, filters, pages, figures.

Pages stay thin: they pick widgets and call these functions, which take the audit report and the
edit log's state and return small tables or Plotly figures. Nothing here imports streamlit, so
every filter and count is testable without a browser, and everything is vectorized so a rerun on
the full FER-2013 (35,887 rows, 1,500+ groups) costs milliseconds.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .audit import AuditReport
from .edits import CurationState
from .hashing import hamming_distance
from .labels import EMOTIONS, TEST_USAGES, TRAINING, USAGES

FLAGS: tuple[str, ...] = ("duplicate", "conflict", "leak", "outlier", "edited")
GROUP_KINDS: tuple[str, ...] = ("near", "exact")
UPSCALE_FACTOR = 3  # 48 px → 144 px, nearest neighbour, so the pixels stay crisp
USAGE_COLORS = {"Training": "#4C78A8", "PublicTest": "#F58518", "PrivateTest": "#54A24B"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape_markdown(text: object) -> str:
    """Text shown verbatim where Streamlit renders Markdown (captions, messages): no links, no emphasis."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def source_signature(path: str | os.PathLike) -> str:
    """A cheap key for "has this data source changed": sizes and mtimes of the file or its folders.

    Adding, removing or renaming an image changes its folder's mtime, so the two folder levels of
    a FER tree (split/emotion) suffice; the loader's own cache checks every file.
    """
    source = Path(path).expanduser()
    if not source.exists():
        return "missing"
    stat = source.stat()
    parts = [str(source.resolve()), f"{stat.st_size}:{stat.st_mtime_ns}"]
    if source.is_dir():
        for split in sorted(p for p in source.iterdir() if p.is_dir()):
            parts.append(f"{split.name}:{split.stat().st_mtime_ns}")
            parts.extend(f"{split.name}/{sub.name}:{sub.stat().st_mtime_ns}"
                         for sub in sorted(q for q in split.iterdir() if q.is_dir()))
    return "|".join(parts)


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


# ---------------------------------------------------------------------------------------------
# The curated view of the audit


def annotate(report: AuditReport, state: CurationState) -> pd.DataFrame:
    """The audit's sample table plus the edit log: current_label, dropped, reviewed, edited."""
    samples = report.samples
    table = samples[["id", "label", "usage", "mean", "exact_group", "near_group", "conflicting", "cross_split",
                     "leak", "outlier_score", "outlier", "box_outlier_emotion"]].copy()
    table["current_label"] = table["label"]
    if state.labels:
        relabeled = table["id"].map(state.labels)
        has_new = relabeled.notna().to_numpy()
        names = np.array(EMOTIONS)[relabeled[has_new].astype(int).to_numpy()]
        table.loc[has_new, "current_label"] = names
    table["dropped"] = table["id"].isin(state.dropped) if state.dropped else False
    table["reviewed"] = table["id"].isin(state.reviewed) if state.reviewed else False
    table["edited"] = table["dropped"] | table["reviewed"] | (table["current_label"] != table["label"])
    return table


def group_status(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Per duplicate group (index: group id), in the curated view: live members, distinct live labels,
    whether live members sit in Training and in a test split, and whether all live members are reviewed."""
    groups = table[_group_column(kind)].to_numpy(dtype=np.float64, na_value=-1).astype(np.int64)
    count = int(groups.max()) + 1 if len(groups) else 0
    live = (groups >= 0) & ~table["dropped"].to_numpy(dtype=bool)
    usages = table["usage"].to_numpy()

    def per_group(mask: np.ndarray) -> np.ndarray:
        return np.bincount(groups[live & mask], minlength=count)

    live_count = per_group(np.ones(len(table), dtype=bool))
    label_pairs = np.unique(groups[live] * len(EMOTIONS) + label_codes(table["current_label"])[live])
    return pd.DataFrame({
        "live": live_count,
        "live_labels": np.bincount(label_pairs // len(EMOTIONS), minlength=count),
        "live_training": per_group(usages == TRAINING) > 0,
        "live_test": per_group(np.isin(usages, TEST_USAGES)) > 0,
        "reviewed": (per_group(table["reviewed"].to_numpy(dtype=bool)) == live_count) & (live_count > 0),
    }, index=pd.RangeIndex(count, name="group"))


def label_codes(labels: pd.Series) -> np.ndarray:
    """Emotion names → 0..6."""
    return pd.Categorical(labels, categories=EMOTIONS).codes.astype(np.int64)


def unresolved(status: pd.DataFrame) -> pd.Series:
    """Groups that still need a decision: two or more live members, not marked reviewed."""
    return (status["live"] >= 2) & ~status["reviewed"]


def curated_summary(report: AuditReport, table: pd.DataFrame, edit_count: int) -> dict:
    """The Overview's numbers: what the audit found, and what is left after the edits."""
    live = ~table["dropped"].to_numpy()
    near, exact = group_status(table, "near"), group_status(table, "exact")
    open_near, open_exact = unresolved(near), unresolved(exact)
    leaks = report.leaks
    live_pairs = live[leaks.train_rows] & live[leaks.test_rows]
    return {
        "images": len(table),
        "images_after": int(live.sum()),
        "exact_groups": len(report.exact_groups),
        "exact_groups_after": int(open_exact.sum()),
        "near_groups": len(report.near_groups),
        "near_groups_after": int(open_near.sum()),
        "conflicting_groups": int(report.near_groups["conflicting"].sum()) if len(report.near_groups) else 0,
        "conflicting_groups_after": int((open_near & (near["live_labels"] > 1)).sum()),
        "leaked_test_images": int(len(leaks.leaked_test_rows())),
        "leaked_test_images_after": int(len(np.unique(leaks.test_rows[live_pairs]))),
        "outliers": int(table["outlier"].sum()),
        "outliers_after": int((table["outlier"] & live & ~table["reviewed"]).sum()),
        "edits": edit_count,
        "relabeled": int((table["current_label"] != table["label"]).sum()),
        "dropped": int(table["dropped"].sum()),
    }


# ---------------------------------------------------------------------------------------------
# Filters and pages


def filter_groups(report: AuditReport, table: pd.DataFrame, kind: str, *, conflicting_only: bool = False,
                  cross_split_only: bool = False, emotions: tuple[str, ...] = (), usages: tuple[str, ...] = (),
                  open_only: bool = True) -> pd.DataFrame:
    """The duplicate groups to show, in group order, judged on the curated view (live members, current labels)."""
    groups = report.near_groups if kind == "near" else report.exact_groups
    if not len(groups):
        return groups
    status = group_status(table, kind).reindex(groups["group"].to_numpy())
    keep = np.ones(len(groups), dtype=bool)
    if open_only:
        keep &= unresolved(status).to_numpy()
    if conflicting_only:
        keep &= (status["live_labels"] > 1).to_numpy()
    if cross_split_only:
        keep &= (status["live_training"] & status["live_test"]).to_numpy()
    if emotions or usages:
        column = _group_column(kind)
        members = table[table[column].notna() & ~table["dropped"]]
        matching = members[(members["current_label"].isin(emotions) if emotions else True)
                           & (members["usage"].isin(usages) if usages else True)]
        keep &= groups["group"].isin(matching[column].astype(np.int64).unique()).to_numpy()
    return groups[keep]


def group_members(report: AuditReport, table: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    """One row per member of a group: id, row, current label, usage, dropped, bits from the first member."""
    rows = np.asarray(group["rows"], dtype=np.int64)
    distance = hamming_distance(report.hashes[rows], report.hashes[rows[0]])
    members = table.iloc[rows][["id", "current_label", "usage", "dropped", "reviewed"]].copy()
    members.insert(1, "row", rows)
    members["distance"] = np.asarray(distance, dtype=np.int64)
    return members.reset_index(drop=True)


def filter_samples(table: pd.DataFrame, *, emotions: tuple[str, ...] = (), usages: tuple[str, ...] = (),
                   flags: tuple[str, ...] = (), show_dropped: bool = False) -> np.ndarray:
    """Rows matching every chosen emotion/usage and any chosen flag (all rows when nothing is chosen)."""
    keep = np.ones(len(table), dtype=bool)
    if not show_dropped:
        keep &= ~table["dropped"].to_numpy()
    if emotions:
        keep &= table["current_label"].isin(emotions).to_numpy()
    if usages:
        keep &= table["usage"].isin(usages).to_numpy()
    if flags:
        unknown = set(flags) - set(FLAGS)
        if unknown:
            raise ValueError(f"unknown flag(s) {sorted(unknown)}; expected {', '.join(FLAGS)}")
        flagged = {
            "duplicate": table["exact_group"].notna() | table["near_group"].notna(),
            "conflict": table["conflicting"],
            "leak": table["leak"],
            "outlier": table["outlier"],
            "edited": table["edited"],
        }
        keep &= np.logical_or.reduce([flagged[flag].to_numpy(dtype=bool) for flag in flags])
    return np.flatnonzero(keep)


def rank_outliers(table: pd.DataFrame, *, flagged_only: bool = True, show_dropped: bool = False,
                  show_reviewed: bool = False) -> np.ndarray:
    """Rows by outlier score, highest (least face-like) first."""
    keep = table["outlier"].to_numpy(dtype=bool, copy=True) if flagged_only else np.ones(len(table), dtype=bool)
    if not show_dropped:
        keep &= ~table["dropped"].to_numpy()
    if not show_reviewed:
        keep &= ~table["reviewed"].to_numpy()
    rows = np.flatnonzero(keep)
    order = np.argsort(-table["outlier_score"].to_numpy()[rows], kind="stable")
    return rows[order]


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


def _group_column(kind: str) -> str:
    if kind not in GROUP_KINDS:
        raise ValueError(f"unknown group kind {kind!r}; expected one of {', '.join(GROUP_KINDS)}")
    return f"{kind}_group"


# ---------------------------------------------------------------------------------------------
# Figures


def counts_figure(table: pd.DataFrame, curated: bool = True):
    """Images per emotion and usage, as grouped bars (the curated view drops dropped rows)."""
    import plotly.graph_objects as go

    view = table[~table["dropped"]] if curated else table
    label_column = "current_label" if curated else "label"
    usage_codes = pd.Categorical(view["usage"], categories=USAGES).codes.astype(np.int64)
    cells = np.bincount(usage_codes * len(EMOTIONS) + label_codes(view[label_column]),
                        minlength=len(USAGES) * len(EMOTIONS)).reshape(len(USAGES), len(EMOTIONS))
    figure = go.Figure([go.Bar(name=usage, x=list(EMOTIONS), y=cells[i].tolist(),
                               marker_color=USAGE_COLORS[usage]) for i, usage in enumerate(USAGES)])
    figure.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=30, b=10),
                         yaxis_title="images", legend_title_text="usage",
                         title_text="Images per emotion and usage" + (" (curated)" if curated else " (as loaded)"))
    return figure


def box_plot_figure(table: pd.DataFrame, show_all_points: bool = False):
    """The original study's figure: mean pixel value per emotion as horizontal boxes.

    Boxes carry no points; a scatter trace beside them holds the selectable points (those beyond
    their emotion's whiskers, or every live image), each with its dataset row as customdata.
    """
    import plotly.graph_objects as go

    from .outliers import whiskers

    live = table[~table["dropped"]]
    figure = go.Figure()
    for position, emotion in enumerate(EMOTIONS):
        values = live.loc[live["current_label"] == emotion, "mean"].to_numpy()
        if not len(values):
            continue
        low, high = whiskers(values)
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        # Box statistics computed here, so the browser gets seven numbers per emotion, not 35,887 values.
        figure.add_trace(go.Box(y=[position], q1=[q1], median=[median], q3=[q3], lowerfence=[values[values >= low].min()],
                                upperfence=[values[values <= high].max()], orientation="h", name=emotion, width=0.5,
                                marker_color="#4C78A8", showlegend=False, hoverinfo="x"))
    points = live if show_all_points else live[live["box_outlier_emotion"]]
    positions = points["current_label"].map({emotion: i for i, emotion in enumerate(EMOTIONS)}).to_numpy()
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(points))
    flagged = points["outlier"].to_numpy()
    figure.add_trace(go.Scattergl(
        x=points["mean"].to_numpy(), y=positions + 0.42 + jitter, mode="markers", name="images",
        customdata=points.index.tolist(),  # a plain list: plotly.js would hand back typed arrays as dicts
        marker=dict(size=5, color=np.where(flagged, "#E45756", "#444444"), opacity=0.7),
        text=points["id"].to_numpy(), hovertemplate="%{text}<br>mean %{x:.1f}<extra></extra>", showlegend=False))
    figure.update_layout(height=520, margin=dict(l=10, r=10, t=30, b=10), dragmode="select",
                         xaxis_title="average pixel value", title_text="Average pixel value per emotion",
                         yaxis=dict(tickvals=list(range(len(EMOTIONS))), ticktext=list(EMOTIONS),
                                    range=[-0.6, len(EMOTIONS) - 0.2]))
    return figure


def undoable_batches(history: pd.DataFrame, limit: int = 50) -> dict[str, str]:
    """Batches with active edits, newest first, as batch id → a one-line description for a picker."""
    active = history[history["active"] & (history["action"] != "undo")]
    if active.empty:
        return {}
    batches = active.groupby("batch_id", sort=False).agg(
        last=("edit_id", "max"), action=("action", "first"), count=("edit_id", "size"), reason=("reason", "first"),
        created_at=("created_at", "first"))
    batches = batches.sort_values("last", ascending=False).head(limit)
    return {batch: f"#{row['last']} {row['action']} × {row['count']} · {row['created_at'][:19]} · {row['reason'] or 'no reason'}"
            for batch, row in batches.iterrows()}
