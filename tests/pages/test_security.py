"""Issue 9, security: S1 localhost only, S2 browser paths stay under the data root, S3 no tracebacks
in the browser; and the Export buttons (item 10)."""

import csv
import io
import json
import tomllib
from pathlib import Path

from test_pages import metrics, open_page, texts

from fer_app import exports, runs
from fer_core import jobs
from fer_core.audit import audit_source
from fer_core.curation import edits

ROOT = Path(__file__).resolve().parents[2]


def streamlit_config() -> dict:
    return tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))


def test_s1_the_server_listens_on_localhost_only_and_the_readme_says_how_to_expose_it():
    assert streamlit_config()["server"]["address"] == "127.0.0.1"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Security" in readme and "--server.address 0.0.0.0" in readme


def test_s3_no_error_details_in_the_browser():
    assert streamlit_config()["client"]["showErrorDetails"] == "none"


def test_s2_a_path_outside_the_data_root_is_refused_before_it_is_looked_at(app_without_data, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("FER_AUDIT_DATA_ROOT", str(root))
    app = open_page(app_without_data, None)
    messages = []
    for outside in ("/etc", "/no/such/folder", str(root / ".." / "elsewhere"), "../elsewhere"):
        app.text_input(key="data_path_input").set_value(outside).run()
        assert not app.exception
        messages.append(texts(app))
        assert "is outside the data folder" in messages[-1] and not app.metric
    # the same answer whether the path exists or not: no file-existence oracle
    assert messages[0].replace("/etc", "X") == messages[1].replace("/no/such/folder", "X")


def test_s2_a_link_inside_the_root_cannot_lead_out(app_without_data, tmp_path, monkeypatch, synthetic_folder):
    root = tmp_path / "data"
    root.mkdir()
    (root / "link").symlink_to(synthetic_folder)
    monkeypatch.setenv("FER_AUDIT_DATA_ROOT", str(root))
    app = open_page(app_without_data, None)
    app.text_input(key="data_path_input").set_value(str(root / "link")).run()
    assert "is outside the data folder" in texts(app) and not app.metric


def test_s2_data_under_the_root_opens(app_without_data, tmp_path, monkeypatch, synthetic_folder):
    monkeypatch.setenv("FER_AUDIT_DATA_ROOT", str(synthetic_folder.parent))
    app = open_page(app_without_data, None)
    app.text_input(key="data_path_input").set_value(synthetic_folder.name).run()
    assert metrics(app)["Images kept"] == "50"


def test_s2_train_refuses_a_data_path_outside_the_root(app, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_AUDIT_DATA_ROOT", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    app = open_page(app, "pages/4_Train.py")
    assert "is outside the data folder" in texts(app)
    app.session_state["data_path"] = str(tmp_path / "elsewhere")
    app.session_state[runs.EPOCHS] = 1
    runs_before = jobs.list_runs()
    app.run()
    assert not app.exception and jobs.list_runs() == runs_before == []


def test_s3_a_damaged_database_is_one_line_in_the_browser(app, workspace):
    (workspace / "fer_audit.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    for page in ("pages/3_Review.py", "pages/1_Duplicates.py", "app.py", "pages/5_Results.py"):
        app = open_page(app, page)
        assert not app.exception
        assert app.error and all("\n" not in error.value and "Traceback" not in error.value for error in app.error)


def test_export_downloads_the_curated_csv_and_its_manifest(app, synthetic_folder, workspace):
    """Item 10: the Overview offers the curated CSV and its manifest; both come from fer_core.curation.export
    (the CSV is prepared in the background first: tests/pages/test_export_panel.py)."""
    app = open_page(app, None)
    assert {button.proto.label for button in app.get("download_button")} == {"Manifest (JSON)"}
    assert app.button(key="export_prepare").label == "Prepare the curated CSV"
    report = audit_source(synthetic_folder, workspace=workspace)
    dropped = report.dataset.ids[-1]
    edits.drop(report.dataset, [dropped], "not a face", workspace=workspace)
    rows = list(csv.DictReader(io.StringIO(exports.curated_csv(report, str(workspace)).decode())))
    assert len(rows) == len(report.dataset) - 1 and list(rows[0]) == ["emotion", "pixels", "Usage", "id"]
    manifest = json.loads(exports.curated_manifest(report, str(workspace)))
    assert [edit["sample_id"] for edit in manifest["applied_edits"]] == [dropped]
    assert manifest["counts"]["after"]["total"] == len(report.dataset) - 1
