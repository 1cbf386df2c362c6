"""The report's middle sections: what was done (decisions in effect, counts before → after) and what it
changed (the curated-vs-raw comparison with its intervals and verdict first, then runs side by side,
confusion matrices, recall changes, the experiment grid, the leakage note)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pandas as pd

from fer_core.curation.export import count_samples
from fer_core.curation.replay import (RELABEL, REVIEW_OK, UNDO, Edit, find_active_edits, find_edits_in_effect,
                                      replay_edits)
from fer_core.labels import USAGES
from fer_core.report.blocks import count_text, escape, figure_html, html_table, is_missing, paragraph, percent_text
from fer_core.report.inputs import ReportInputs, ReportSettings
from fer_core.views import comparison as comparisons
from fer_core.views import confusion, figures, predictions
from fer_core.views import runs as results

if TYPE_CHECKING:
    from fer_core.jobs import RunRecord

PUBLISHED_ACCURACY = 0.73  # best single networks on FER-2013 (VGG variants, ~72-73 % on PrivateTest)


def done_section(inputs: ReportInputs, settings: ReportSettings) -> str:
    """The edits in effect by action and reason, who and when, and the data before → after."""
    log = inputs.edit_log
    if not log:
        return (paragraph(
            "No edit has been made in this workspace: the data below is the data as loaded.")
            + counts_table_html(inputs))
    decisions = [edit for edit in find_active_edits(log) if edit.action != UNDO]  # edits in effect + review marks
    undone = sum(1 for edit in log if edit.action != UNDO) - len(decisions)
    state = replay_edits(log)
    facts = (f"The edit log holds {len(log):,} rows. Edits in effect (relabels, drops and restores not undone): "
             f"{len(find_edits_in_effect(log)):,} (images relabeled now: {len(state.labels):,}; dropped now: "
             f"{len(state.dropped):,}). Images reviewed and kept as they are: {len(state.reviewed):,}. "
             f"Rows undone: {undone:,}. Source files are never changed: the curated data is the loaded data with "
             f"these edits applied.")
    parts = [paragraph(escape(facts)), "<h3>Decisions in effect, by action and reason</h3>",
             html_table(edits_by_reason(decisions), formats={"images": count_text}, numeric=("images",)),
             "<h3>Images per emotion and split, before → after</h3>", counts_table_html(inputs),
             figure_html(figures.counts_figure(inputs.table, curated=True))]
    return ("".join(parts))


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
    for emotion in (*before["by_label"], "all"):  # the dataset's label set, in its order
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


def changed_section(inputs: ReportInputs, settings: ReportSettings) -> str:
    """The comparison (interval and verdict first), then the chosen runs side by side, their confusion matrices,
    recall changes, the grid and the leakage note."""
    runs, opening = inputs.runs, comparison_html(inputs)
    if not runs:
        body = paragraph("No finished training run in this workspace yet. Train the same model on the raw and on the "
                         "curated data (commands in the appendix) and build the report again to see what the "
                         "cleaning changed.") + experiment_grid_html(inputs)
        return opening + body
    table = results.runs_table(runs, inputs.edit_log)
    shown = table[["run", "model", "sampling", "size", "data", "train_images", "epochs", "accuracy",
                   "leak_free_accuracy", "macro_f1", "device"]].rename(columns={
                       "train_images": "training images", "leak_free_accuracy": "leak-free accuracy",
                       "macro_f1": "macro-F1"})
    parts = [opening, "<h3>Runs</h3>" if opening else "",
             paragraph("Scores on PrivateTest (accuracy and leak-free accuracy: share of test images right; "
                       "macro-F1: the mean of the emotions' F1). Runs chosen: "
                       + escape(", ".join(record.run_id for record in runs)) + "."),
             html_table(shown, formats={"accuracy": percent_text, "leak-free accuracy": percent_text,
                                        "macro-F1": lambda value: "—" if is_missing(value) else f"{value:.3f}",
                                        "training images": count_text},
                        numeric=("training images", "accuracy", "leak-free accuracy", "macro-F1")),
             *[f'<p class="warning">{escape(warning)}</p>' for warning in predictions.test_set_warnings(runs)],
             "<h3>Leakage</h3>", leakage_note(inputs),
             "<h3>Confusion matrices (share of each true emotion, rows sum to 100 %)</h3>",
             '<div class="grid2">' + "".join(
                 figure_html(confusion.confusion_figure(confusion.confusion_of(record.metrics), normalized=True,
                                                      title=run_title(record)))
                 for record in runs) + "</div>"]
    if len(runs) >= 2:
        before, after = runs[0], runs[1]
        changes = confusion.recall_changes(before.metrics, after.metrics)
        parts += [f"<h3>Per-emotion recall: {escape(run_title(before))} → {escape(run_title(after))}</h3>",
                  '<div class="grid2">',
                  figure_html(confusion.difference_figure(confusion.confusion_of(before.metrics),
                                                        confusion.confusion_of(after.metrics),
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
    return ("".join(parts))


def comparison_html(inputs: ReportInputs) -> str:
    """Curated vs raw over seeds: the judged difference with its 95 % intervals and the verdict, recall per
    emotion, the arms (mean ± sd) and the circular figure under its warning; empty without a comparison."""
    comparison = inputs.comparison
    if comparison is None:
        return "" if inputs.comparison_problem is None else (
            "<h3>Curated vs raw</h3>" + f'<p class="warning">{escape(inputs.comparison_problem)}</p>')
    title = f"Curated vs raw: {comparisons.describe_comparison(comparison)} ({comparison['experiment_id']})"
    return "".join([
        f"<h3>{escape(title)}</h3>",
        (f'<div class="card"><div class="label">{escape(comparisons.headline_label(comparison))}</div>'
         f'<div class="value">{escape(comparisons.headline(comparison))}</div>'
         f'<div class="detail">{escape(comparisons.bootstrap_line(comparison))}</div>'
         f'<p class="why">Verdict: {escape(comparison["verdict"])}</p></div>'),
        figure_html(comparisons.recall_difference_figure(comparison)),
        html_table(comparisons.arm_table(comparison)),
        f'<p class="caption">{escape(comparisons.arm_table_note(comparison))}</p>',
        f'<p class="warning">{escape(comparisons.circular_text(comparison))}</p>'])


def _signed_points(value: float | None) -> str:
    return "—" if is_missing(value) else f"{value * 100:+.1f} pts"


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
    from fer_core.jobs.experiments import grid_table

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
