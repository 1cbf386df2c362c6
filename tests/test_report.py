"""The stakeholder report: sections in order, self-contained (one Plotly.js, inline PNGs, no requests),
user text escaped, counts that match the audit and the edit log, and the CLI's error conventions.

Built from the synthetic fixture (planted defects, exact counts) and from a small real subset of
FER-2013 that keeps some of its leaks, conflicting groups and non-faces. The browser check and
the runs part (real tiny training runs) are in tests/e2e/test_report_browser.py.
"""

import base64
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import make_synthetic, write_folders

from fer_core import report
from fer_core.audit import AuditConfig, audit_source
from fer_core.cli import main
from fer_core.curation import edits
from fer_core.dataset.loading import load
from fer_core.jobs import RunRecord
from fer_core.labels import EMOTIONS

HTML_REASON = '<b>bold</b> & <script>alert("x")</script>'
DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
SECTION_IDS = [section_id for section_id, _, _ in report.SECTIONS]
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def synthetic_data(tmp_path, workspace):
    """Synthetic folders (planted defects) with two edits: a relabel whose reason is HTML, and a drop."""
    dataset, _ = make_synthetic()
    root = write_folders(dataset, tmp_path / "fer")
    loaded = load(root)
    edits.relabel(loaded, loaded.ids[5], "sad" if loaded.labels[5] != 4 else "happy", HTML_REASON, author="<i>ann</i>")
    edits.drop(loaded, loaded.ids[:2].tolist(), "duplicate of another image")
    return root


def build_cli(data: Path, out: Path, *extra: str) -> str:
    """The report through the CLI, audited like `audit_source`'s default (`--fast`: no face detector)."""
    assert main(["report", str(data), "--out", str(out), "--quiet", "--fast", *extra]) == 0
    return out.read_text(encoding="utf-8")


def decoded_images(text: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in DATA_URI.findall(text)]


def test_synthetic_report_sections_counts_and_self_contained(synthetic_data, workspace, tmp_path):
    text = build_cli(synthetic_data, tmp_path / "report.html")
    audit = audit_source(synthetic_data, workspace=workspace)

    positions = [text.index(f'<section id="{section_id}">') for section_id in SECTION_IDS]
    assert positions == sorted(positions)
    import plotly.offline

    assert text.count(plotly.offline.get_plotlyjs()[:2000]) == 1  # Plotly.js embedded exactly once
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|url\(\s*['\"]?https?:", text)
    assert text.count('class="plotly-graph-div"') == 2  # the box plot and the curated counts; no run yet
    images = decoded_images(text)
    assert images and all(image.size == (144, 144) and image.format == "PNG" for image in images)
    assert len(images) == text.count("<img ")

    headline = text[text.index('<section id="headline">'):text.index('<section id="evidence">')]
    summary = audit.summary
    values = re.findall(r'<div class="value">([^<]*)</div>', headline)
    assert values == [str(summary["images"]), str(summary["exact"]["groups"]), str(summary["near"]["groups"]),
                      str(summary["near"]["conflicting_groups"]), str(summary["leaks"]["test_images_with_training_copy"]),
                      str(summary["outliers"]["flagged"]), "not computed"]
    planted_images = len(make_synthetic()[0])
    assert values[1:5] == ["3", "5", "1", "1"]  # what the fixture planted
    assert f"after the edits: {planted_images - 2} images kept" in headline
    assert "python -m fer_core" not in headline  # a stakeholder's card says what is missing, not what to type
    assert "python -m fer_core mislabels" in text[text.index('<section id="appendix">'):]
    assert "No finished training run" in text and "Not computed: no experiment" in text


def test_user_text_shows_as_text(synthetic_data, tmp_path):
    weird = tmp_path / 'data <b>&"x"'
    shutil.copytree(synthetic_data, weird)
    text = build_cli(weird, tmp_path / "report.html", "--workspace", str(tmp_path / "fresh"))
    assert "<b>&" not in text and "data &lt;b&gt;&amp;&quot;x&quot;" in text

    text = build_cli(synthetic_data, tmp_path / "report.html")
    assert HTML_REASON not in text and "<i>ann</i>" not in text and 'alert("x")</script>' not in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;i&gt;ann&lt;/i&gt;" in text


def test_edits_by_reason_counts_what_is_in_effect(synthetic_data, workspace):
    dataset = load(synthetic_data)
    written = edits.drop(dataset, dataset.ids[10:13].tolist(), "blurred")
    edits.undo(written[0].edit_id, "was fine")
    active = [edit for edit in edits.find_active_edits(edits.read_edits()) if edit.action != edits.UNDO]
    table = report.edits_by_reason(active).set_index("reason")
    assert table.loc["blurred", "images"] == 2
    assert table.loc["duplicate of another image", "images"] == 2
    relabeled = next(edit for edit in active if edit.action == edits.RELABEL)
    assert table.loc[HTML_REASON, "action"] == f"relabel {relabeled.old_label} → {relabeled.new_label}"
    assert table.loc[HTML_REASON, "by"] == "<i>ann</i>"


def test_counts_before_after_per_emotion_and_split():
    before = {"total": 10, "by_usage": {"Training": 8, "PublicTest": 1, "PrivateTest": 1},
              "by_label": {"angry": 6, "happy": 4},
              "by_usage_label": {"Training": {"angry": 5, "happy": 3}, "PublicTest": {"angry": 1, "happy": 0},
                                 "PrivateTest": {"angry": 0, "happy": 1}}}
    after = {"total": 8, "by_usage": {"Training": 6, "PublicTest": 1, "PrivateTest": 1},
             "by_label": {"angry": 3, "happy": 5},
             "by_usage_label": {"Training": {"angry": 2, "happy": 4}, "PublicTest": {"angry": 1, "happy": 0},
                                "PrivateTest": {"angry": 0, "happy": 1}}}
    table = report.counts_before_after(before, after).set_index("emotion")
    assert table.loc["angry", "Training"] == "5 → 2 (-3)"
    assert table.loc["happy", "Training"] == "3 → 4 (+1)"
    assert table.loc["angry", "PublicTest"] == "1"
    assert table.loc["all", "all"] == "10 → 8 (-2)"
    assert table.loc["all", "Training"] == "8 → 6 (-2)"


def run_record(run_id: str, raw: bool) -> RunRecord:
    return RunRecord(run_id=run_id, state="succeeded", backend="local", created_at="2026-01-01T00:00:00+00:00",
                     started_at=None, finished_at=None, data_path="/data", config={"raw": raw}, out_dir="/runs",
                     pid=None, external_id=None, stage=None, error=None, metrics={"accuracy": 0.5})


def test_choose_runs_defaults_to_raw_then_curated_and_names_unknown_ids():
    newest_first = [run_record("c2", False), run_record("r1", True), run_record("c1", False)]
    assert [record.run_id for record in report.choose_runs(newest_first)] == ["r1", "c2"]
    assert [record.run_id for record in report.choose_runs(newest_first, ["c1", "r1", "c1"])] == ["c1", "r1"]
    assert [record.run_id for record in report.choose_runs(newest_first[:1])] == ["c2"]
    assert report.choose_runs([]) == []
    with pytest.raises(ValueError, match="'nope' is not a finished run"):
        report.choose_runs(newest_first, ["c2", "nope"])


@pytest.mark.parametrize("case", ["missing data", "out under a file", "out is a folder", "workspace is a file",
                                  "unknown run", "other dataset"])
def test_cli_errors_exit_2_with_one_line_and_write_nothing(case, synthetic_data, workspace, tmp_path):
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    data = synthetic_data
    extra = []
    if case == "missing data":
        data, expected = tmp_path / "nowhere", "nowhere"
    elif case == "out under a file":
        (out.parent / "file").write_text("x")
        out, expected = out.parent / "file" / "report.html", "is a file, not a folder"
    elif case == "out is a folder":
        out, expected = out.parent, "is a folder"
    elif case == "workspace is a file":
        (out.parent / "ws").write_text("x")
        extra, expected = ["--workspace", str(out.parent / "ws")], "is a file, not a folder"
    elif case == "unknown run":
        extra, expected = ["--runs", "20260101-000000-abcdef"], "20260101-000000-abcdef"
    else:
        other = write_folders(make_synthetic(seed=5)[0], tmp_path / "other")
        data, expected = other, "another dataset"
    before = sorted(path.name for path in out.parent.iterdir()) if out.parent.is_dir() else None
    extra = extra if "--workspace" in extra else ["--workspace", str(workspace), *extra]
    result = subprocess.run([sys.executable, "-m", "fer_core", "report", str(data), "--out", str(out), "--quiet",
                             *extra], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert result.stdout == ""
    if before is not None:
        assert sorted(path.name for path in out.parent.iterdir()) == before


def test_report_replaces_an_existing_file_whole(synthetic_data, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old")
    text = build_cli(synthetic_data, out)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".report.html")] == []


# ---------------------------------------------------------------------------------------------
# A small real subset that keeps some of FER-2013's problems


def copy_real_subset(real_data: Path, real_cache: Path, destination: Path, others: int = 240,
                     leak_pairs: int = 16, conflicting_groups: int = 6, outliers: int = 16) -> Path:
    """Copy a few hundred real images (ids are paths under the data root) into `destination`: leaked test
    images with their Training copies, members of conflicting exact groups, the top non-faces, and a
    seeded sample of the rest, so the report has every kind of evidence to show."""
    audit = audit_source(real_data, AuditConfig(face_stage=False), workspace=real_cache)  # pixel outliers suffice here
    samples = audit.samples
    leaks = audit.leaks
    rows = set(leaks.test_rows[:leak_pairs].tolist()) | set(leaks.train_rows[:leak_pairs].tolist())
    near_leaks = np.flatnonzero(leaks.distances > 0)[:leak_pairs // 2]
    rows |= set(leaks.test_rows[near_leaks].tolist()) | set(leaks.train_rows[near_leaks].tolist())
    for members in audit.exact_groups.loc[audit.exact_groups["conflicting"], "rows"].head(conflicting_groups):
        rows |= set(members)
    rows |= set(np.argsort(-samples["outlier_score"].to_numpy())[:outliers].tolist())
    rng = np.random.default_rng(0)
    for usage, share in (("Training", 0.7), ("PublicTest", 0.15), ("PrivateTest", 0.15)):
        candidates = np.flatnonzero(samples["usage"].to_numpy() == usage)
        rows |= set(rng.choice(candidates, int(others * share), replace=False).tolist())
    for sample_id in samples["id"].to_numpy()[sorted(rows)]:
        target = destination / sample_id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real_data / sample_id, target)
    return destination


def test_real_subset_report_shows_each_kind_of_evidence(real_data, real_cache, tmp_path, workspace):
    subset = copy_real_subset(real_data, real_cache, tmp_path / "fer")
    audit = audit_source(subset, workspace=workspace)
    dataset = audit.dataset
    leaked = dataset.ids[audit.leaks.training_copy_rows()].tolist()
    edits.drop(dataset, leaked, edits.DEFAULT_LEAK_REASON, author="reviewer")

    text = build_cli(subset, tmp_path / "report.html")
    evidence = text[text.index('<section id="evidence">'):text.index('<section id="done">')]
    pairs = report.pick_leak_pairs(audit, report.ReportSettings().leak_pairs)
    assert len(pairs) == 4 and {distance == 0 for _, _, distance in pairs} == {True, False}
    assert evidence.count('class="example pair"') == 4 and "identical pixels" in evidence and "similarity 0." in evidence and "bits apart" not in evidence
    assert evidence.count("Identical pixels,") == 3  # three conflicting exact groups shown
    outliers = evidence[evidence.index("The least face-like"):evidence.index("Average pixel value")]
    assert 5 <= len(decoded_images(outliers)) <= 12
    scores = [float(score) for score in re.findall(r"score (\d+\.\d) ·", outliers)]
    assert scores == sorted(scores, reverse=True)

    done = text[text.index('<section id="done">'):text.index('<section id="changed">')]
    assert f"<td>{edits.DEFAULT_LEAK_REASON}</td><td class=num>{len(leaked):,}</td><td>reviewer</td>" in done
    training_before = int((dataset.usages == "Training").sum())
    assert f"{training_before:,} → {training_before - len(leaked):,} ({-len(leaked):+,})" in done
    headline = text[text.index('<section id="headline">'):text.index('<section id="evidence">')]
    assert "after the edits: 0 leaked test images" in headline


def test_mislabels_show_when_computed(synthetic_data, workspace, tmp_path):
    """A cached mislabel result (as `python -m fer_core mislabels` stores it) fills the headline card and the
    evidence; the probabilities here are chosen so exactly three labels are disputed."""
    pytest.importorskip("cleanlab")
    from fer_core.duplicates.grouping import NO_GROUP
    from fer_core.mislabels.config import MislabelConfig
    from fer_core.mislabels.ranking import rank_label_issues, summarize
    from fer_core.mislabels.results import MislabelResult, cache_key, write_cached_result

    curated = edits.curated_dataset(load(synthetic_data), workspace)
    config = MislabelConfig()
    disputed = [0, 10, 20]
    probabilities = np.full((len(curated), 7), 0.01)
    probabilities[np.arange(len(curated)), curated.labels] = 0.94
    for row in disputed:
        probabilities[row] = 0.01
        probabilities[row, (curated.labels[row] + 1) % 7] = 0.94
    no_group = np.full(len(curated), NO_GROUP)
    table = rank_label_issues(curated, probabilities, no_group, config)
    summary = summarize(table, config, curated, probabilities, [], 0.0)
    write_cached_result(cache_key(curated, config), MislabelResult(table, summary), workspace)

    text = build_cli(synthetic_data, tmp_path / "report.html")
    headline = text[text.index('<section id="headline">'):text.index('<section id="evidence">')]
    assert re.findall(r'<div class="value">([^<]*)</div>', headline)[-1] == str(summary["flagged"])
    assert "computed on the curated data" in headline
    evidence = text[text.index("<h3>Suspected mislabels</h3>"):text.index("<h3>Average pixel value")]
    captions = re.findall(r"<figcaption>filed (\w+) → (\w+) \((\d+)%\)", evidence)
    assert len(captions) == summary["flagged"] and all(given != suggested for given, suggested, _ in captions)
    assert sorted(captions) == sorted((EMOTIONS[curated.labels[row]], EMOTIONS[(curated.labels[row] + 1) % 7], "94")
                                      for row in disputed)


def test_report_page_offers_the_file_and_a_preview(synthetic_data, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FER_DATA", str(synthetic_data))
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    app.switch_page("pages/6_Report.py")
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert "No finished training run yet" in "".join(str(element.value) for element in app.info)
    downloads = app.get("download_button")
    assert len(downloads) == 1 and downloads[0].proto.label == "Download the report (HTML)"
    frames = app.get("iframe")
    assert len(frames) == 1 and "&lt;b&gt;bold&lt;/b&gt;" in str(frames[0].proto)


def test_the_apps_test_set_warnings_reach_the_report(synthetic_data, workspace):
    """Issue 23: the app warned that two runs were scored on 300 vs 327 different test images; the report printed
    their accuracies as if they compared. It now carries every such warning beside the figures."""
    import dataclasses

    from test_results import make_record

    from fer_core.report.outcome import changed_section

    inputs = report.gather_inputs(audit_source(synthetic_data, workspace=workspace), workspace, (), str(synthetic_data))
    raw = make_record(run_id="raw-run", raw=True, test_images=300)
    curated = make_record(run_id="curated-run", test_images=327)
    html = changed_section(dataclasses.replace(inputs, runs=[raw, curated]), report.ReportSettings())
    assert html.count('class="warning"') == 3
    assert "Run raw-run was scored on only 300 PrivateTest images" in html
    assert "The two runs were scored on different PrivateTest images (300 vs 327)" in html


def test_each_figure_says_what_decided_it():
    """Issue 23: "groups within 6 bits of pHash" sat beside the pixel-verified count, and a leak caption said
    "up to 6 = shifted…" above pairs "38 bits apart". In the default mode the words are the pixels' verdict."""
    from fer_core.report.findings import leak_relation

    matches = {frozenset((3, 9)): ("cropped", 0.9751), frozenset((4, 9)): ("near", 0.998)}
    assert leak_relation(3, 9, 38, True, matches) == "cropped, similarity 0.975"
    assert leak_relation(9, 4, 12, True, matches) == "re-encoded or brightened, similarity 0.998"
    assert leak_relation(5, 9, 0, True, matches) == "identical pixels"
    assert leak_relation(5, 9, 4, False, matches) == "4 bits apart"
    assert "through an exact copy" in leak_relation(7, 9, 20, True, matches)


def test_the_headline_names_how_near_copies_were_found(synthetic_data, workspace):
    audit = audit_source(synthetic_data, workspace=workspace)
    html = report.build_report(audit, workspace, (), str(synthetic_data))
    headline = html[html.index('id="headline"'):html.index('id="evidence"')]
    assert "confirmed on pixels" in headline and "bits of pHash" not in headline
