"""fer_core.review: the page logic behind the app, on the synthetic dataset with planted defects."""

import ast
from pathlib import Path

import numpy as np
import pytest

from fer_core import edits, review
from fer_core.audit import run_audit
from synthetic import make_synthetic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    dataset, planted = make_synthetic()
    return run_audit(dataset, workspace=tmp_path_factory.mktemp("review_ws")), planted


def table_after(report, workspace):
    return review.annotate(report, edits.read_state(workspace))


def test_escape_markdown_shows_text_verbatim():
    assert review.escape_markdown("[x](http://a) _b_ <i>") == r"\[x\]\(http\://a\) \_b\_ \<i\>"
    assert review.escape_markdown("plain text") == "plain text"


def test_short_id_and_pages():
    assert review.short_id("train/angry/Training_10118481.jpg") == "10118481"
    assert review.short_id("row:12") == "row:12"
    assert review.page_count(0, 10) == 1 and review.page_count(21, 10) == 3
    assert review.page_slice(21, 3, 10) == slice(20, 21)
    assert review.page_slice(21, 99, 10) == slice(20, 21)
    with pytest.raises(ValueError, match="page size"):
        review.page_slice(5, 1, 0)


def test_upscale_is_nearest_neighbour():
    image = np.arange(4, dtype=np.uint8).reshape(2, 2)
    big = review.upscale(image, 3)
    assert big.shape == (6, 6) and (big[:3, :3] == 0).all() and (big[3:, 3:] == 3).all()


def test_filters_find_the_planted_groups(audited, workspace):
    report, planted = audited
    table = table_after(report, workspace)
    ids_of = lambda groups: [set(members) for members in groups["members"]]  # noqa: E731
    assert set(planted.conflicting_copy) in ids_of(review.filter_groups(report, table, "near", conflicting_only=True))
    assert ids_of(review.filter_groups(report, table, "near", cross_split_only=True)) == [set(planted.cross_split_copy)]
    assert len(review.filter_groups(report, table, "exact")) == 3
    assert len(review.filter_groups(report, table, "near", usages=("PrivateTest",))) == 1
    with pytest.raises(ValueError, match="group kind"):
        review.filter_groups(report, table, "fuzzy")


def test_curated_summary_follows_the_edits(audited, workspace):
    report, planted = audited
    dataset = report.dataset
    before = review.curated_summary(report, table_after(report, workspace), 0)
    assert before["images_after"] == len(dataset) and before["leaked_test_images_after"] == 1
    assert before["conflicting_groups_after"] == before["conflicting_groups"] >= 1

    edits.resolve_leaks(dataset, hashes=report.hashes, workspace=workspace)
    edits.resolve_group(dataset, planted.conflicting_copy, "relabel", "agree", emotion="angry", workspace=workspace)
    edits.mark_group_reviewed(dataset, planted.exact_copy, "fine", workspace=workspace)
    after_table = table_after(report, workspace)
    after = review.curated_summary(report, after_table, len(edits.read_edits(workspace)))
    assert after["images_after"] == len(dataset) - 1 and after["dropped"] == 1
    assert after["leaked_test_images_after"] == 0
    assert after["conflicting_groups_after"] == 0 and after["relabeled"] >= 1
    assert after["exact_groups_after"] == before["exact_groups_after"] - 2  # reviewed and leak-dropped close; relabeled stays open
    assert review.filter_groups(report, after_table, "near", cross_split_only=True).empty
    assert len(review.filter_groups(report, after_table, "near", open_only=False, cross_split_only=False)) == len(
        report.near_groups)


def test_filter_samples_by_flag_and_rank_outliers(audited, workspace):
    report, planted = audited
    dataset = report.dataset
    table = table_after(report, workspace)
    leak_rows = review.filter_samples(table, flags=("leak",))
    assert set(dataset.ids[leak_rows]) == set(planted.cross_split_copy)
    assert set(dataset.ids[review.rank_outliers(table)[:2]]) == {planted.blank, planted.text}
    edits.drop(dataset, [planted.blank], "not a face", workspace=workspace)
    table = table_after(report, workspace)
    assert planted.blank not in set(dataset.ids[review.rank_outliers(table)])
    assert set(dataset.ids[review.filter_samples(table, flags=("edited",), show_dropped=True)]) == {planted.blank}
    assert len(review.filter_samples(table)) == len(dataset) - 1
    with pytest.raises(ValueError, match="unknown flag"):
        review.filter_samples(table, flags=("blurry",))


def test_box_plot_points_carry_their_rows(audited, workspace):
    report, _ = audited
    table = table_after(report, workspace)
    figure = review.box_plot_figure(table, show_all_points=True)
    points = figure.data[-1]
    rows = review.selected_rows([{"customdata": row} for row in points.customdata])
    assert review.selected_rows([{"customdata": [3]}, {"customdata": 3}, {"customdata": {"bdata": "x"}}, {}]) == [3]
    assert sorted(rows) == list(range(len(table)))
    assert len(review.counts_figure(table).data) == 3


def test_group_members_distances_and_undoable_batches(audited, workspace):
    report, planted = audited
    group = review.filter_groups(report, table_after(report, workspace), "near", cross_split_only=True).iloc[0]
    members = review.group_members(report, table_after(report, workspace), group)
    assert members["distance"].iloc[0] == 0 and set(members["id"]) == set(planted.cross_split_copy)
    edits.drop(report.dataset, [planted.text], "text card", workspace=workspace)
    batches = review.undoable_batches(edits.history(workspace))
    assert len(batches) == 1 and "drop × 1" in next(iter(batches.values()))


def test_only_ui_imports_streamlit_and_pages_hold_no_array_logic():
    for module in (ROOT / "fer_core").rglob("*.py"):
        if module.name != "ui.py":
            assert "import streamlit" not in module.read_text(), module
    for page in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(page.read_text()))
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
        assert not imported & {"numpy", "pandas"}, page
        assert "unsafe_allow_html" not in page.read_text(), page
