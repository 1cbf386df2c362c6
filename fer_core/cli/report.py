"""`python -m fer_core report DATA --out report.html [--workspace WS] [--runs RUN_ID ...]`: the stakeholder report.

The output path, the workspace, the run ids and the edit log (made for this data?) are checked
before the audit runs; the file is written whole, then renamed into place, so a bad argument or a
failure leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from fer_core.audit import run_audit
from fer_core.cli.audit import add_audit_options, audit_config_from_args
from fer_core.cli.labels_option import add_labels_option
from fer_core.curation.edits import read_curation
from fer_core.dataset.loading import load
from fer_core.paths import check_output_apart, check_workspace, protected_places
from fer_core.progress import TerminalProgress
from fer_core.report import build_report, check_output_path, choose_runs, read_finished_runs, write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="one self-contained HTML report: findings, evidence, edits, results")
    parser.add_argument("data", metavar="DATA", help="fer2013.csv or a folder with train/ and test/ image folders")
    parser.add_argument("--out", required=True, metavar="REPORT_HTML", help="the HTML file to write")
    parser.add_argument("--workspace", default=None, help="workspace folder (default $FER_AUDIT_HOME or ./workspace)")
    parser.add_argument("--runs", nargs="+", default=(), metavar="RUN_ID",
                        help="finished runs to compare, in order (default: newest raw and newest curated run)")
    add_audit_options(parser)
    add_labels_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    out = check_output_path(check_output_apart(os.path.expanduser(args.out), "--out",
                                               protected_places(args.workspace, args.data)))
    check_workspace(args.workspace, data=args.data)
    config = audit_config_from_args(args)
    choose_runs(read_finished_runs(args.workspace), args.runs)  # unknown run ids fail before the audit
    progress = TerminalProgress(enabled=not args.quiet and sys.stderr.isatty())
    dataset = load(args.data, workspace=args.workspace, progress=progress, labels=args.labels)
    read_curation(dataset, args.workspace)  # edits made for other data fail here, before the audit
    audit = run_audit(dataset, config, workspace=args.workspace, progress=progress)
    progress.close()
    text = build_report(audit, workspace=args.workspace, run_ids=args.runs, data_path=args.data)
    path = write_report(text, out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    return 0
