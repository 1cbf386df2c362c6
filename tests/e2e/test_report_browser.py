"""The report in a real browser, offline: Debian's chromium opens the HTML file with every request but the
file itself blocked, and must see no console error, every Plotly figure drawn (its SVG present), every
thumbnail decoded, user text shown as text, and print CSS that starts each section on a new page.

The report is built by the CLI from a small real subset of FER-2013 (its leaks, conflicting groups and
non-faces kept) with the leaks removed, a relabel whose reason is HTML, and two real tiny training runs
(raw and curated) queued as one experiment, so the model × sampling grid shows too. Screenshots of each section go to a tmp folder, or to
$FER_E2E_SCREENSHOTS when set.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_browser import ROOT, browser_page, pytestmark, screenshot_folder  # noqa: F401 (skip mark)
from test_report import copy_real_subset

from fer_core import jobs
from fer_core.curation import edits
from fer_core.dataset.loading import load
from fer_core.jobs.experiments import submit_sweep
from fer_core.training.config import TrainConfig

HTML_REASON = "<b>looks happy</b> <img src=x onerror=alert(1)>"
RUN_TIMEOUT_SECONDS = 300  # two tiny 1-epoch runs on a busy two-core machine
SECTION_IDS = ["headline", "evidence", "done", "changed", "appendix"]


@pytest.fixture(scope="module")
def built_report(real_data, real_cache, tmp_path_factory):
    """(report path, workspace, run records): the CLI's report of a curated real subset with two runs."""
    base = tmp_path_factory.mktemp("report_e2e")
    workspace = base / "workspace"
    subset = copy_real_subset(real_data, real_cache, base / "fer")
    dataset = load(subset, workspace=workspace)
    edits.resolve_leaks(dataset, workspace=workspace)
    label = "sad" if dataset.labels[7] != 4 else "happy"
    edits.relabel(dataset, dataset.ids[7], label, HTML_REASON, author="reviewer", workspace=workspace)
    tiny = TrainConfig(model="cnn", sampling="none", epochs=1, size="tiny", batch_size=32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(jobs.MAX_RUNS_ENV, "2")  # side by side: most of a tiny run is TensorFlow starting
        _, run_ids = submit_sweep(tiny, ["cnn"], ["none"], ["raw", "curated"], subset, workspace)
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not all(jobs.get_run(run_id, workspace).finished for run_id in run_ids):
        assert time.monotonic() < deadline, "tiny training runs did not finish"
        time.sleep(1)
    records = [jobs.get_run(run_id, workspace) for run_id in run_ids]
    assert [record.state for record in records] == ["succeeded", "succeeded"], [r.error for r in records]
    out = base / "report.html"
    result = subprocess.run([sys.executable, "-m", "fer_core", "report", str(subset), "--out", str(out),
                             "--workspace", str(workspace), "--runs", *run_ids, "--fast", "--quiet"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return out, workspace, records


def test_report_opens_offline_with_every_figure_and_image(built_report, tmp_path):
    out, _, records = built_report
    shots = screenshot_folder(tmp_path)
    url = out.resolve().as_uri()
    blocked, errors = [], []
    with browser_page(shots, "report_failure.png") as page:
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", lambda route: route.continue_() if route.request.url == url
                   else (blocked.append(route.request.url), route.abort()))
        page.goto(url, wait_until="load")
        page.wait_for_function("() => document.querySelectorAll('.plotly-graph-div .main-svg').length > 0")

        assert blocked == [] and errors == []
        plots = page.evaluate("() => [...document.querySelectorAll('.plotly-graph-div')].map("
                              "div => div.querySelectorAll('svg.main-svg').length > 0 && div.clientHeight > 100)")
        # box plot, counts before/after, one confusion matrix per run, the difference of the two, and the
        # comparison's recall figure: the sweep's raw and curated runs of one seed pair up as a comparison,
        # which "What it changed" opens with
        assert plots == [True] * (2 + len(records) + 1 + 1)
        assert "Curated vs raw:" in page.locator("section#changed h3").first.inner_text()
        images = page.evaluate("() => [...document.images].map(image => image.complete && image.naturalWidth)")
        assert len(images) >= 20 and all(width == 144 for width in images)
        assert page.evaluate("() => [...document.querySelectorAll('section')].map(s => s.id)") == SECTION_IDS

        # user text is shown as text, never interpreted
        assert page.get_by_text(HTML_REASON, exact=True).count() == 1
        assert page.locator("section#done b").count() == 0

        # the leakage note quotes each run's own metrics
        note = page.locator("section#changed ul").inner_text()
        for record in records:
            metrics = record.metrics
            assert f"{metrics['accuracy']:.1%} on all {metrics['test_images']:,} PrivateTest images" in note
            assert f"{metrics['leak_free_accuracy']:.1%} on the {metrics['leak_free_test_images']:,}" in note

        # the experiment's grid: one model row, raw and curated columns, the runs' own accuracies
        grid = page.locator("section#changed p.caption:has-text('Accuracy (rows') + table").first  # then leak-free
        assert grid.locator("tbody tr").count() == 1
        headers, cells = grid.locator("thead th").all_inner_texts(), grid.locator("tbody td").all_inner_texts()
        assert cells[0] == "cnn" and dict(zip(headers[1:], cells[1:])) == {
            f"none · {'raw' if record.config['raw'] else 'curated'}": f"{record.metrics['accuracy']:.1%}"
            for record in records}

        for section_id in SECTION_IDS:
            page.locator(f"section#{section_id}").screenshot(path=str(shots / f"report_{section_id}.png"))

        page.emulate_media(media="print")
        breaks = page.evaluate("() => [...document.querySelectorAll('section')].map("
                               "s => getComputedStyle(s).breakBefore)")
        assert breaks == ["auto"] + ["page"] * (len(SECTION_IDS) - 1)
        pdf = page.pdf(format="A4", print_background=True)
        assert pdf.startswith(b"%PDF")
        (shots / "report.pdf").write_bytes(pdf)
    assert out.stat().st_size < 15_000_000
    assert Path(out).read_text(encoding="utf-8").count("<script") == 1 + len(plots)
