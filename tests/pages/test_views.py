"""fer_core.views.audit_table, figures and overview: the page logic behind the app, on the synthetic dataset with planted defects."""

import re

import numpy as np
import pytest
from synthetic import make_synthetic

from fer_core.audit import run_audit
from fer_core.curation import edits
from fer_core.curation.replay import count_edits_in_effect
from fer_core.views import audit_table as views
from fer_core.views import duplicate_groups, figures, image_tiles, outlier_list, overview


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    dataset, planted = make_synthetic()
    return run_audit(dataset, workspace=tmp_path_factory.mktemp("review_ws")), planted


def table_after(report, workspace):
    return views.annotate(report, edits.replay_edits(edits.read_edits(workspace)))


def test_escape_markdown_shows_text_verbatim():
    assert image_tiles.escape_markdown("[x](http://a) _b_ <i>") == r"\[x\]\(http\://a\) \_b\_ \<i\>"
    assert image_tiles.escape_markdown("plain text") == "plain text"


def test_short_id_and_pages():
    assert image_tiles.short_id("train/angry/Training_10118481.jpg") == "10118481"
    assert image_tiles.short_id("row:12") == "row:12"
    assert image_tiles.page_count(0, 10) == 1 and image_tiles.page_count(21, 10) == 3
    assert image_tiles.page_slice(21, 3, 10) == slice(20, 21)
    assert image_tiles.page_slice(21, 99, 10) == slice(20, 21)
    with pytest.raises(ValueError, match="page size"):
        image_tiles.page_slice(5, 1, 0)


def test_upscale_is_nearest_neighbour():
    image = np.arange(4, dtype=np.uint8).reshape(2, 2)
    big = image_tiles.upscale(image, 3)
    assert big.shape == (6, 6) and (big[:3, :3] == 0).all() and (big[3:, 3:] == 3).all()


def test_filters_find_the_planted_groups(audited, workspace):
    report, planted = audited
    table = table_after(report, workspace)
    ids_of = lambda groups: [set(members) for members in groups["members"]]  # noqa: E731
    assert set(planted.conflicting_copy) in ids_of(duplicate_groups.filter_groups(report, table, "near", conflicting_only=True))
    assert ids_of(duplicate_groups.filter_groups(report, table, "near", cross_split_only=True)) == [set(planted.cross_split_copy)]
    assert len(duplicate_groups.filter_groups(report, table, "exact")) == 3
    assert len(duplicate_groups.filter_groups(report, table, "near", usages=("PrivateTest",))) == 1
    with pytest.raises(ValueError, match="group kind"):
        duplicate_groups.filter_groups(report, table, "fuzzy")


def test_curated_summary_follows_the_edits(audited, workspace):
    report, planted = audited
    dataset = report.dataset
    before = views.curated_summary(report, table_after(report, workspace), 0)
    assert before["images_after"] == len(dataset) and before["leaked_test_images_after"] == 1
    assert before["conflicting_groups_after"] == before["conflicting_groups"] >= 1

    edits.resolve_leaks(dataset, hashes=report.hashes, workspace=workspace)
    edits.resolve_group(dataset, planted.conflicting_copy, "relabel", "agree", emotion="angry", workspace=workspace)
    edits.mark_group_reviewed(dataset, planted.exact_copy, "fine", workspace=workspace)
    after_table = table_after(report, workspace)
    after = views.curated_summary(report, after_table, count_edits_in_effect(edits.read_edits(workspace)))
    assert after["images_after"] == len(dataset) - 1 and after["dropped"] == 1
    assert after["leaked_test_images_after"] == 0
    assert after["conflicting_groups_after"] == 0 and after["relabeled"] >= 1
    assert after["exact_groups_after"] == before["exact_groups_after"] - 2  # reviewed and leak-dropped close; relabeled stays open
    assert duplicate_groups.filter_groups(report, after_table, "near", cross_split_only=True).empty
    assert len(duplicate_groups.filter_groups(report, after_table, "near", open_only=False, cross_split_only=False)) == len(
        report.near_groups)


def test_filter_samples_by_flag_and_rank_outliers(audited, workspace):
    report, planted = audited
    dataset = report.dataset
    table = table_after(report, workspace)
    leak_rows = views.filter_samples(table, flags=("leak",))
    assert set(dataset.ids[leak_rows]) == set(planted.cross_split_copy)
    assert set(dataset.ids[outlier_list.rank_outliers(table)[:2]]) == {planted.blank, planted.text}
    edits.drop(dataset, [planted.blank], "not a face", workspace=workspace)
    table = table_after(report, workspace)
    assert planted.blank not in set(dataset.ids[outlier_list.rank_outliers(table)])
    assert set(dataset.ids[views.filter_samples(table, flags=("edited",), show_dropped=True)]) == {planted.blank}
    assert len(views.filter_samples(table)) == len(dataset) - 1
    with pytest.raises(ValueError, match="unknown flag"):
        views.filter_samples(table, flags=("blurry",))


def test_box_plot_points_carry_their_rows(audited, workspace):
    report, _ = audited
    table = table_after(report, workspace)
    figure = figures.box_plot_figure(table, show_all_points=True)
    points = figure.data[-1]
    rows = image_tiles.selected_rows([{"customdata": row} for row in points.customdata])
    assert image_tiles.selected_rows([{"customdata": [3]}, {"customdata": 3}, {"customdata": {"bdata": "x"}}, {}]) == [3]
    assert sorted(rows) == list(range(len(table)))
    assert len(figures.counts_figure(table).data) == 3


def test_group_members_distances_and_undoable_batches(audited, workspace):
    report, planted = audited
    group = duplicate_groups.filter_groups(report, table_after(report, workspace), "near", cross_split_only=True).iloc[0]
    members = duplicate_groups.group_members(report, table_after(report, workspace), group)
    assert members["distance"].iloc[0] == 0 and set(members["id"]) == set(planted.cross_split_copy)
    edits.drop(report.dataset, [planted.text], "text card", workspace=workspace)
    batches = image_tiles.undoable_batches(edits.history(workspace))
    assert len(batches) == 1 and "drop × 1" in next(iter(batches.values()))


def test_flags_follow_the_curation(audited, workspace):
    """Issue 9 item 4: a resolved conflicting group is no longer 'conflict' or 'duplicate'; a removed leak
    no longer 'leak'; a reviewed outlier no longer 'outlier'."""
    report, planted = audited
    dataset = report.dataset
    table = table_after(report, workspace)
    conflict = set(dataset.ids[views.filter_samples(table, flags=("conflict",))])
    assert set(planted.conflicting_copy) <= conflict
    edits.resolve_group(dataset, planted.conflicting_copy, "relabel", "agree", emotion="angry", workspace=workspace)
    table = table_after(report, workspace)
    assert not set(planted.conflicting_copy) & set(dataset.ids[views.filter_samples(table, flags=("conflict",))])
    assert set(planted.conflicting_copy) <= set(dataset.ids[views.filter_samples(table, flags=("duplicate",))])
    edits.resolve_group(dataset, planted.conflicting_copy, "keep_one", "one is enough", workspace=workspace)
    table = table_after(report, workspace)
    assert not set(planted.conflicting_copy) & set(dataset.ids[views.filter_samples(table, flags=("duplicate",))])
    edits.resolve_leaks(dataset, hashes=report.hashes, workspace=workspace)
    assert len(views.filter_samples(table_after(report, workspace), flags=("leak",))) == 0
    edits.mark_group_reviewed(dataset, [planted.text], "fine", workspace=workspace)
    outliers = set(dataset.ids[views.filter_samples(table_after(report, workspace), flags=("outlier",))])
    assert planted.text not in outliers and planted.blank in outliers
    assert views.flag_names() == ("duplicate", "conflict", "leak", "outlier", "edited")


def test_edits_in_effect_leave_out_undone_edits(audited, workspace):
    """Issue 9 item 4: the Overview counts edits in effect, not rows of the log."""
    report, planted = audited
    written = edits.drop(report.dataset, [planted.text, planted.blank], "not faces", workspace=workspace)
    edits.undo_batch(written[0].batch_id, "oops", workspace=workspace)
    edits.drop(report.dataset, [planted.text], "not a face", workspace=workspace)
    log = edits.read_edits(workspace)
    summary = views.curated_summary(report, table_after(report, workspace), count_edits_in_effect(log))
    assert len(log) == 5 and summary["edits"] == 1 and summary["dropped"] == 1
    cards = {card.label: card for card in overview.overview_cards(summary, report.summary)}
    assert cards["Edits in effect"].value == 1


def test_overview_labels_exact_and_near_and_reconciles_leaks(audited, workspace):
    """Issue 9 item 7."""
    report, _ = audited
    summary = views.curated_summary(report, table_after(report, workspace), 0)
    labels = [card.label for card in overview.overview_cards(summary, report.summary)]
    assert "Exact groups, labels differ" in labels and "Near groups, labels differ" in labels
    assert all("xact" in label or "ear" in label for label in labels if "group" in label.lower())
    assert overview.leak_reconciliation(summary) == (
        "1 test image has an exact or near copy in Training. Removing the leaks (Duplicates page) drops that "
        "Training copy and keeps the test image.")
    text = overview.leak_reconciliation({**summary, "leaked_test_images_after": 1077, "training_copies_after": 1558})
    assert text.startswith("1,077 test images have at least one exact or near copy in Training; those copies are "
                           "1,558 Training images") and "drops the 1,558 Training copies and keeps every test" in text


def test_a_detectors_finding_reaches_the_overview_and_the_report_by_its_registration_alone(audited, workspace,
                                                                                          monkeypatch):
    """Issue 21: a detector declares its figures once (its Finding); the Overview's cards, the curated
    summary and the report's headline all pick it up with no other change."""
    from fer_core import detectors
    from fer_core.findings import Finding
    from fer_core.report import render_report
    from fer_core.report.inputs import gather_inputs

    report, _ = audited
    finding = Finding("blurry", "Blurry images open", lambda summary: "Images too blurred to read",
                      lambda summary: 5, lambda report, table: 3, "still blurry", "Blurry images",
                      lambda summary: "images with no sharp edge", "A blurred face hides its expression.")
    extra = detectors.Detector("blur", lambda *args: None, findings=(finding,))
    original = detectors.registered_detectors
    monkeypatch.setattr(detectors, "registered_detectors", lambda: original() + (extra,))
    summary = views.curated_summary(report, table_after(report, workspace), 0)
    assert summary["blurry"] == 5 and summary["blurry_after"] == 3
    cards = {card.label: card for card in overview.overview_cards(summary, report.summary)}
    assert cards["Blurry images open"].value == 3 and cards["Blurry images open"].change == -2
    assert "Images too blurred to read; the audit found 5." == cards["Blurry images open"].help
    html = render_report(gather_inputs(report, workspace, (), "synthetic"))
    assert "Blurry images" in html and "A blurred face hides its expression." in html


def test_overview_says_how_near_copies_were_found(audited, workspace):
    """Issue 23: in the default mode the near figures were confirmed on pixels; no pHash threshold is named."""
    report, _ = audited
    summary = views.curated_summary(report, table_after(report, workspace), 0)
    helps = {card.label: card.help for card in overview.overview_cards(summary, report.summary)}
    assert report.summary["near"]["mode"] == "verified"
    assert "confirmed on pixels" in helps["Near-copy groups open"] and "bits" not in helps["Near-copy groups open"]
    hash_summary = {**report.summary, "near": {**report.summary["near"], "mode": "hash"}}
    helps = {card.label: card.help for card in overview.overview_cards(summary, hash_summary)}
    assert f"within {report.config.near_threshold} bits of pHash" in helps["Near groups, labels differ"]


def test_groups_are_numbered_from_one_and_chains_explained(audited, workspace):
    """Issue 9 item 6."""
    report, _ = audited
    group = duplicate_groups.filter_groups(report, table_after(report, workspace), "near").iloc[0]
    assert duplicate_groups.group_title(group).startswith(f"Group {int(group['group']) + 1} ·")
    assert "more than 6 bits apart" in duplicate_groups.chain_note(6)


def test_resolved_group_can_be_kept_in_view(audited, workspace):
    report, planted = audited
    edits.resolve_group(report.dataset, planted.exact_copy, "keep_one", "dup", workspace=workspace)
    table = table_after(report, workspace)
    shown = duplicate_groups.filter_groups(report, table, "exact")
    group = next(g for g, m in zip(report.exact_groups["group"], report.exact_groups["members"])
                 if set(m) == set(planted.exact_copy))
    assert group not in set(shown["group"])
    assert group in set(duplicate_groups.filter_groups(report, table, "exact", keep=frozenset({group}))["group"])


def test_outlier_details_name_score_and_signals(audited, workspace):
    """Issue 9 item 3: each tile says its score and the signals that raised it."""
    report, planted = audited
    table = table_after(report, workspace)
    rows = [report.dataset.index_of(planted.blank), report.dataset.index_of(planted.text)]
    details = outlier_list.outlier_details(table, rows)
    assert details[rows[0]].startswith("score ") and details[rows[0]].endswith("blank")
    assert details[rows[1]].startswith("score ") and " · " in details[rows[1]]


def test_overall_box_plot_beside_the_per_emotion_one(audited, workspace):
    """Issue 9 item 3: the study's overall box plot, with selectable points beyond its whiskers."""
    report, _ = audited
    table = table_after(report, workspace)
    figure = figures.overall_box_figure(table, show_all_points=True)
    assert figure.data[0].type == "box" and len(figure.data[-1].customdata) == len(table)
    beyond = figures.overall_box_figure(table).data[-1].customdata
    assert 0 < len(beyond) < len(table)


def test_box_plots_ship_at_most_their_point_cap_flagged_first(audited, workspace, monkeypatch):
    """Issue 25: 'plot every image' of a million images would ship a million points to the browser."""
    report, _ = audited
    table = table_after(report, workspace)
    monkeypatch.setattr(figures, "MAX_PLOTTED_POINTS", 10)
    for figure in (figures.box_plot_figure(table, show_all_points=True),
                   figures.overall_box_figure(table, show_all_points=True)):
        rows = list(figure.data[-1].customdata)
        assert len(rows) == 10 and rows == sorted(rows)
        assert set(np.flatnonzero(table["outlier"].to_numpy())) <= set(rows)
        assert f"(10 of {len(table):,} images plotted)" in figure.layout.title.text


def test_count_test_images(audited):
    report, planted = audited
    assert views.count_test_images(report.dataset, planted.cross_split_copy) == 1
    assert views.test_ids(report.dataset, planted.exact_copy) == []


def test_undo_picker_names_each_action_of_a_mixed_batch(audited, workspace):
    """Issue 24: a batch of drops and a relabel (keep one and relabel it) was named after its first action
    only ("drop × 2"); each action is named with its own count."""
    report, planted = audited
    edits.resolve_group(report.dataset, planted.conflicting_copy, "keep_one", "agree",
                        keep_id=planted.conflicting_copy[0], emotion="surprise", workspace=workspace)
    edits.drop(report.dataset, [planted.text, planted.blank], "not faces", workspace=workspace)
    labels = list(image_tiles.undoable_batches(edits.history(workspace)).values())
    assert " drop × 2 · " in labels[0]  # newest first; one action alone reads as before
    assert "drop × 1, relabel × 1" in labels[1] or "relabel × 1, drop × 1" in labels[1]


def test_verified_groups_say_what_decided_them_not_phash_bits(audited, workspace):
    """Issue 24: near groups confirmed on pixels were captioned "N bits from #1" and titled "up to 38 bits
    apart", while pixels (the pair's kind and similarity) decided them; a member not paired with #1 (a
    chain) names the member it matches."""
    import dataclasses

    import pandas as pd

    report, planted = audited
    table = table_after(report, workspace)
    shifted = next(group for _, group in report.near_groups.iterrows() if "shifted" in group["kinds"])
    members = duplicate_groups.group_members(report, table, shifted)
    assert members["match"].tolist()[0] == ""
    assert re.fullmatch(r"vs #1: shifted, similarity 0\.\d{3}|vs #1: shifted, similarity 1\.000", members["match"][1])
    title = duplicate_groups.group_title(shifted, report)
    assert "similarity" in title and "bits" not in title
    assert "bits apart" in duplicate_groups.group_title(shifted)  # without the audit's pairs: pHash, as before

    rows = [0, 1, 2]  # a chain: #2 matches #1 shifted, #3 matches only #2, mirrored
    chain = pd.Series({"group": 7, "size": 3, "rows": rows, "kinds": ["shifted", "mirrored"], "max_distance": 38})
    pairs = pd.DataFrame({"row_a": [0, 1], "row_b": [1, 2], "kind": ["shifted", "mirrored"],
                          "similarity": [0.971, 0.9334]})
    chained = dataclasses.replace(report, near_pairs=pairs)
    assert duplicate_groups.group_members(chained, table, chain)["match"].tolist() == [
        "", "vs #1: shifted, similarity 0.971", "vs #2: mirrored, similarity 0.933"]
    assert duplicate_groups.group_title(chain, chained) == (
        "Group 8 · 3 images · shifted, mirrored · similarity 0.933–0.971")
    hashed = dataclasses.replace(report, config=dataclasses.replace(report.config, near_mode="hash"))
    assert duplicate_groups.group_members(hashed, table, chain)["match"].tolist()[1].endswith("bits from #1")
    assert duplicate_groups.group_title(chain, hashed).endswith("up to 38 bits apart")


def test_faded_greys_an_image_out_and_keeps_it_recognisable():
    """Issue 24: dropped images in groups were marked only by a word; they are shown greyed out."""
    image = np.tile(np.arange(0, 240, 5, dtype=np.uint8), (48, 1))
    grey = image_tiles.faded(image)
    assert grey.shape == image.shape and grey.dtype == np.uint8
    assert grey.mean() > image.mean() + 50 and grey.std() < image.std() / 2  # lighter, flatter
    assert np.corrcoef(grey.ravel(), image.ravel())[0, 1] > 0.99  # the same picture
