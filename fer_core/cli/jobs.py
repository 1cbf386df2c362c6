"""`python -m fer_core jobs submit|list|show|cancel`: training runs in the background."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from .. import jobs
from .train import add_train_options, config_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("jobs", help="run training in the background and follow it")
    actions = parser.add_subparsers(dest="jobs_action", required=True)

    submit = actions.add_parser("submit", help="queue a training run; prints its run id")
    add_train_options(submit)
    submit.set_defaults(func=run_submit)

    listing = actions.add_parser("list", help="all runs, newest first")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--workspace", default=None)
    listing.set_defaults(func=run_list)

    for name, handler, text in (("show", run_show, "one run: state, progress, metrics, error"),
                                ("cancel", run_cancel, "stop a queued or running run")):
        action = actions.add_parser(name, help=text)
        action.add_argument("run_id", metavar="RUN_ID")
        action.add_argument("--workspace", default=None)
        action.set_defaults(func=handler)


def run_submit(args: argparse.Namespace) -> int:
    print(jobs.submit(config_from_args(args), args.data, args.workspace))
    return 0


def run_list(args: argparse.Namespace) -> int:
    runs = jobs.list_runs(args.workspace)
    if args.json:
        print(json.dumps([asdict(record) for record in runs], indent=2))
        return 0
    if not runs:
        print("no runs yet")
    for record in runs:
        print(describe(record))
    return 0


def run_show(args: argparse.Namespace) -> int:
    record = jobs.get_run(args.run_id, args.workspace)
    print(describe(record))
    print(f"  data: {record.data_path}\n  config: {json.dumps(record.config)}\n  folder: {record.out_dir}")
    if record.stage and not record.finished:
        print(f"  now: {record.stage}")
    for event in record.events:
        print(f"  epoch {event['epoch']}/{event['epochs']}: loss {event['loss']:.4f}, accuracy {event['accuracy']:.4f}, "
              f"val_accuracy {event['val_accuracy']:.4f}")
    if record.error:
        print(f"  error: {record.error}")
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    print(describe(jobs.cancel(args.run_id, args.workspace)))
    return 0


def describe(record: jobs.RunRecord) -> str:
    config = record.config
    line = f"{record.run_id}  {record.state:<9}  {config['model']}/{config['sampling']} {config['size']}"
    if record.events and not record.finished:
        last = record.events[-1]
        line += f"  epoch {last['epoch']}/{last['epochs']}"
    if record.metrics:
        line += f"  accuracy {record.metrics['accuracy']:.4f}"
        if record.metrics.get("leak_free_accuracy") is not None:
            line += f", leak-free {record.metrics['leak_free_accuracy']:.4f}"
    return line
