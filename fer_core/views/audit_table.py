"""Pure tables and Plotly figures for the app's pages and the report: the curated view of the audit,
filters, pages, figures.

Pages stay thin: they pick widgets and call these functions, which take the audit report and the
edit log's state and return small tables or Plotly figures. Nothing here imports streamlit, so
every filter and count is testable without a browser, and everything is vectorized so a rerun on
the full FER-2013 (35,887 rows, 1,500+ groups) costs milliseconds.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from fer_core.audit import AuditReport
from fer_core.curation.replay import CurationState
from fer_core.dataset.loading import Dataset
from fer_core.detectors import flag_mask, registered_flags
from fer_core.duplicates.hashing import hamming_distance
from fer_core.labels import EMOTIONS, TEST_USAGES, TRAINING, USAGES
from fer_core.outliers.kinds import OUTLIER_KINDS, kind_evidence
from fer_core.outliers.statistics import OutlierConfig, tail_scaled

CURATION_FLAGS: tuple[str, ...] = ("edited",)  # flags of the edit log; the detectors declare theirs
GROUP_KINDS: tuple[str, ...] = ("near", "exact")
UPSCALE_FACTOR = 3  # 48 px → 144 px, nearest neighbour, so the pixels stay crisp
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


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


# ---------------------------------------------------------------------------------------------
# The curated view of the audit


def annotate(report: AuditReport, state: CurationState) -> pd.DataFrame:
    """The audit's sample table plus the edit log: current_label, dropped, reviewed, edited, and one
    `flag:<name>` column per flag as it stands after the edits (see `curated_flags`)."""
    table = report.samples.copy()
    table["current_label"] = table["label"]
    if state.labels:
        relabeled = table["id"].map(state.labels)
        has_new = relabeled.notna().to_numpy()
        names = np.array(EMOTIONS)[relabeled[has_new].astype(int).to_numpy()]
        table.loc[has_new, "current_label"] = names
    table["dropped"] = table["id"].isin(state.dropped) if state.dropped else False
    table["reviewed"] = table["id"].isin(state.reviewed) if state.reviewed else False
    table["edited"] = table["dropped"] | table["reviewed"] | (table["current_label"] != table["label"])
    for name, mask in curated_flags(report, table).items():
        table[f"flag:{name}"] = mask
    return table


def flag_names() -> tuple[str, ...]:
    """Every flag the Review page filters by: the detectors' (declared with them), then the log's."""
    return tuple(flag.name for flag in registered_flags()) + CURATION_FLAGS


def curated_flags(report: AuditReport, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each flag after the edits: a duplicate or conflict flag only while its group is still open
    (two or more live members, not marked reviewed; a conflict also needs two live labels), a leak
    only while both images of a leak pair are live, any other detector flag only on live images not
    marked reviewed. Dropped images carry no detector flag."""
    live = ~table["dropped"].to_numpy(dtype=bool)
    settled = ~live | table["reviewed"].to_numpy(dtype=bool)
    masks = {flag.name: flag_mask(table, flag) & ~settled for flag in registered_flags()}
    open_in = {}
    for kind in GROUP_KINDS:
        status = group_status(table, kind)
        groups = table[_group_column(kind)].to_numpy(dtype=np.float64, na_value=-1).astype(np.int64)
        grouped = groups >= 0
        is_open = np.zeros(len(table), dtype=bool)
        is_open[grouped] = unresolved(status).to_numpy()[groups[grouped]]
        conflicting = np.zeros(len(table), dtype=bool)
        conflicting[grouped] = (status["live_labels"] > 1).to_numpy()[groups[grouped]]
        open_in[kind] = (is_open & live, conflicting & is_open & live)
    if "duplicate" in masks:
        masks["duplicate"] = open_in["exact"][0] | open_in["near"][0]
    if "conflict" in masks:
        masks["conflict"] = open_in["near"][1]
    if "leak" in masks:
        leaks = report.leaks
        pair_live = live[leaks.train_rows] & live[leaks.test_rows]
        leaking = np.zeros(len(table), dtype=bool)
        leaking[leaks.train_rows[pair_live]] = True
        leaking[leaks.test_rows[pair_live]] = True
        masks["leak"] = leaking
    masks["edited"] = table["edited"].to_numpy(dtype=bool)
    return masks


def test_ids(dataset: Dataset, sample_ids) -> list[str]:
    """The PublicTest/PrivateTest ones among `sample_ids`."""
    return [sample_id for sample_id in sample_ids if dataset.usages[dataset.index_of(sample_id)] in TEST_USAGES]


def count_test_images(dataset: Dataset, sample_ids) -> int:
    """How many of `sample_ids` are PublicTest/PrivateTest images."""
    return len(test_ids(dataset, sample_ids))


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


def curated_summary(report: AuditReport, table: pd.DataFrame, edits_in_effect: int) -> dict:
    """The Overview's numbers: what the audit found, and what is left after the edits.

    `edits_in_effect`: relabels, drops and restores not undone (curation.count_edits_in_effect).
    """
    live = ~table["dropped"].to_numpy()
    near, exact = group_status(table, "near"), group_status(table, "exact")
    open_near, open_exact = unresolved(near), unresolved(exact)
    leaks = report.leaks
    live_pairs = live[leaks.train_rows] & live[leaks.test_rows]

    def conflicting(groups: pd.DataFrame) -> int:
        return int(groups["conflicting"].sum()) if len(groups) else 0

    return {
        "images": len(table),
        "images_after": int(live.sum()),
        "exact_groups": len(report.exact_groups),
        "exact_groups_after": int(open_exact.sum()),
        "near_groups": len(report.near_groups),
        "near_groups_after": int(open_near.sum()),
        "exact_conflicting_groups": conflicting(report.exact_groups),
        "exact_conflicting_groups_after": int((open_exact & (exact["live_labels"] > 1)).sum()),
        "conflicting_groups": conflicting(report.near_groups),
        "conflicting_groups_after": int((open_near & (near["live_labels"] > 1)).sum()),
        "leaked_test_images": int(len(leaks.leaked_test_rows())),
        "leaked_test_images_after": int(len(np.unique(leaks.test_rows[live_pairs]))),
        "training_copies": int(len(leaks.training_copy_rows())),
        "training_copies_after": int(len(np.unique(leaks.train_rows[live_pairs]))),
        "threshold": report.config.near_threshold,
        "outliers": int(table["outlier"].sum()),
        "outliers_after": int((table["outlier"] & live & ~table["reviewed"]).sum()),
        "edits": edits_in_effect,
        "relabeled": int((table["current_label"] != table["label"]).sum()),
        "dropped": int(table["dropped"].sum()),
    }


# ---------------------------------------------------------------------------------------------
# Filters and pages


def filter_groups(report: AuditReport, table: pd.DataFrame, kind: str, *, conflicting_only: bool = False,
                  cross_split_only: bool = False, emotions: tuple[str, ...] = (), usages: tuple[str, ...] = (),
                  open_only: bool = True, keep: frozenset[int] = frozenset(),
                  match_kinds: tuple[str, ...] = ()) -> pd.DataFrame:
    """The duplicate groups to show, in group order, judged on the curated view (live members, current labels).

    Groups in `keep` (resolved during this page visit) are shown whatever the filters say, so a
    resolved group stays in place until the reviewer leaves the page.
    """
    groups = report.near_groups if kind == "near" else report.exact_groups
    if not len(groups):
        return groups
    status = group_status(table, kind).reindex(groups["group"].to_numpy())
    keep_groups, keep = keep, np.ones(len(groups), dtype=bool)
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
    if match_kinds and "kinds" in groups:  # near groups: any pair of one of these kinds (shifted, mirrored, …)
        keep &= groups["kinds"].map(lambda kinds: bool(set(kinds) & set(match_kinds))).to_numpy(dtype=bool)
    return groups[keep | groups["group"].isin(keep_groups).to_numpy()]


def group_members(report: AuditReport, table: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    """One row per member of a group: id, row, current label, usage, dropped, bits from the first member."""
    rows = np.asarray(group["rows"], dtype=np.int64)
    distance = hamming_distance(report.hashes[rows], report.hashes[rows[0]])
    members = table.iloc[rows][["id", "current_label", "usage", "dropped", "reviewed"]].copy()
    members.insert(1, "row", rows)
    members["distance"] = np.asarray(distance, dtype=np.int64)
    return members.reset_index(drop=True)


def group_title(group: pd.Series) -> str:
    """`Group 1 · 3 images · up to 8 bits apart`: groups numbered from 1 for people."""
    spread = f" · up to {int(group['max_distance'])} bits apart" if "max_distance" in group else ""
    kinds = f" · {', '.join(group['kinds'])}" if len(group.get("kinds", ())) else ""  # how its pairs match
    return f"Group {int(group['group']) + 1} · {int(group['size'])} images{kinds}{spread}"


def group_badges(group: pd.Series) -> str:
    """Markdown badges for what the audit found in a group (conflicting labels, train and test)."""
    flags = [name for name, on in (("labels disagree", group["conflicting"]), ("train and test", group["cross_split"]))
             if on]
    return "".join(f" · :red[{flag}]" for flag in flags)


def near_mode_note(mode: str, threshold: int) -> str:
    """How near duplicates were found, in a few words (the threshold only matters in hash mode)."""
    return "near copies confirmed on pixels" if mode == "verified" else f"near copies: pHash within {threshold} bits"


def chain_note(threshold: int, mode: str = "hash") -> str:
    """Why a near group can hold members that are not near each other."""
    if mode == "verified":
        return ("A near group links every pair of images confirmed as the same photo on their pixels (re-encoded, "
                "shifted, cropped or mirrored: the kinds in the group's title) and chains them: if A matches B "
                "and B matches C, all three are one group. Each image shows its pHash distance to image #1.")
    return (f"A near group links every pair of images within {threshold} bits and chains them: if A is near B and "
            f"B near C, all three are one group, so two members can be more than {threshold} bits apart. Each "
            "image shows its distance to image #1.")


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
        unknown = [flag for flag in flags if f"flag:{flag}" not in table.columns]
        if unknown:
            raise ValueError(f"unknown flag(s) {sorted(unknown)}; expected {', '.join(flag_names())}")
        keep &= np.logical_or.reduce([table[f"flag:{flag}"].to_numpy(dtype=bool) for flag in flags])
    return np.flatnonzero(keep)


def rank_outliers(table: pd.DataFrame, *, flagged_only: bool = True, show_dropped: bool = False,
                  show_reviewed: bool = False, kind: str = "") -> np.ndarray:
    """Rows by outlier score, highest (least face-like) first; only those of outlier `kind` when given."""
    keep = table["outlier"].to_numpy(dtype=bool, copy=True) if flagged_only else np.ones(len(table), dtype=bool)
    if kind:
        keep &= table["outlier_kind"].to_numpy() == kind
    if not show_dropped:
        keep &= ~table["dropped"].to_numpy()
    if not show_reviewed:
        keep &= ~table["reviewed"].to_numpy()
    rows = np.flatnonzero(keep)
    order = np.argsort(-table["outlier_score"].to_numpy()[rows], kind="stable")
    return rows[order]


def outlier_kind_options() -> dict[str, str]:
    """The Outliers page's kind filter: "" (every kind) and each kind, to its label."""
    return {"": "every kind", **{kind: kind.replace("_", " ") for kind in OUTLIER_KINDS}}


def outlier_kind_counts(table: pd.DataFrame) -> str:
    """`blank 15, placeholder 47, drawing 139, no usable face 2,391`: flagged images per kind."""
    kinds = table["outlier_kind"].to_numpy() if "outlier_kind" in table else np.array([], dtype=object)
    return ", ".join(f"{kind.replace('_', ' ')} {int(np.sum(kinds == kind)):,}" for kind in OUTLIER_KINDS)


SIGNAL_NAMES = {"flat_fraction": "flat", "reconstruction_error": "unlike a face", "sharp_edge_fraction": "sharp edges"}


def outlier_details(table: pd.DataFrame, rows) -> pd.Series:
    """Per row: `score 3.1 · flat, sharp edges`, the outlier score and the signals that raised it.

    A signal raised it when it lies at or beyond its 99th percentile (its scaled value ≥ 1, see
    outliers.tail_scaled); otherwise the strongest one is named. Blank frames and placeholders
    (the same pixels under several emotions) say so.
    """
    rows = np.asarray(rows, dtype=np.int64)
    config = OutlierConfig()
    scaled = {name: tail_scaled(table[column].to_numpy(), config.reference_quantile, config.max_iqr_multiple)[rows]
              for column, name in SIGNAL_NAMES.items() if column in table}
    details = {}
    for position, row in enumerate(rows.tolist()):
        sample = table.iloc[row]
        if sample.get("std", np.inf) < config.blank_max_std:
            signals = ["blank"]
        else:
            values = {name: values[position] for name, values in scaled.items()}
            signals = [name for name, value in values.items() if value >= 1] or \
                      ([max(values, key=values.get)] if values else [])
            if sample.get("recurring_placeholder", False):
                signals.append("placeholder")
        details[row] = f"score {sample['outlier_score']:.1f}" + (f" · {', '.join(signals)}" if signals else "")
    if "outlier_kind" in table:  # a flagged image: its score, the evidence, then its kind
        for row, (kind, evidence) in zip(rows.tolist(), kind_evidence(table, rows)):
            if kind:
                details[row] = f"score {table.iloc[row]['outlier_score']:.1f} · {evidence} · {kind}"
    return pd.Series(details, dtype=object)


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
