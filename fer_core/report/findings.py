"""The report's first two sections: the headline (what is wrong, why it matters for a model) and the
evidence (the most telling examples as thumbnails, and the study's box plot)."""

from __future__ import annotations


import numpy as np
import pandas as pd

from fer_core.audit import AuditReport
from fer_core.curation.replay import count_edits_in_effect
from fer_core.detectors import registered_findings
from fer_core.report.blocks import count_text, escape, figure_html, paragraph, thumbnail
from fer_core.report.inputs import ReportInputs, ReportSettings
from fer_core.views import duplicate_groups, figures, image_tiles, outlier_list
from fer_core.views.audit_table import curated_summary


def headline_section(inputs: ReportInputs, settings: ReportSettings) -> str:
    """The findings in numbers (each registered detector's, then the suspected mislabels), each with why it
    matters for a model and what is left after the edits."""
    audit = inputs.audit.summary
    summary = curated_summary(inputs.audit, inputs.table, count_edits_in_effect(inputs.edit_log))
    usage = " · ".join(f"{name} {count:,}" for name, count in audit["by_usage"].items())
    edited = bool(inputs.edit_log)

    def left(key: str, unit: str) -> str:
        return f"after the edits: {summary[key]:,} {unit}" if edited else "no edits yet"

    cards = [("Images", count_text(audit["images"]), f"{usage}",
              "A model trains on Training, is tuned on PublicTest and is scored on PrivateTest; every count below "
              "is a number of images or groups of them.", left("images_after", "images kept"))]
    cards += [(finding.title, count_text(summary[finding.key]), finding.detail(audit), finding.why,
               left(f"{finding.key}_after", finding.left_unit))
              for finding in registered_findings() if finding.title is not None]
    cards.append(mislabel_card(inputs))
    items = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
        f'<div class="detail">{escape(detail)}</div><p class="why">{escape(why)}</p>'
        f'<div class="after">{escape(after)}</div></div>' for label, value, detail, why, after in cards)
    return f'<div class="cards">{items}</div>'


def mislabel_card(inputs: ReportInputs) -> tuple[str, str, str, str, str]:
    """Suspected mislabels when the detector has been run on this data; "not computed" otherwise."""
    why = "A wrong label trains the model toward the wrong answer and counts its right answers as errors."
    result = inputs.mislabels
    if result is None:
        return ("Suspected mislabels", "not computed", "the mislabel detector has not been run on this data "
                "(its command is in the appendix)", why, "")
    summary = result.summary
    settings = summary.get("settings", {})
    on = ("the curated data" if summary.get("fingerprint") == inputs.curated.fingerprint and inputs.edit_log
          else "the data as loaded")
    return ("Suspected mislabels", count_text(summary["flagged"]),
            f"images whose filed emotion a {settings.get('folds')}-fold cross-validated {settings.get('model')} "
            f"model disputes (Confident Learning), of {summary['images']:,} scored", why, f"computed on {on}")


def evidence_section(inputs: ReportInputs, settings: ReportSettings) -> str:
    """The most telling examples of each problem as thumbnails, and the study's box plot."""
    parts = [
        "<h3>Conflicting groups: the same face under different emotions</h3>",
        conflicting_examples(inputs, settings),
        "<h3>Train–test leaks: a test image beside its Training copy</h3>",
        leak_examples(inputs, settings),
        "<h3>The least face-like images (highest outlier score)</h3>",
        outlier_examples(inputs, settings),
        "<h3>Suspected mislabels</h3>",
        mislabel_examples(inputs, settings),
        "<h3>Average pixel value per emotion</h3>",
        paragraph("The original study's figure: one box per emotion (whiskers at 1.5 × the interquartile range); "
                  "the dots are images beyond their emotion's whiskers, red when the outlier score also flags them. "
                  "Blank and very dark or light frames sit at the ends; most other non-faces hide inside the boxes, "
                  "which is why the outlier score looks at more than brightness."),
        figure_html(figures.box_plot_figure(inputs.table)),
    ]
    return ("".join(parts))


def conflicting_examples(inputs: ReportInputs, settings: ReportSettings) -> str:
    """Groups whose copies disagree: exact copies first (undeniable), most distinct emotions, then largest."""
    audit, table = inputs.audit, inputs.table
    chosen = pick_conflicting_groups(audit, settings.conflicting_groups)
    if not chosen:
        return paragraph("No duplicate group of faces carries more than one emotion.")
    blocks = []
    for kind, group in chosen:
        members = duplicate_groups.group_members(audit, table, group)
        members = members_one_per_label_first(members, table).head(settings.members_per_group)
        tiles = []
        for member in members.itertuples():
            original = table.at[member.row, "label"]
            lines = [f"{original} · {member.usage}", image_tiles.short_id(member.id)]
            if member.dropped:
                lines.append("now dropped")
            elif member.current_label != original:
                lines.append(f"now {member.current_label}")
            tiles.append(thumbnail(audit.dataset.pixels[member.row], lines, settings.thumbnail_factor))
        labels = ", ".join(sorted(set(group["labels"])))
        more = f" (first {len(members)} shown)" if group["size"] > len(members) else ""
        blocks.append(f'<div class="example"><p class="caption">{"Identical pixels" if kind == "exact" else "Near copies"}, '
                      f'{group["size"]} images{more}, filed as {escape(labels)}</p>'
                      f'<div class="thumbs">{"".join(tiles)}</div></div>')
    total = int(audit.near_groups["conflicting"].sum()) if len(audit.near_groups) else 0
    return paragraph(f"{len(chosen)} of {total:,} conflicting near-duplicate groups; caption: the emotion as filed, "
                     f"the split, the file number, and what the edits did.") + "".join(blocks)


def members_one_per_label_first(members: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Group members reordered so the first member of each filed emotion comes first: a cut-off list still
    shows the disagreement."""
    labels = pd.Series(table["label"].to_numpy()[members["row"].to_numpy()])
    return members.iloc[np.argsort(labels.duplicated().to_numpy(), kind="stable")]


def pick_conflicting_groups(audit: AuditReport, count: int) -> list[tuple[str, pd.Series]]:
    """Up to `count` conflicting groups of faces: exact ones first, then by distinct emotions and size (ties by
    group id). Groups holding a flagged non-face (a recurring blank frame) are left to the outlier examples."""
    candidates = []
    seen_rows: set[int] = set()
    flagged = audit.samples["outlier"].to_numpy(dtype=bool)
    for kind, groups in (("exact", audit.exact_groups), ("near", audit.near_groups)):
        if not len(groups):
            continue
        faces = groups["rows"].map(lambda rows: not flagged[rows].any()).to_numpy(dtype=bool)
        conflicting = groups[groups["conflicting"].to_numpy(dtype=bool) & faces].copy()
        conflicting["emotions"] = conflicting["labels"].map(lambda labels: len(set(labels)))
        for _, group in conflicting.sort_values(["emotions", "size", "group"], ascending=[False, False, True]).iterrows():
            rows = set(group["rows"])
            if rows & seen_rows:
                continue  # a near group holding an exact group already shown
            seen_rows |= rows
            candidates.append((kind, group))
            if len(candidates) == count:
                return candidates
    return candidates


def leak_examples(inputs: ReportInputs, settings: ReportSettings) -> str:
    """Test images beside their Training copies: half exact copies, half near copies, when both exist."""
    audit, table = inputs.audit, inputs.table
    shown = {row for _, group in pick_conflicting_groups(audit, settings.conflicting_groups) for row in group["rows"]}
    shown |= set(np.flatnonzero(table["outlier"].to_numpy(dtype=bool)).tolist())  # faces tell the leak story best
    pairs = pick_leak_pairs(audit, settings.leak_pairs, exclude_rows=shown)
    if not len(pairs):
        return paragraph("No test image has a copy in Training.")
    verified = audit.config.near_mode == "verified"
    matches = pair_matches(audit)
    blocks = []
    for train_row, test_row, distance in pairs:
        tiles = [thumbnail(audit.dataset.pixels[row], [f"{table.at[row, 'usage']} · {table.at[row, 'label']}",
                                                       image_tiles.short_id(table.at[row, "id"])]
                           + (["now dropped"] if table.at[row, "dropped"] else []), settings.thumbnail_factor)
                 for row in (test_row, train_row)]
        blocks.append(f'<div class="example pair"><div class="thumbs">{"".join(tiles)}</div>'
                      f'<p class="caption">{escape(leak_relation(train_row, test_row, distance, verified, matches))}'
                      f'</p></div>')
    leaks = audit.summary["leaks"]
    how = ("the caption says how the pair was confirmed on its pixels: the transform that matches it (re-encoded, "
           "shifted, cropped or mirrored) and its similarity (1 = same pixels; pairs are accepted from "
           f"{audit.config.near_verify.min_similarity:.2f})" if verified else
           f"“bits apart” is the pHash distance (0 = same picture, up to {audit.config.near_threshold} = shifted, "
           "re-cropped or re-encoded)")
    return (paragraph(f"{len(pairs)} of {leaks['test_images_with_training_copy']:,} leaked test images, each left of "
                      f"its Training copy; {how}.")
            + f'<div class="pairs">{"".join(blocks)}</div>')


def pair_matches(audit: AuditReport) -> dict[frozenset[int], tuple[str, float]]:
    """(kind, similarity) of each verified near pair, by its two rows."""
    pairs = audit.near_pairs
    if pairs is None or not len(pairs):
        return {}
    return {frozenset((int(a), int(b))): (str(kind), float(similarity)) for a, b, kind, similarity
            in zip(pairs["row_a"], pairs["row_b"], pairs["kind"], pairs["similarity"])}


def leak_relation(train_row: int, test_row: int, distance: int, verified: bool,
                  matches: dict[frozenset[int], tuple[str, float]]) -> str:
    """What decided that two images are copies, in the words of the mode that decided it."""
    if distance == 0:
        return "identical pixels"
    if not verified:
        return f"{distance} bits apart"
    kind, similarity = matches.get(frozenset((train_row, test_row)), (None, None))
    if kind is None:
        return "a copy of an image confirmed on pixels (through an exact copy)"
    words = {"near": "re-encoded or brightened", "exact": "identical pixels"}.get(kind, kind)
    return f"{words}, similarity {similarity:.3f}"


def pick_leak_pairs(audit: AuditReport, count: int, exclude_rows: set[int] = frozenset()) -> list[tuple[int, int, int]]:
    """(train row, test row, distance) for `count` distinct test images: near copies (the ones a byte check
    misses) and exact copies in equal shares, lowest rows first so the choice is stable. Pairs touching
    `exclude_rows` (images already shown) come only when nothing else is left."""
    leaks = audit.leaks
    if not len(leaks.test_rows):
        return []
    frame = pd.DataFrame({"train": leaks.train_rows, "test": leaks.test_rows, "distance": leaks.distances})
    fresh = ~(frame["train"].isin(exclude_rows) | frame["test"].isin(exclude_rows))
    if fresh.any():
        frame = frame[fresh]
    frame = frame.sort_values(["test", "distance", "train"]).drop_duplicates("test")
    exact, near = frame[frame["distance"] == 0], frame[frame["distance"] > 0].sort_values(["distance", "test"],
                                                                                          ascending=[False, True])
    near_count = min(len(near), max(count // 2, count - len(exact)))
    chosen = pd.concat([exact.head(count - near_count), near.head(near_count)])
    return [(int(row.train), int(row.test), int(row.distance)) for row in chosen.itertuples()]


def outlier_examples(inputs: ReportInputs, settings: ReportSettings) -> str:
    audit, table = inputs.audit, inputs.table
    rows = pick_outliers(table, settings.outliers)
    if not len(rows):
        return paragraph("The outlier score flags no image.")
    kinds = table["outlier_kind"] if "outlier_kind" in table.columns else pd.Series("", index=table.index)
    tiles = [thumbnail(audit.dataset.pixels[row],
                       [f"score {table.at[row, 'outlier_score']:.1f} · {table.at[row, 'label']}",
                        f"{table.at[row, 'usage']} {image_tiles.short_id(table.at[row, 'id'])}"]
                       + ([str(kinds.at[row]).replace("_", " ")] if kinds.at[row] else [])
                       + (["now dropped"] if table.at[row, "dropped"] else []), settings.thumbnail_factor)
             for row in rows]
    return (paragraph(f"{len(rows)} of {int(table['outlier'].sum()):,} flagged images, highest score first, one per "
                      f"group of near copies; caption: outlier score (flagged from "
                      f"{flag_min_score(audit):g}), the emotion as filed, split and file number, and what kind of "
                      f"non-face it looks like.")
            + f'<div class="thumbs">{"".join(tiles)}</div>')


def flag_min_score(audit: AuditReport) -> float:
    """The outlier score from which an image is flagged, as the audit was configured."""
    from fer_core.outliers.statistics import OutlierConfig

    return getattr(audit.config, "outliers", OutlierConfig()).flag_min_score


def pick_outliers(table: pd.DataFrame, count: int) -> np.ndarray:
    """The highest-scoring flagged images, one per near-duplicate group (FER-2013 holds a dozen identical black
    frames and many copies of each "image removed" card; one of each says it all)."""
    ranked = outlier_list.rank_outliers(table, flagged_only=True, show_dropped=True, show_reviewed=True)
    groups = table["near_group"].to_numpy(dtype=np.float64, na_value=np.nan)[ranked]
    repeated = pd.Series(groups).duplicated().to_numpy() & ~np.isnan(groups)
    return ranked[~repeated][:count]


def mislabel_examples(inputs: ReportInputs, settings: ReportSettings) -> str:
    """The most suspect labels, one per duplicate group, with the emotion the models suggest instead."""
    result = inputs.mislabels
    if result is None:
        return paragraph("Not computed: the mislabel detector has not been run on this data (its command is in the appendix).")
    suspected = result.suspected()
    if "group" in suspected.columns:
        groups = suspected["group"].to_numpy(dtype=np.float64, na_value=np.nan)
        suspected = suspected[~(pd.Series(groups).duplicated().to_numpy() & (groups >= 0))]
    suspected = suspected.head(settings.outliers)
    if not len(suspected):
        return paragraph("The detector flags no label.")
    dataset = inputs.audit.dataset
    tiles = [thumbnail(dataset.pixels[dataset.index_of(row.id)],
                       [f"filed {row.label} → {row.suggested_label} ({row.suggested_confidence:.0%})",
                        f"{row.usage} {image_tiles.short_id(row.id)}"], settings.thumbnail_factor)
             for row in suspected.itertuples()]
    return (paragraph(f"{len(tiles)} of {result.summary['flagged']:,} suspected mislabels, most suspect first, one per "
                      f"duplicate group; caption: the emotion as filed → the one the cross-validated models suggest "
                      f"(their probability), split and file number.")
            + f'<div class="thumbs">{"".join(tiles)}</div>')
