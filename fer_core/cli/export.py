"""`python -m fer_core export DATA --format csv|folders --out PATH`: the curated data, with a manifest."""

from __future__ import annotations

import argparse
import sys
import time

from fer_core.cli.edit import workspace_options
from fer_core.cli.labels_option import add_labels_option
from fer_core.curation.export import EXPORT_FORMATS, check_destination, export_curated
from fer_core.dataset.loading import load
from fer_core.paths import check_workspace
from fer_core.progress import TerminalProgress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", parents=[workspace_options()],
                                   help="write the curated data as fer2013.csv schema or image folders")
    parser.add_argument("data", metavar="DATA")
    add_labels_option(parser)
    parser.add_argument("--format", dest="export_format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("--out", required=True, metavar="PATH", help="a .csv file, or a folder for folders")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    check_workspace(args.workspace, data=args.data)  # the paths first: a bad one is one line, not a traceback after the load
    check_destination(args.out, args.export_format, args.overwrite, source=args.data, workspace=args.workspace)
    progress = TerminalProgress(enabled=sys.stderr.isatty())  # a bar per stage (reading, writing) with tqdm's ETA
    dataset = load(args.data, workspace=args.workspace, progress=progress, labels=args.labels)
    result = export_curated(dataset, args.out, args.export_format, workspace=args.workspace, overwrite=args.overwrite,
                            progress=progress)
    progress.close()
    print(f"exported {result.samples} of {len(dataset)} samples as {result.export_format} to {result.path} "
          f"(manifest {result.manifest_path}) in {time.perf_counter() - started:.1f} s")
    return 0
