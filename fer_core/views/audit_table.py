"""The curated view of the audit: its table with the edit log's columns and flags, the Overview's counts,
and the Review page's filter.

Pages stay thin: they pick widgets and call these functions, which take the audit report and the
edit log's state and return small tables. Nothing here imports streamlit, so every filter and count
is testable without a browser, and everything is vectorized so a rerun on the full FER-2013
(35,887 rows, 1,500+ groups) costs milliseconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.audit import AuditReport
from fer_core.curation.replay import CurationState
from fer_core.dataset.loading import Dataset
from fer_core.detectors import flag_mask, registered_findings, registered_flags
from fer_core.duplicates.status import GROUP_KINDS, group_column, group_status, unresolved
from fer_core.findings import live_leak_pairs
from fer_core.labels import TEST_USAGES

CURATION_FLAGS: tuple[str, ...] = ("edited",)  # flags of the edit log; the detectors declare theirs



def annotate(report: AuditReport, state: CurationState) -> pd.DataFrame:
    """The audit's sample table plus the edit log: current_label, dropped, reviewed, edited, and one
    `flag:<name>` column per flag as it stands after the edits (see `curated_flags`)."""
    table = report.samples.copy()
    table["current_label"] = table["label"]
    if state.labels:
        relabeled = table["id"].map(state.labels)  # emotion names, as in the log
        has_new = relabeled.notna().to_numpy()
        table.loc[has_new, "current_label"] = relabeled[has_new]
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
        groups = table[group_column(kind)].to_numpy(dtype=np.float64, na_value=-1).astype(np.int64)
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


def curated_summary(report: AuditReport, table: pd.DataFrame, edits_in_effect: int) -> dict:
    """The Overview's and the report's numbers: each registered finding as the audit found it (`<key>`) and
    as it is left after the edits (`<key>_after`), plus the images kept and the edits.

    `edits_in_effect`: relabels, drops and restores not undone (curation.count_edits_in_effect).
    """
    live = ~table["dropped"].to_numpy()
    summary = {"images": len(table), "images_after": int(live.sum())}
    for finding in registered_findings():
        summary[finding.key] = int(finding.found(report.summary))
        summary[f"{finding.key}_after"] = int(finding.left(report, table))
    leaks = report.leaks
    summary.update({
        "training_copies": int(len(leaks.training_copy_rows())),
        "training_copies_after": int(len(np.unique(leaks.train_rows[live_leak_pairs(report, table)]))),
        "threshold": report.config.near_threshold,
        "edits": edits_in_effect,
        "relabeled": int((table["current_label"] != table["label"]).sum()),
        "dropped": int(table["dropped"].sum()),
    })
    return summary


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
