"""Job start latency: from `jobs.submit` to the worker's first stage report and first epoch event.

    python benchmarks/bench_jobs.py [--data ../shared/fer2013] [--limit 300] [--repeats 3]

A `tiny` cnn run on a stratified subset of the real data, in a fresh workspace whose decoded-pixel
cache is warmed first (as it is once the app has audited the data). Times are read from the
database by polling every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from fer_core import jobs  # noqa: E402
from fer_core.dataset.loading import load  # noqa: E402
from fer_core.training.fit import TrainConfig  # noqa: E402


def time_one_run(data: str, workspace: Path, limit: int) -> dict:
    config = TrainConfig(model="cnn", sampling="none", epochs=2, size="tiny", batch_size=32, limit=limit)
    started = time.perf_counter()
    run_id = jobs.submit(config, data, workspace)
    submitted = time.perf_counter() - started
    first_stage = first_epoch = None
    database = workspace / "fer_audit.db"
    while True:
        with sqlite3.connect(database) as connection:
            state, stage = connection.execute("SELECT state, stage FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            epochs = connection.execute("SELECT COUNT(*) FROM run_events WHERE run_id = ?", (run_id,)).fetchone()[0]
        elapsed = time.perf_counter() - started
        if stage and first_stage is None:
            first_stage = elapsed
        if epochs and first_epoch is None:
            first_epoch = elapsed
        if state in jobs.FINISHED:
            break
        time.sleep(0.05)
    return {"submit_returned_s": round(submitted, 2), "first_stage_event_s": round(first_stage, 2),
            "first_epoch_event_s": round(first_epoch, 2) if first_epoch else None,
            "finished_s": round(time.perf_counter() - started, 2), "state": state}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(scratch)
        load(args.data, workspace=workspace)  # warm the decoded cache, as after the first audit
        runs = [time_one_run(args.data, workspace, args.limit) for _ in range(args.repeats)]
    summary = {key: statistics.median(run[key] for run in runs)
               for key in ("submit_returned_s", "first_stage_event_s", "first_epoch_event_s", "finished_s")}
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": runs,
                      "median": summary}, indent=2))


if __name__ == "__main__":
    main()
