"""AppTest: the Overview's curated CSV export (issue 24): written in the background with a progress bar and the
time left, then offered for download with its size; the file has a last `id` column."""

import csv
import io
import re
import threading
import time

from test_pages import open_page, texts

from fer_core.curation import export


def test_the_csv_is_prepared_with_progress_and_time_left_then_downloaded(app, monkeypatch):
    """Issue 24: the CSV download took 1–2 minutes on FER-2013 with nothing on screen; it is now written in
    the background with "N/M images · about N s left", then its download button says its size."""
    release = threading.Event()
    write = export.write_csv

    def slow_write(dataset, path, progress=None):  # half-way, then wait for the test
        progress(export.EXPORT_STAGE, len(dataset) // 2, len(dataset))
        assert release.wait(30)
        write(dataset, path, progress)

    monkeypatch.setattr(export, "write_csv", slow_write)
    app = open_page(app, None)
    assert not [button for button in app.get("download_button") if button.proto.label.startswith("Curated data")]
    app.button(key="export_prepare").click().run()
    deadline = time.monotonic() + 30
    while "Writing the curated CSV" not in str([bar.proto.text for bar in app.get("progress")]):
        assert time.monotonic() < deadline, "no progress bar"
        time.sleep(0.2)
        app.run()
    text = next(bar.proto.text for bar in app.get("progress") if "Writing the curated CSV" in bar.proto.text)
    assert re.search(r"\d+/\d+ images · (about \d+ (s|min) left|less than a second left)$", text), text
    assert not [button for button in app.button if button.key == "export_prepare"]  # one build at a time

    release.set()
    while not [button for button in app.get("download_button") if button.proto.label.startswith("Curated data")]:
        assert time.monotonic() < deadline, "the download never came"
        time.sleep(0.2)
        app.run()
    assert not app.error, [error.value for error in app.error]
    label = next(button.proto.label for button in app.get("download_button")
                 if button.proto.label.startswith("Curated data"))
    assert label.startswith("Curated data (CSV, ") and label.endswith(" MB)")
    assert "Writing the curated CSV" not in texts(app)


def test_the_apps_csv_has_a_last_id_column(app, synthetic_folder, workspace):
    """Issue 24: the id of each row's sample (its source file) as a last column `id`."""
    from fer_app import exports
    from fer_core.audit import audit_source

    report = audit_source(synthetic_folder, workspace=workspace)
    rows = list(csv.DictReader(io.StringIO(exports.curated_csv(report, str(workspace)).decode())))
    assert list(rows[0]) == ["emotion", "pixels", "Usage", "id"]
    assert [row["id"] for row in rows] == report.dataset.ids.tolist()
