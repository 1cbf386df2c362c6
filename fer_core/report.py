"""The stakeholder report: one self-contained HTML file with what was wrong, what was done, what it changed.

Readers will never open the app, often open the file offline or print it, so the file carries
everything it shows: Plotly's JavaScript once in the head, every figure as a div drawn by it,
every thumbnail as an inline PNG data URI, system fonts only, no request to anywhere. Print CSS
starts each section on a new page and keeps figures whole.

The figures and tables come from the functions the pages use (`review`/`views` for the audit,
`results` for runs, `export.count_samples` for before/after counts); this module only picks the
examples, words the findings and assembles the HTML. Every piece of user text (reasons, authors,
file names, paths) goes through `html.escape`.
"""

from __future__ import annotations

import base64
import html
import io
import os
import platform
import shlex
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from . import figures, results, views
from .audit import AuditReport
from .curation import RELABEL, REVIEW_OK, UNDO, Edit, count_edits_in_effect, find_active_edits, find_edits_in_effect, replay_edits
from .dataset import Dataset
from .edits import database_path, read_curation
from .export import count_samples
from .files import write_text_atomically
from .labels import EMOTIONS, USAGES
from .paths import check_output_file
from .workspace import resolve_workspace

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .jobs import RunRecord

PUBLISHED_ACCURACY = 0.73  # best single networks on FER-2013 (VGG variants, ~72-73 % on PrivateTest)
PLOTLY_CONFIG = {"displayModeBar": False, "responsive": True}
SECTIONS = (("headline", "Headline"), ("evidence", "Evidence"), ("done", "What was done"),
            ("changed", "What it changed"), ("appendix", "Appendix"))
VERSION_PACKAGES = ("numpy", "pandas", "scipy", "pillow", "plotly", "opencv-python-headless", "streamlit")


@dataclass(frozen=True)
class ReportSettings:
    """How many examples the evidence shows, and how large."""

    conflicting_groups: int = 3
    members_per_group: int = 8
    leak_pairs: int = 4
    outliers: int = 12
    thumbnail_factor: int = views.UPSCALE_FACTOR  # 48 px → 144 px, nearest neighbour: crisp pixels


@dataclass(frozen=True, eq=False)
class ReportInputs:
    """Everything the report shows, read once: the audit, the curated view, the edit log and the chosen runs."""

    audit: AuditReport
    table: pd.DataFrame
    edit_log: list[Edit]
    curated: Dataset
    runs: list["RunRecord"]
    workspace: Path
    data_path: str
    experiment: list["RunRecord"] = field(default_factory=list)  # the runs of one sweep, for the grid
    mislabels: Any = None  # mislabels.MislabelResult of the curated data (or of the data as loaded), when computed
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


# ---------------------------------------------------------------------------------------------
# Inputs


def check_output_path(out: str | os.PathLike) -> Path:
    """The report's path, checked before any work (one-line ValueError): not a folder, not under a file, writable."""
    return check_output_file(Path(out).expanduser(), "--out")


def read_training_runs(workspace: str | os.PathLike | None = None) -> list["RunRecord"]:
    """Every training run, newest first; none when the workspace has no database (nothing is created)."""
    if not database_path(workspace).exists():
        return []
    from . import jobs

    # Other job kinds (e.g. mislabel folds) are not runs to compare.
    return [record for record in jobs.list_runs(workspace) if getattr(record, "kind", "train") == "train"]


def read_finished_runs(workspace: str | os.PathLike | None = None) -> list["RunRecord"]:
    """Succeeded training runs with metrics, newest first."""
    return results.finished_with_metrics(read_training_runs(workspace))


def pick_experiment(runs: Sequence["RunRecord"], chosen: Sequence["RunRecord"]) -> list["RunRecord"]:
    """The runs of the experiment (a model × sampling sweep) the chosen runs belong to, else of the newest one."""
    ids = [record.experiment_id for record in (*chosen, *runs) if getattr(record, "experiment_id", None)]
    return [record for record in runs if ids and record.experiment_id == ids[0]]


def choose_runs(finished: Sequence["RunRecord"], run_ids: Sequence[str] = ()) -> list["RunRecord"]:
    """The runs to show, in order: the given ids (ValueError naming an unknown or unfinished one), else
    the default comparison (newest raw run, newest curated run), else the one finished run."""
    by_id = {record.run_id: record for record in finished}
    if run_ids:
        missing = [run_id for run_id in run_ids if run_id not in by_id]
        if missing:
            known = ", ".join(by_id) or "none"
            raise ValueError(f"run {missing[0]!r} is not a finished run with metrics in this workspace "
                             f"(finished runs: {known})")
        return [by_id[run_id] for run_id in dict.fromkeys(run_ids)]
    if len(finished) >= 2:
        return [by_id[run_id] for run_id in results.default_comparison(list(finished))]
    return list(finished)


def gather_inputs(audit: AuditReport, workspace: str | os.PathLike | None = None, run_ids: Sequence[str] = (),
                  data_path: str | os.PathLike | None = None) -> ReportInputs:
    """Read the edit log (checked against the audited data) and the chosen runs of `workspace`."""
    home = resolve_workspace(workspace)
    curated, log = read_curation(audit.dataset, home)
    table = views.annotate(audit, replay_edits(log))
    every_run = read_training_runs(home)
    runs = choose_runs(results.finished_with_metrics(every_run), run_ids)
    return ReportInputs(audit=audit, table=table, edit_log=log, curated=curated, runs=runs, workspace=home,
                        data_path=str(data_path if data_path is not None else audit.dataset.source),
                        experiment=pick_experiment(every_run, runs),
                        mislabels=read_mislabels(curated, audit.dataset, home))


def read_mislabels(curated: Dataset, raw: Dataset, workspace: Path) -> Any:
    """The cached suspected-mislabel result (default settings, as `python -m fer_core mislabels` computes it)
    for the curated data, else for the data as loaded; None when neither was computed. Never computes."""
    try:
        from .mislabels import MislabelConfig, cache_key, read_cached_result
    except ImportError:
        return None
    for dataset in dict.fromkeys((curated, raw)):
        result = read_cached_result(cache_key(dataset, MislabelConfig()), workspace)
        if result is not None:
            return result
    return None


def build_report(audit: AuditReport, workspace: str | os.PathLike | None = None, run_ids: Sequence[str] = (),
                 data_path: str | os.PathLike | None = None, settings: ReportSettings = ReportSettings()) -> str:
    """The whole report as one HTML string."""
    return render_report(gather_inputs(audit, workspace, run_ids, data_path), settings)


def download_name(audit: AuditReport) -> str:
    """A file name for the report of this data: `fer_audit_report_<fingerprint>.html`."""
    return f"fer_audit_report_{audit.dataset.fingerprint[:12]}.html"


def write_report(text: str, out: str | os.PathLike) -> Path:
    """Write the report atomically (a reader never sees half a file), creating its folder if needed."""
    path = check_output_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(path, text)


# ---------------------------------------------------------------------------------------------
# HTML building blocks


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def count_text(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def percent_text(value: float | None, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}%}"


def png_data_uri(image: np.ndarray, factor: int = views.UPSCALE_FACTOR) -> str:
    """A grayscale image as an inline PNG, enlarged by whole pixels so it stays crisp in any viewer and in print."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(views.upscale(np.asarray(image, dtype=np.uint8), factor)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail(image: np.ndarray, caption_lines: Sequence[str], factor: int, marked: bool = False) -> str:
    """One image with a short caption under it (caption lines are escaped here)."""
    side = image.shape[0] * factor
    caption = "<br>".join(escape(line) for line in caption_lines)
    alt = escape(" · ".join(caption_lines))
    return (f'<figure class="thumb{" marked" if marked else ""}"><img src="{png_data_uri(image, factor)}" '
            f'width="{side}" height="{side}" alt="{alt}"><figcaption>{caption}</figcaption></figure>')


def figure_html(figure: "go.Figure") -> str:
    """A Plotly figure as a div drawn by the Plotly.js in the head; WebGL traces become SVG so they print."""
    return f'<div class="plot">{svg_traces(figure).to_html(include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG)}</div>'


def svg_traces(figure: "go.Figure") -> "go.Figure":
    """The same figure with every `scattergl` trace drawn as an SVG `scatter` (WebGL neither prints nor
    draws in browsers without a GPU context; the report shows a few hundred points at most)."""
    import plotly.graph_objects as go

    if not any(trace.type == "scattergl" for trace in figure.data):
        return figure
    traces = []
    for trace in figure.data:
        if trace.type == "scattergl":
            properties = trace.to_plotly_json()
            properties.pop("type")
            traces.append(go.Scatter(**properties))
        else:
            traces.append(trace)
    return go.Figure(data=traces, layout=figure.layout)


def html_table(frame: pd.DataFrame, formats: dict[str, Any] | None = None, numeric: Sequence[str] = ()) -> str:
    """A DataFrame as an escaped HTML table; `formats` maps a column to a function of its value."""
    formats = formats or {}
    head = "".join(f'<th{" class=num" if column in numeric else ""}>{escape(column)}</th>' for column in frame.columns)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            value = row[column]
            text = formats[column](value) if column in formats else ("—" if _missing(value) else value)
            cells.append(f'<td{" class=num" if column in numeric else ""}>{escape(text)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{escape(title)}</h2>{body}</section>'


def paragraph(text: str) -> str:
    """A paragraph of text written by this module (already escaped where it holds user text)."""
    return f"<p>{text}</p>"


# ---------------------------------------------------------------------------------------------
# The document


def render_report(inputs: ReportInputs, settings: ReportSettings = ReportSettings()) -> str:
    """Assemble the sections into one standalone HTML document."""
    import plotly.offline

    dataset = inputs.audit.dataset
    summary = views.curated_summary(inputs.audit, inputs.table, count_edits_in_effect(inputs.edit_log))
    body = "".join([
        headline_section(inputs, summary),
        evidence_section(inputs, settings),
        done_section(inputs),
        changed_section(inputs),
        appendix_section(inputs, settings),
    ])
    contents = "".join(f'<li><a href="#{section_id}">{escape(title)}</a></li>' for section_id, title in SECTIONS)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>FER data audit — {escape(Path(inputs.data_path).name or inputs.data_path)}</title>"
        f"<style>{REPORT_CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body><main>"
        f"<header><h1>What was wrong with the data, what was done, what it changed</h1>"
        f"<p class=\"meta\">{escape(inputs.data_path)} · {len(dataset):,} images · fingerprint "
        f"<code>{escape(dataset.fingerprint)}</code> · generated {escape(inputs.generated_at)}</p>"
        f"<nav><ol>{contents}</ol></nav></header>{body}</main></body></html>\n")


def headline_section(inputs: ReportInputs, summary: dict) -> str:
    """The findings in numbers, each with why it matters for a model and what is left after the edits."""
    audit = inputs.audit.summary
    exact, near, leaks = audit["exact"], audit["near"], audit["leaks"]
    usage = " · ".join(f"{name} {count:,}" for name, count in audit["by_usage"].items())
    edited = bool(inputs.edit_log)

    def left(key: str, unit: str) -> str:
        return f"after the edits: {summary[key]:,} {unit}" if edited else "no edits yet"

    cards = [
        ("Images", count_text(audit["images"]), f"{usage}",
         "A model trains on Training, is tuned on PublicTest and is scored on PrivateTest; every count below is "
         "a number of images or groups of them.", left("images_after", "images kept")),
        ("Exact duplicates", count_text(exact["groups"]),
         f"groups of identical images; {exact['redundant']:,} redundant copies",
         "Copies weigh some faces more than others in training, and across splits they let a model be scored on "
         "images it has already seen.", left("exact_groups_after", "groups still open")),
        ("Near duplicates", count_text(near["groups"]),
         f"groups within {near['threshold']} bits of pHash; {near['images_in_groups']:,} images in them",
         "Shifted, re-cropped or re-encoded copies act on a model like exact ones but escape a byte-for-byte "
         "check.", left("near_groups_after", "groups still open")),
        ("Conflicting groups", count_text(summary["conflicting_groups"]),
         f"near-duplicate groups whose copies carry different emotions; so do {exact['conflicting_groups']:,} "
         f"groups of identical images",
         "The same face under two emotions trains the model toward contradictory answers and caps the accuracy "
         "any model can reach on those images.", left("conflicting_groups_after", "still open")),
        ("Train–test leaks", count_text(leaks["test_images_with_training_copy"]),
         f"test images with a copy in Training ({leaks['training_copies_of_test_images']:,} Training copies)",
         "A model can recall these answers instead of reading the expression, so test accuracy overstates how it "
         "does on faces it has never seen.", left("leaked_test_images_after", "leaked test images")),
        ("Non-faces", count_text(summary["outliers"]), outlier_detail(audit["outliers"]),
         "They carry an emotion label but no facial expression: noise in training, arbitrary hits or misses in "
         "testing.", left("outliers_after", "flagged, not dropped or reviewed")),
        mislabel_card(inputs),
    ]
    items = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
        f'<div class="detail">{escape(detail)}</div><p class="why">{escape(why)}</p>'
        f'<div class="after">{escape(after)}</div></div>' for label, value, detail, why, after in cards)
    return section("headline", "Headline", f'<div class="cards">{items}</div>')


def outlier_detail(outliers: dict) -> str:
    """What the flagged images are, by kind when the audit says (blank 12 · placeholder 60 · …)."""
    kinds = {kind: count for kind, count in outliers.get("by_kind", {}).items() if count}
    if not kinds:
        return "images flagged by the outlier score (blank frames, text cards, icons, drawings)"
    return "images flagged as not a usable face: " + " · ".join(
        f"{kind.replace('_', ' ')} {count:,}" for kind, count in kinds.items())


def mislabel_card(inputs: ReportInputs) -> tuple[str, str, str, str, str]:
    """Suspected mislabels when the detector has been run on this data; "not computed" otherwise."""
    why = "A wrong label trains the model toward the wrong answer and counts its right answers as errors."
    result = inputs.mislabels
    if result is None:
        command = f"python -m fer_core mislabels {shlex.quote(inputs.data_path)} --out mislabels"
        return ("Suspected mislabels", "not computed", f"run {command} to compute them", why, "")
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
    return section("evidence", "Evidence", "".join(parts))


def conflicting_examples(inputs: ReportInputs, settings: ReportSettings) -> str:
    """Groups whose copies disagree: exact copies first (undeniable), most distinct emotions, then largest."""
    audit, table = inputs.audit, inputs.table
    chosen = pick_conflicting_groups(audit, settings.conflicting_groups)
    if not chosen:
        return paragraph("No duplicate group of faces carries more than one emotion.")
    blocks = []
    for kind, group in chosen:
        members = views.group_members(audit, table, group)
        members = members_one_per_label_first(members, table).head(settings.members_per_group)
        tiles = []
        for member in members.itertuples():
            original = table.at[member.row, "label"]
            lines = [f"{original} · {member.usage}", views.short_id(member.id)]
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
    blocks = []
    for train_row, test_row, distance in pairs:
        tiles = [thumbnail(audit.dataset.pixels[row], [f"{table.at[row, 'usage']} · {table.at[row, 'label']}",
                                                       views.short_id(table.at[row, "id"])]
                           + (["now dropped"] if table.at[row, "dropped"] else []), settings.thumbnail_factor)
                 for row in (test_row, train_row)]
        relation = "identical pixels" if distance == 0 else f"{distance} bits apart"
        blocks.append(f'<div class="example pair"><div class="thumbs">{"".join(tiles)}</div>'
                      f'<p class="caption">{relation}</p></div>')
    leaks = audit.summary["leaks"]
    return (paragraph(f"{len(pairs)} of {leaks['test_images_with_training_copy']:,} leaked test images, each left of "
                      f"its Training copy; “bits apart” is the pHash distance (0 = same picture, up to "
                      f"{audit.config.near_threshold} = shifted, re-cropped or re-encoded).")
            + f'<div class="pairs">{"".join(blocks)}</div>')


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
                        f"{table.at[row, 'usage']} {views.short_id(table.at[row, 'id'])}"]
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
    from .outliers import OutlierConfig

    return getattr(audit.config, "outliers", OutlierConfig()).flag_min_score


def pick_outliers(table: pd.DataFrame, count: int) -> np.ndarray:
    """The highest-scoring flagged images, one per near-duplicate group (FER-2013 holds a dozen identical black
    frames and many copies of each "image removed" card; one of each says it all)."""
    ranked = views.rank_outliers(table, flagged_only=True, show_dropped=True, show_reviewed=True)
    groups = table["near_group"].to_numpy(dtype=np.float64, na_value=np.nan)[ranked]
    repeated = pd.Series(groups).duplicated().to_numpy() & ~np.isnan(groups)
    return ranked[~repeated][:count]


def mislabel_examples(inputs: ReportInputs, settings: ReportSettings) -> str:
    """The most suspect labels, one per duplicate group, with the emotion the models suggest instead."""
    result = inputs.mislabels
    if result is None:
        return paragraph("Not computed: run the mislabel detector (command in the headline) and build the report again.")
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
                        f"{row.usage} {views.short_id(row.id)}"], settings.thumbnail_factor)
             for row in suspected.itertuples()]
    return (paragraph(f"{len(tiles)} of {result.summary['flagged']:,} suspected mislabels, most suspect first, one per "
                      f"duplicate group; caption: the emotion as filed → the one the cross-validated models suggest "
                      f"(their probability), split and file number.")
            + f'<div class="thumbs">{"".join(tiles)}</div>')


def done_section(inputs: ReportInputs) -> str:
    """The edits in effect by action and reason, who and when, and the data before → after."""
    log = inputs.edit_log
    if not log:
        return section("done", "What was done", paragraph(
            "No edit has been made in this workspace: the data below is the data as loaded.")
            + counts_table_html(inputs))
    decisions = [edit for edit in find_active_edits(log) if edit.action != UNDO]  # edits in effect + review marks
    undone = sum(1 for edit in log if edit.action != UNDO) - len(decisions)
    state = replay_edits(log)
    facts = (f"The edit log holds {len(log):,} rows. Edits in effect (relabels, drops and restores not undone): "
             f"{len(find_edits_in_effect(log)):,}; they leave {len(state.labels):,} images relabeled and "
             f"{len(state.dropped):,} dropped. Images reviewed and kept as they are: {len(state.reviewed):,}. "
             f"Rows undone: {undone:,}. Source files are never changed: the curated data is the loaded data with "
             f"these edits applied.")
    parts = [paragraph(escape(facts)), "<h3>Decisions in effect, by action and reason</h3>",
             html_table(edits_by_reason(decisions), formats={"images": count_text}, numeric=("images",)),
             "<h3>Images per emotion and split, before → after</h3>", counts_table_html(inputs),
             figure_html(figures.counts_figure(inputs.table, curated=True))]
    return section("done", "What was done", "".join(parts))


def edits_by_reason(active: Sequence[Edit]) -> pd.DataFrame:
    """One row per (action, reason): how many images, by whom, first and last time (UTC, to the minute)."""
    columns = ["action", "reason", "images", "by", "first", "last"]
    if not active:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame([{"action": edit.action, "reason": edit.reason or "(no reason given)", "author": edit.author,
                           "created_at": edit.created_at, "detail": _edit_detail(edit)} for edit in active])
    frame["action"] = frame["action"] + frame["detail"]
    grouped = frame.groupby(["action", "reason"], sort=False).agg(
        images=("author", "size"), by=("author", lambda authors: ", ".join(sorted(set(authors)))),
        first=("created_at", "min"), last=("created_at", "max")).reset_index()
    for column in ("first", "last"):
        grouped[column] = grouped[column].map(lambda text: str(text)[:16].replace("T", " "))
    return grouped.sort_values("images", ascending=False, kind="stable")[columns]


def _edit_detail(edit: Edit) -> str:
    if edit.action == RELABEL:
        return f" {edit.old_label} → {edit.new_label}"
    if edit.action == REVIEW_OK:
        return " (kept as is)"
    return ""


def counts_table_html(inputs: ReportInputs) -> str:
    return html_table(counts_before_after(count_samples(inputs.audit.dataset), count_samples(inputs.curated)),
                      numeric=tuple(USAGES) + ("all",))


def counts_before_after(before: dict, after: dict) -> pd.DataFrame:
    """Per emotion (rows) and split (columns), `before → after (change)` as text; a total row last."""
    rows = []
    for emotion in (*EMOTIONS, "all"):
        row: dict[str, str] = {"emotion": emotion}
        for usage in (*USAGES, "all"):
            first, second = (_cell(counts, usage, emotion) for counts in (before, after))
            change = f" ({second - first:+,})" if second != first else ""
            row[usage] = f"{first:,} → {second:,}{change}" if change else f"{first:,}"
        rows.append(row)
    return pd.DataFrame(rows, columns=["emotion", *USAGES, "all"])


def _cell(counts: dict, usage: str, emotion: str) -> int:
    if usage == "all":
        return int(counts["total"] if emotion == "all" else counts["by_label"].get(emotion, 0))
    if emotion == "all":
        return int(counts["by_usage"].get(usage, 0))
    return int(counts["by_usage_label"].get(usage, {}).get(emotion, 0))


def changed_section(inputs: ReportInputs) -> str:
    """Chosen runs side by side, their confusion matrices, recall changes, the grid and the leakage note."""
    runs = inputs.runs
    if not runs:
        body = paragraph("No finished training run in this workspace yet. Train the same model on the raw and on the "
                         "curated data (commands in the appendix) and build the report again to see what the "
                         "cleaning changed.") + experiment_grid_html(inputs)
        return section("changed", "What it changed", body)
    table = results.runs_table(runs, inputs.edit_log)
    shown = table[["run", "model", "sampling", "size", "data", "train_images", "epochs", "accuracy",
                   "leak_free_accuracy", "macro_f1", "device"]].rename(columns={
                       "train_images": "training images", "leak_free_accuracy": "leak-free accuracy",
                       "macro_f1": "macro-F1"})
    parts = [paragraph("Scores on PrivateTest (accuracy and leak-free accuracy: share of test images right; "
                       "macro-F1: the mean of the seven emotions' F1). Runs chosen: "
                       + escape(", ".join(record.run_id for record in runs)) + "."),
             html_table(shown, formats={"accuracy": percent_text, "leak-free accuracy": percent_text,
                                        "macro-F1": lambda value: "—" if _missing(value) else f"{value:.3f}",
                                        "training images": count_text},
                        numeric=("training images", "accuracy", "leak-free accuracy", "macro-F1")),
             "<h3>Leakage</h3>", leakage_note(inputs),
             "<h3>Confusion matrices (share of each true emotion, rows sum to 100 %)</h3>",
             '<div class="grid2">' + "".join(
                 figure_html(results.confusion_figure(results.confusion_of(record.metrics), normalized=True,
                                                      title=run_title(record)))
                 for record in runs) + "</div>"]
    if len(runs) >= 2:
        before, after = runs[0], runs[1]
        changes = results.recall_changes(before.metrics, after.metrics)
        parts += [f"<h3>Per-emotion recall: {escape(run_title(before))} → {escape(run_title(after))}</h3>",
                  '<div class="grid2">',
                  figure_html(results.difference_figure(results.confusion_of(before.metrics),
                                                        results.confusion_of(after.metrics),
                                                        title="After − before (row-normalized)")),
                  html_table(changes.rename(columns={"recall_before": "recall before", "recall_after": "recall after",
                                                     "recall_change": "Δ recall", "f1_change": "Δ F1"}),
                             formats={"recall before": percent_text, "recall after": percent_text,
                                      "Δ recall": _signed_points, "Δ F1": _signed_points},
                             numeric=("recall before", "recall after", "Δ recall", "Δ F1")),
                  "</div>",
                  paragraph("Blue cells gained a larger share of their true emotion's images, red ones lost; blue on the "
                            "diagonal is better recall. Δ in percentage points.")]
    parts.append(experiment_grid_html(inputs))
    return section("changed", "What it changed", "".join(parts))


def _signed_points(value: float | None) -> str:
    return "—" if _missing(value) else f"{value * 100:+.1f} pts"


def run_title(record: "RunRecord") -> str:
    config = record.config
    return (f"{config.get('model')} · {config.get('sampling')} · {'raw' if config.get('raw') else 'curated'} "
            f"({record.run_id[-6:]})")


def leakage_note(inputs: ReportInputs) -> str:
    """Each run's accuracy with and without the leaked test images, and why very high claims need a leak check."""
    leaked_total = inputs.audit.summary["leaks"]["test_images_with_training_copy"]
    lines = []
    for record in inputs.runs:
        metrics = record.metrics or {}
        accuracy, leak_free = metrics.get("accuracy"), metrics.get("leak_free_accuracy")
        leaked, clean = metrics.get("leaked_test_images"), metrics.get("leak_free_test_images")
        if leak_free is None or accuracy is None:
            lines.append(f"<li>{escape(run_title(record))}: no leak-free accuracy recorded.</li>")
            continue
        gap = (accuracy - leak_free) * 100
        lines.append(f"<li>{escape(run_title(record))}: {percent_text(accuracy)} on all "
                     f"{count_text(metrics.get('test_images'))} PrivateTest images, {percent_text(leak_free)} on the "
                     f"{count_text(clean)} without a copy in its training data ({count_text(leaked)} leaked images left "
                     f"out); all − leak-free: {gap:+.1f} points.</li>")
    return (f"<ul>{''.join(lines)}</ul>"
            + paragraph(f"The audited data has {leaked_total:,} test images with an exact or near copy in "
                        f"Training before any edit. A model can score those by memory, so its accuracy on the full test split "
                        f"overstates how it reads expressions on new faces. The best single networks reach about "
                        f"{PUBLISHED_ACCURACY:.0%} on PrivateTest; a claim far above that deserves a leak check "
                        f"(leak-free accuracy) before anyone builds on it."))


def experiment_grid_html(inputs: ReportInputs) -> str:
    """The model × sampling grid of an experiment (accuracy and leak-free accuracy), when one exists."""
    title = "<h3>Model × sampling grid</h3>"
    if not inputs.experiment:
        return title + paragraph("Not computed: no experiment (one run per model and sampling, "
                                 "<code>python -m fer_core jobs sweep</code>) in this workspace.")
    from .jobs.experiments import grid_table

    runs = inputs.experiment
    done = sum(1 for record in runs if record.metrics)
    parts = [title, paragraph(escape(f"Experiment {runs[0].experiment_id}: {done:,} of {len(runs):,} runs finished; "
                                     f"PrivateTest scores, a dash where a run has no result."))]
    for metric, label in (("accuracy", "Accuracy"), ("leak_free_accuracy", "Leak-free accuracy")):
        grid = grid_table(runs, metric)
        grid.columns = [" · ".join(str(part) for part in column) if isinstance(column, tuple) else str(column)
                        for column in grid.columns]
        grid = grid.reset_index()
        cells = [column for column in grid.columns if column != "model"]
        parts += [f"<p class=\"caption\">{label} (rows: model; columns: sampling · data)</p>",
                  html_table(grid, formats=dict.fromkeys(cells, percent_text), numeric=cells)]
    return "".join(parts)


def appendix_section(inputs: ReportInputs, settings: ReportSettings) -> str:
    """What the report was built from and the commands that reproduce each part."""
    dataset, audit = inputs.audit.dataset, inputs.audit
    facts = [
        ("data", inputs.data_path),
        ("data fingerprint", dataset.fingerprint),
        ("images", f"{len(dataset):,} (" + ", ".join(f"{u} {c:,}" for u, c in dataset.count_by_usage().items()) + ")"),
        ("unreadable images skipped", f"{len(dataset.problems):,}"),
        ("curated data fingerprint", inputs.curated.fingerprint),
        ("workspace", str(inputs.workspace)),
        ("edit log rows", f"{len(inputs.edit_log):,}"),
        ("near-duplicate threshold", f"{audit.config.near_threshold} bits of 64 (pHash)"
                                     + ("; near copies verified on pixels" if getattr(audit.config, "near_mode", "")
                                        == "verified" else "")),
        ("outlier flag", f"outlier score ≥ {flag_min_score(audit):g}; box plot whiskers at 1.5 × IQR"
                         + ("" if getattr(audit.config, "face_stage", True) else "; face detector skipped")),
        ("thumbnails", f"{settings.thumbnail_factor}× nearest-neighbour enlargement of the 48×48 pixels"),
        ("generated", inputs.generated_at),
    ]
    versions = software_versions(inputs.runs)
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{escape(value)}</td></tr>" for name, value in facts + versions)
    commands = "\n".join(escape(line) for line in reproduce_commands(inputs))
    return section("appendix", "Appendix", f'<table class="facts">{rows}</table>'
                   f"<h3>Commands that reproduce every figure</h3><pre>{commands}</pre>")


def software_versions(runs: Sequence["RunRecord"]) -> list[tuple[str, str]]:
    """Python, the libraries the report used, the code's git commit, and TensorFlow/Keras as the runs recorded."""
    versions = [("python", platform.python_version())]
    for package in VERSION_PACKAGES:
        try:
            versions.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            continue
    commit = _git_commit()
    if commit:
        versions.append(("fer_core commit", commit))
    for key, name in (("tensorflow_version", "tensorflow (runs)"), ("keras_version", "keras (runs)")):
        seen = sorted({str(record.metrics.get(key)) for record in runs if record.metrics and record.metrics.get(key)})
        if seen:
            versions.append((name, ", ".join(seen)))
    return versions


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def audit_options(audit: AuditReport) -> str:
    """The audit's settings as the CLI options that give them (`--near-threshold`, `--near-mode`, `--fast`)."""
    config = audit.config
    options = f"--near-threshold {config.near_threshold}"
    if getattr(config, "near_mode", None):
        options += f" --near-mode {config.near_mode}"
    return options + ("" if getattr(config, "face_stage", True) else " --fast")


def reproduce_commands(inputs: ReportInputs) -> list[str]:
    """Shell lines, with the report's own paths, for the audit, the edit log, each run and this report."""
    data, workspace = shlex.quote(inputs.data_path), shlex.quote(str(inputs.workspace))
    options = audit_options(inputs.audit)
    lines = [
        "# Headline, evidence, box plot: the audit",
        f"python -m fer_core audit {data} --out audit {options} --workspace {workspace}",
        "# What was done: the edit log, and the curated data with counts before/after (manifest.json)",
        f"python -m fer_core edit history --workspace {workspace}",
        f"python -m fer_core export {data} --format csv --out curated.csv --workspace {workspace}",
    ]
    if inputs.runs:
        lines.append("# What it changed: each run (metrics.json holds accuracy, leak-free accuracy, confusion matrix)")
        lines += [train_command(inputs.data_path, record, str(inputs.workspace)) for record in inputs.runs]
    run_ids = " ".join(shlex.quote(record.run_id) for record in inputs.runs)
    lines += ["# This report",
              f"python -m fer_core report {data} --out report.html {options} --workspace {workspace}"
              + (f" --runs {run_ids}" if run_ids else "")]
    return lines


def train_command(data_path: str, record: "RunRecord", workspace: str) -> str:
    """The `train` command line of a run's config (the flags the CLI has; learning rate and patience at their defaults)."""
    config = record.config
    parts = ["python -m fer_core train", shlex.quote(data_path), "--model", str(config.get("model")),
             "--sampling", str(config.get("sampling")), "--epochs", str(config.get("epochs")),
             "--size", str(config.get("size")), "--batch-size", str(config.get("batch_size")),
             "--seed", str(config.get("seed"))]
    if config.get("limit"):
        parts += ["--limit", str(config["limit"])]
    if config.get("raw"):
        parts.append("--raw")
    parts += ["--workspace", shlex.quote(workspace), "--out", shlex.quote(f"runs/{record.run_id}")]
    return " ".join(parts)


REPORT_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #4C78A8; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1000px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 21px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
h3 { font-size: 16px; margin: 24px 0 8px; }
p { margin: 6px 0 10px; }
.meta { color: var(--muted); font-size: 13px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: 10px 12px; white-space: pre-wrap;
      overflow-wrap: anywhere; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; margin: 10px 0 0; list-style: none; }
nav ol li { counter-increment: section; }
nav a { color: var(--accent); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; break-inside: avoid; }
.card .label { font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 28px; font-weight: 650; }
.card .detail { font-size: 13px; }
.card .why { font-size: 13.5px; margin: 6px 0; }
.card .after { font-size: 13px; color: var(--muted); }
.thumbs { display: flex; flex-wrap: wrap; gap: 8px; }
.thumb { margin: 0; width: 144px; break-inside: avoid; }
.thumb img { display: block; image-rendering: pixelated; border: 1px solid var(--line); }
.thumb figcaption { font-size: 11.5px; line-height: 1.3; color: var(--muted); margin-top: 2px; overflow-wrap: anywhere; }
.example { margin: 8px 0 14px; break-inside: avoid; }
.pairs { display: flex; flex-wrap: wrap; gap: 10px 28px; }
.pair .thumbs { flex-wrap: nowrap; }
.caption { font-size: 13px; margin: 2px 0 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; break-inside: avoid; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { width: 230px; font-weight: 600; }
table.facts td { overflow-wrap: anywhere; }
.plot { break-inside: avoid; margin: 6px 0 12px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; align-items: start; }
@page { size: A4; margin: 12mm; }
@media print {
  body { background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  main { max-width: none; padding: 0; zoom: 0.72; }
  nav { display: none; }
  section { break-before: page; }
  section#headline { break-before: auto; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; }
}
"""
