"""An image's whole story for the detail panel: who it is, every flag with the number behind it, its copies and
what decided each pair, its duplicate group, what the finished runs predicted, and its edit history.

Pure: the caller passes the audit, the annotated table (`audit_table.annotate`), the suspected-mislabel result
(or None), the runs' predictions and the image's edit history (`curation.edits.history(sample_id=...)`); nothing
here reads a file. Also the short "why" line under a review tile (the flags that put it in the list) and the
search by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from fer_core.audit import AuditReport
from fer_core.duplicates.hashing import hamming_distance
from fer_core.outliers.kinds import kind_evidence

MATCH_WORDS = {"exact": "identical pixels", "near": "re-encoded or brightened"}
SHOWN_MATCHES = 5  # a search matching more ids lists this many


@dataclass(frozen=True)
class ImageStory:
    """Everything about one image; tables are empty (with their columns) when there is nothing to show."""

    sample_id: str
    row: int
    label: str  # as given by the data
    current_label: str  # after the edits
    usage: str
    dropped: bool
    reviewed: bool
    flags: tuple[tuple[str, str], ...]  # (flag, the number behind it in words), raised flags first
    copies: pd.DataFrame  # id, row, kind, similarity, decided_by
    group: pd.Series | None  # its duplicate group (a row of report.near_groups or exact_groups), if any
    predictions: pd.DataFrame  # run, predicted, confidence, given_probability, correct
    history: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class FoundImage:
    """A search's outcome: the row of the one image found, else None and one line saying why."""

    row: int | None
    message: str


def find_image(ids: np.ndarray, query: str) -> FoundImage:
    """The image whose id is `query`; else the one id that contains it (case-insensitive, e.g. a file name
    without its folders); else None and one line: no such id, or how many match."""
    text = query.strip()
    if not text:
        return FoundImage(None, "Type an image id (or part of one, e.g. a file name).")
    ids = np.asarray(ids, dtype=str)
    exact = np.flatnonzero(ids == text)
    if len(exact):
        return FoundImage(int(exact[0]), "")
    matches = np.flatnonzero(np.char.find(np.char.lower(ids), text.lower()) >= 0)
    if len(matches) == 1:
        return FoundImage(int(matches[0]), "")
    if not len(matches):
        return FoundImage(None, f"No image with id {text!r} in this data ({len(ids):,} images).")
    shown = ", ".join(ids[matches[:SHOWN_MATCHES]])
    more = f" and {len(matches) - SHOWN_MATCHES:,} more" if len(matches) > SHOWN_MATCHES else ""
    return FoundImage(None, f"{len(matches):,} images match {text!r}: {shown}{more}. Type more of the id.")


def tell_story(report: AuditReport, table: pd.DataFrame, row: int, *, mislabels: pd.DataFrame | None = None,
               predictions: Sequence[tuple[str, pd.DataFrame]] = (),
               history: pd.DataFrame | None = None) -> ImageStory:
    """The story of the image at `row`. `mislabels`: the suspected-mislabel result's table (or None);
    `predictions`: (run name, its predictions.csv) per finished run, newest first."""
    sample = table.iloc[row]
    sample_id = str(sample["id"])
    return ImageStory(
        sample_id=sample_id, row=int(row), label=str(sample["label"]), current_label=str(sample["current_label"]),
        usage=str(sample["usage"]), dropped=bool(sample["dropped"]), reviewed=bool(sample["reviewed"]),
        flags=tuple(flag_lines(report, table, row, mislabels)), copies=copies_of(report, row),
        group=group_of(report, row), predictions=predictions_of(sample_id, str(sample["current_label"]), predictions),
        history=history if history is not None else pd.DataFrame())


def flag_lines(report: AuditReport, table: pd.DataFrame, row: int,
               mislabels: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """Each flag the audit (or the mislabel detector) raised on the image, with the number behind it; a flag the
    edits have since settled says so."""
    sample = table.iloc[row]
    lines = []

    def add(name: str, raised_by_audit: bool, text: str) -> None:
        if raised_by_audit:
            live = bool(sample.get(f"flag:{name}", True))
            lines.append((name, text if live else f"{text} (settled by the edits)"))

    if pd.notna(sample.get("exact_group")) or pd.notna(sample.get("near_group")):
        add("duplicate", True, _duplicate_text(report, row))
    add("conflict", bool(sample.get("conflicting", False)),
        "its near group's emotions disagree: " + ", ".join(sorted(set(_group_labels(report, table, row)))))
    add("leak", bool(sample.get("leak", False)), _leak_text(report, row))
    if bool(sample.get("outlier", False)):
        kind, evidence = kind_evidence(table, [row])[0]
        details = " · ".join(part for part in (kind, evidence) if part)
        add("outlier", True, f"outlier score {sample['outlier_score']:.1f}" + (f" · {details}" if details else ""))
    if mislabels is not None:
        mine = mislabels[mislabels["id"] == sample["id"]]
        if len(mine):
            found = mine.iloc[0]
            text = (f"mislabel score {found['mislabel_score']:.2f} · the model suggests {found['suggested_label']} "
                    f"({found['suggested_confidence']:.0%} confident)")
            lines.append(("mislabel", text if bool(found["is_label_issue"]) else f"{text}; not flagged"))
    if bool(sample.get("edited", False)):
        lines.append(("edited", _edited_text(sample)))
    return lines


def _duplicate_text(report: AuditReport, row: int) -> str:
    group = group_of(report, row)
    copies = copies_of(report, row)
    size = int(group["size"]) if group is not None else len(copies) + 1
    which = "near" if group is not None and "kinds" in group else "exact"
    best = copies.iloc[0] if len(copies) else None
    closest = f"; closest: {best['id']} ({best['decided_by']})" if best is not None else ""
    return f"{which} group of {size} images{closest}"


def _group_labels(report: AuditReport, table: pd.DataFrame, row: int) -> list[str]:
    group = group_of(report, row)
    rows = np.asarray(group["rows"], dtype=np.int64) if group is not None else np.array([row])
    return table["current_label"].to_numpy()[rows].tolist()


def _leak_text(report: AuditReport, row: int) -> str:
    leaks = report.leaks
    partners = np.concatenate([leaks.test_rows[leaks.train_rows == row], leaks.train_rows[leaks.test_rows == row]])
    usages = report.dataset.usages
    if not len(partners):
        return "a copy across the Training/test split"
    other = ", ".join(f"{report.dataset.ids[partner]} ({usages[partner]})" for partner in partners[:3])
    side = "a Training image with a test copy" if usages[row] == "Training" else "a test image with a Training copy"
    return f"{side}: {other}"


def _edited_text(sample: pd.Series) -> str:
    if sample["dropped"]:
        return "dropped"
    if sample["current_label"] != sample["label"]:
        return f"relabeled {sample['label']} → {sample['current_label']}"
    return "marked reviewed: OK as is"


def copies_of(report: AuditReport, row: int) -> pd.DataFrame:
    """The image's exact and near copies, most similar first: id, row, kind, similarity (pixel correlation, or
    NaN when pHash decided) and `decided_by` in words (what made the pair a pair)."""
    found: dict[int, tuple[str, float, str]] = {}
    pairs = report.near_pairs
    if pairs is not None and report.config.near_mode == "verified" and len(pairs):
        mine = pairs[(pairs["row_a"].to_numpy() == row) | (pairs["row_b"].to_numpy() == row)]
        for pair in mine.itertuples():
            other = int(pair.row_b if pair.row_a == row else pair.row_a)
            found[other] = (str(pair.kind), float(pair.similarity), _pair_words(pair))
    for column, groups in (("exact_group", report.exact_groups), ("near_group", report.near_groups)):
        number = report.samples[column].iloc[row]
        if pd.isna(number):
            continue
        members = np.asarray(groups.loc[groups["group"] == int(number), "rows"].iloc[0], dtype=np.int64)
        for other in members[members != row].tolist():
            if other in found:
                continue
            if column == "exact_group":
                found[other] = ("exact", 1.0, "identical pixels")
            elif report.config.near_mode != "verified":
                bits = int(hamming_distance(report.hashes[[other]], report.hashes[row])[0])
                found[other] = ("near", float("nan"), f"pHash {bits} bits apart")
            else:
                found[other] = ("chained", float("nan"), _chained_words(report, other, members))
    table = pd.DataFrame([(str(report.dataset.ids[other]), other, kind, similarity, words)
                          for other, (kind, similarity, words) in found.items()],
                         columns=["id", "row", "kind", "similarity", "decided_by"])
    order = np.lexsort((table["row"].to_numpy(), -table["similarity"].fillna(-1).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


def _chained_words(report: AuditReport, other: int, members: np.ndarray) -> str:
    """`via train/…/x.jpg (shifted by … · pixel similarity 0.990)`: a group member tied to the image only through
    others, named by its own strongest pair inside the group."""
    pairs = report.near_pairs
    mine = pairs[((pairs["row_a"].to_numpy() == other) & np.isin(pairs["row_b"].to_numpy(), members))
                 | ((pairs["row_b"].to_numpy() == other) & np.isin(pairs["row_a"].to_numpy(), members))]
    if mine.empty:
        return "in its group through another member"
    best = next(mine.iloc[[int(np.argmax(mine["similarity"].to_numpy()))]].itertuples())
    partner = int(best.row_b if best.row_a == other else best.row_a)
    return f"via {report.dataset.ids[partner]} ({_pair_words(best)})"


def _pair_words(pair) -> str:
    """`shifted by x +1, y +0 px · pixel similarity 0.986`: the transform the pixel check found, and its score."""
    if pair.kind == "exact":
        return "identical pixels"
    words = MATCH_WORDS.get(pair.kind, pair.kind)
    if pair.shift_x or pair.shift_y:
        shift = f"by x {int(pair.shift_x):+d}, y {int(pair.shift_y):+d} px"
        words += f" {shift}" if pair.kind == "shifted" else f", shifted {shift}"
    if pair.scale != 1.0:
        words += f", scaled ×{pair.scale:.2f}"
    if pair.mirrored and pair.kind != "mirrored":
        words += ", mirrored"
    return f"{words} · pixel similarity {pair.similarity:.3f}"


def group_of(report: AuditReport, row: int) -> pd.Series | None:
    """The image's near group (which holds its exact copies too), else its exact group, else None."""
    for column, groups in (("near_group", report.near_groups), ("exact_group", report.exact_groups)):
        number = report.samples[column].iloc[row] if column in report.samples else None
        if number is not None and not pd.isna(number):
            return groups[groups["group"] == int(number)].iloc[0]
    return None


def predictions_of(sample_id: str, current_label: str, runs: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per run that scored the image: run, predicted emotion, its probability, the probability of the
    image's current label, and whether the run got it right (against its label then, `label`)."""
    rows = []
    for run, predictions in runs:
        mine = predictions[predictions["id"] == sample_id]
        if mine.empty:
            continue
        found = mine.iloc[0]
        predicted = str(found["predicted"])
        rows.append({"run": run, "label": str(found["label"]), "predicted": predicted,
                     "confidence": float(found.get(f"p_{predicted}", np.nan)),
                     "current_label_probability": float(found.get(f"p_{current_label}", np.nan)),
                     "correct": predicted == str(found["label"])})
    return pd.DataFrame(rows, columns=["run", "label", "predicted", "confidence", "current_label_probability",
                                       "correct"])


WHY_WORDS = {"duplicate": "duplicate", "conflict": "labels disagree", "leak": "leak", "outlier": "outlier",
             "edited": "edited"}


def why_lines(table: pd.DataFrame, rows) -> pd.Series:
    """Per row: `why: duplicate (shifted) · outlier (blank)`, the flags (after the edits) that put the image in a
    review list; rows with no flag are left out."""
    rows = np.asarray(rows, dtype=np.int64)
    lines = {}
    for row in rows.tolist():
        sample = table.iloc[row]
        reasons = []
        for name, words in WHY_WORDS.items():
            if not bool(sample.get(f"flag:{name}", False)):
                continue
            detail = ""
            if name == "duplicate" and isinstance(sample.get("near_kind"), str) and sample["near_kind"]:
                detail = f" ({sample['near_kind']})"
            elif name == "outlier" and isinstance(sample.get("outlier_kind"), str) and sample["outlier_kind"]:
                detail = f" ({sample['outlier_kind'].replace('_', ' ')})"
            reasons.append(words + detail)
        if reasons:
            lines[row] = "why: " + " · ".join(reasons)
    return pd.Series(lines, dtype=object)
