"""Report benchmark on the real data: build time, peak memory and file size of the stakeholder report.

    python benchmarks/bench_report.py [--data ../shared/fer2013] [--workspace WS] [--runs RUN_ID ...]

Without --workspace, a fresh one is made: the first report pays for the cold audit (decode, hash,
score), the second reads the audit caches; the train–test leaks are then dropped with
`edit resolve-leaks` so "What was done" has edits to show, and a third report is timed. With
--workspace (e.g. one holding finished training runs), the report is built twice there, as is.
Each build is a separate `python -m fer_core report` process; peak memory is the largest summed
RSS of its process tree, sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from bench_audit import ROOT, run_measured


def build(data: str, workspace: Path, out: Path, runs: list[str]) -> dict:
    command = [sys.executable, "-m", "fer_core", "report", data, "--out", str(out), "--workspace", str(workspace),
               "--quiet", *(["--runs", *runs] if runs else [])]
    wall, peak, _ = run_measured(command)
    text = out.read_text(encoding="utf-8")
    return {"wall_seconds": round(wall, 2), "peak_mib": round(peak), "megabytes": round(out.stat().st_size / 1e6, 2),
            "figures": text.count('class="plotly-graph-div"'), "thumbnails": text.count("<img ")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--workspace", type=Path, default=None, help="an existing workspace (edits, runs) to report on")
    parser.add_argument("--runs", nargs="+", default=[], metavar="RUN_ID")
    parser.add_argument("--out", type=Path, default=None, help="keep the last report here")
    args = parser.parse_args()

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "load_average_before": [round(value, 2) for value in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "report.html"
        if args.workspace is None:
            workspace = Path(scratch) / "workspace"
            results["cold (first audit)"] = build(args.data, workspace, out, [])
            results["warm, no edits"] = build(args.data, workspace, out, [])
            wall, _, _ = run_measured([sys.executable, "-m", "fer_core", "edit", "resolve-leaks", args.data,
                                       "--workspace", str(workspace)])
            results["resolve-leaks seconds"] = round(wall, 2)
            results["warm, leaks dropped"] = build(args.data, workspace, out, [])
        else:
            results["first"] = build(args.data, args.workspace, out, args.runs)
            results["second"] = build(args.data, args.workspace, out, args.runs)
    results["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
