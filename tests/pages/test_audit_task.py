"""The app's background audit jobs: two near modes of one data source share one face stage; a cached face
stage shows no progress bar."""

import threading
import time

from test_pages import open_page

from fer_core.outliers import faces


def test_a_second_near_mode_waits_for_the_first_face_stage_and_reuses_it(synthetic_folder, workspace, monkeypatch):
    from fer_app import audit_task

    calls, real_find_faces = [], faces.find_faces

    def counted_find_faces(*args, **kwargs):
        calls.append(threading.current_thread().name)
        time.sleep(1.0)  # long enough for the second job to reach its face stage while the first is in it
        return real_find_faces(*args, **kwargs)

    monkeypatch.setattr(faces, "find_faces", counted_find_faces)
    jobs = [audit_task.audit_job(str(synthetic_folder), 6, str(workspace), mode) for mode in ("verified", "hash")]
    for job in jobs:
        assert job.faces_finished.wait(240), job.stage
        assert job.error is None and job.face_error is None
    assert len(calls) == 1  # the second job read the faces the first one cached
    assert [job.report.config.near_mode for job in jobs] == ["verified", "hash"]
    assert all(job.report.config.face_stage for job in jobs)


def test_a_face_stage_read_from_the_cache_shows_no_progress_bar(app):
    from fer_app.audit_task import _audit_jobs

    app = open_page(app, None)
    jobs = _audit_jobs()[0]
    assert all(job.faces_finished.wait(240) for job in jobs.values())
    jobs.clear()  # a new job for the same inputs, as after a server restart: its faces come from the cache
    app = open_page(app, None)
    assert not [bar for bar in app.get("progress") if "Face stage" in str(bar.proto)]
    assert "Images kept" in [metric.label for metric in app.metric]


def test_the_face_stage_progress_says_the_time_left(app, monkeypatch):
    """Issue 24: the face stage's bar showed a count ("Face stage: 12,000/35,887 images") without the time left;
    it now says "about N s left" from the rate measured since the stage began."""
    from fer_core.outliers.faces import STAGE

    release, real_find_faces = threading.Event(), faces.find_faces

    def halted_find_faces(pixels, *, progress=None, config=None):
        progress(STAGE, 0, len(pixels))
        time.sleep(0.5)
        progress(STAGE, len(pixels) // 2, len(pixels))  # half done in about half a second
        assert release.wait(60)
        return real_find_faces(pixels, progress=progress, config=config)

    monkeypatch.setattr(faces, "find_faces", halted_find_faces)
    try:
        app = open_page(app, None)
        deadline = time.monotonic() + 60
        while not (bars := [bar.proto.text for bar in app.get("progress") if "Face stage:" in bar.proto.text]):
            assert time.monotonic() < deadline, "no face stage bar"
            time.sleep(0.2)
            app.run()  # the browser's poll of the face stage
        assert "images · about " in bars[0] and " s left" in bars[0], bars
    finally:
        release.set()
