"""Embedding-map benchmark on the real data: the map's build time (cold, in a fresh process, and read back from the
cache) and the Map page's script time once the map is cached.

    python benchmarks/bench_map.py [--data ../shared/fer2013] [--workspace WS] [--run-dir RUNS/RUN_ID] [--skip-build]

The build is `embedding_map.build_map` (UMAP, seeded) in the descriptor space, and in a run's space with
--run-dir (a folder holding model.keras). The page is timed with Streamlit's AppTest on the audit's fast
report (no face stage): the first run on the cached map, a change of colouring, a rerun, and the Review page
narrowed to a 2,000-image selection, each in Streamlit's script thread (wall and CPU seconds). The workspace (default: a fresh one) keeps the decoded images and caches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return round(time.perf_counter() - started, 2), result


def script_timer():
    """Times of each script run in Streamlit's script thread (wall and that thread's CPU seconds): the server's
    share of a page switch or a rerun, without AppTest's own reading of the page."""
    from streamlit.runtime.scriptrunner import script_runner

    runs = []
    original = script_runner.exec_func_with_error_handling

    def timed_run(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            runs.append({"wall": round(time.perf_counter() - wall, 3), "cpu": round(time.thread_time() - cpu, 3)})
    return runs, timed_run


def page_times(report) -> dict:
    """Seconds of the Map page's script runs (cached map) and of Review under a selection, through AppTest."""
    from unittest import mock

    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    from fer_app import audit_task, selection

    runs, timed_run = script_timer()
    times = {}
    with mock.patch.object(audit_task, "require_audit", lambda: report), \
            mock.patch.object(script_runner, "exec_func_with_error_handling", timed_run):
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        app.switch_page("pages/7_Map.py")
        steps = [("map_first_run", lambda: None), ("map_rerun", lambda: None),
                 ("map_colour_change", lambda: app.selectbox(key="map_colouring").set_value("duplicate")),
                 ("map_with_selection", lambda: app.session_state.__setitem__(
                     selection.SELECTION, selection.Selection(tuple(report.dataset.ids[::18].tolist()), "the map"))),
                 ("review_with_selection", lambda: app.switch_page("pages/3_Review.py"))]
        for name, change in steps:  # the selection: about 2,000 images
            change()
            app.run()
            assert not app.exception, [error.value for error in app.exception]
            times[name] = runs[-1]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--workspace", type=Path, default=None)
    parser.add_argument("--run-dir", default=None, help="a finished run's folder: also time the map in its space")
    parser.add_argument("--skip-build", action="store_true", help="time the page only (the map is cached already)")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    workspace = args.workspace or Path(scratch.name) / "workspace"
    os.environ["FER_AUDIT_HOME"] = str(workspace)
    os.environ["FER_DATA"] = args.data
    os.environ.setdefault("FER_AUDIT_DATA_ROOT", str(Path(args.data).resolve().parent))

    from fer_core.audit import run_audit
    from fer_core.dataset.loading import load
    from fer_core.training.features import DESCRIPTORS, RUN_PREFIX, FeatureSpace
    from fer_core.views import embedding_map

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "load_average_before": [round(value, 2) for value in os.getloadavg()]}
    results["load_seconds"], dataset = timed(lambda: load(args.data, workspace=workspace))
    results["images"] = len(dataset)
    spaces = [FeatureSpace(DESCRIPTORS, "descriptors")]
    if args.run_dir:
        spaces.append(FeatureSpace(f"{RUN_PREFIX}{Path(args.run_dir).name}", "run", args.run_dir))
    if not args.skip_build:
        for space in spaces:
            results[f"build {space.name} (cold)"], _ = timed(lambda: embedding_map.build_map(dataset, space))
            results[f"load_average_after {space.name}"] = [round(value, 2) for value in os.getloadavg()]
            results[f"build {space.name} (cached)"], _ = timed(lambda: embedding_map.build_map(dataset, space))
    results["audit_seconds (fast report)"], report = timed(lambda: run_audit(dataset, workspace=workspace))
    results["page_seconds"] = page_times(report)
    results["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
