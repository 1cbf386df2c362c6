"""The report's "What it changed" opens with the curated-vs-raw comparison (issue 23): the interval and the
verdict come before any bare pair of numbers; the figure is the Results page's; a comparison of other data,
or one with a failed run, is not shown as a result."""

import dataclasses

import pytest
from comparisons import record_comparison
from synthetic import make_synthetic, write_folders
from test_results import make_record

from fer_core import report
from fer_core.audit import audit_source
from fer_core.jobs import records
from fer_core.report.outcome import changed_section
from fer_core.views import comparison as views


@pytest.fixture
def audited(tmp_path, workspace):
    data = write_folders(make_synthetic()[0], tmp_path / "fer").resolve()
    return data, audit_source(data, workspace=workspace)


def test_what_it_changed_opens_with_the_comparison_before_any_pair_of_numbers(audited, workspace):
    data, audit = audited
    _, comparison = record_comparison(data, workspace)
    inputs = report.gather_inputs(audit, workspace, (), str(data))
    assert inputs.comparison == comparison
    inputs = dataclasses.replace(inputs, runs=[make_record(run_id="raw-run", raw=True), make_record(run_id="cur-run")])
    html = changed_section(inputs, report.ReportSettings())
    assert html.startswith(f"<h3>Curated vs raw: cnn · none · size tiny · 3 seeds × raw, curated "
                           f"({comparison['experiment_id']})</h3>")
    headline, verdict = views.headline(comparison), comparison["verdict"]
    first_run_table = html.index("Runs chosen")
    assert html.index(headline) < html.index(verdict) < first_run_table
    assert "paired over 3 seeds" in headline and verdict.startswith("curation gained")
    assert html.index("Recall per emotion, curated") < first_run_table  # the figure (JSON escapes the minus)
    assert html.index("NOT A VALID MEASURE: curated accuracy 71.2 %") < first_run_table


def test_a_comparison_with_a_failed_run_or_of_other_data_is_not_a_result(audited, workspace, tmp_path):
    data, audit = audited
    record_comparison(data, workspace, seeds=2, end={(True, 1): (records.FAILED, "out of memory")})
    other = write_folders(make_synthetic(seed=3)[0], tmp_path / "other").resolve()
    record_comparison(other, workspace)
    inputs = report.gather_inputs(audit, workspace, (), str(data))
    assert inputs.comparison is None and inputs.comparison_problem is None
    assert "Curated vs raw" not in changed_section(inputs, report.ReportSettings())
