"""`python -m fer_core jobs submit|sweep|grid|list|show|cancel|drain`: training runs in the background.

`sweep` queues a grid of runs (models × samplings × raw/curated data) as one experiment and
prints the experiment id, then one run id per line; `grid EXPERIMENT_ID` prints its table.

`list` and `show` first bring states up to date (a dead worker is marked failed, Ray states are
pulled) when the workspace is writable, but start nothing; `drain` also starts queued runs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from fer_core import jobs, store
from fer_core.cli.labels_option import add_labels_option, remember_labels
from fer_core.cli.train import add_config_options, add_train_options, config_from_args
from fer_core.jobs import experiments
from fer_core.training.models import MODEL_NAMES
from fer_core.training.sampling import SAMPLING_NAMES


def register(subparsers) -> None:
    parser = subparsers.add_parser("jobs", help="run training in the background and follow it")
    actions = parser.add_subparsers(dest="jobs_action", required=True)

    submit = actions.add_parser("submit", help="queue a training run; prints its run id")
    add_train_options(submit)
    submit.set_defaults(func=run_submit)

    sweep = actions.add_parser("sweep", help="queue a grid of runs as one experiment; prints its id, then the run ids")
    sweep.add_argument("data", metavar="DATA", help="fer2013.csv or an image-folder tree (train/, test/)")
    sweep.add_argument("--models", required=True, help=f"comma-separated, from {', '.join(MODEL_NAMES)}")
    sweep.add_argument("--samplings", required=True, help=f"comma-separated, from {', '.join(SAMPLING_NAMES)}")
    sweep.add_argument("--data", dest="data_variants", default=experiments.CURATED,
                       help="comma-separated, from raw (ignore the edits), curated (default: curated)")
    add_config_options(sweep, skip=("model", "sampling", "raw"))
    add_labels_option(sweep)
    sweep.add_argument("--workspace", default=None)
    sweep.set_defaults(func=run_sweep)

    grid = actions.add_parser("grid", help="an experiment's runs: model, sampling, data, state and PrivateTest figures")
    grid.add_argument("experiment_id", metavar="EXPERIMENT_ID")
    grid.add_argument("--json", action="store_true", help="machine-readable output")
    grid.add_argument("--workspace", default=None)
    grid.set_defaults(func=run_grid)

    listing = actions.add_parser("list", help="all runs, newest first")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--workspace", default=None)
    listing.set_defaults(func=run_list)

    drain = actions.add_parser("drain", help="bring states up to date and start queued runs when there is capacity")
    drain.add_argument("--workspace", default=None)
    drain.set_defaults(func=run_drain)

    for name, handler, text in (("show", run_show, "one run: state, progress, metrics, error"),
                                ("cancel", run_cancel, "stop a queued or running run")):
        action = actions.add_parser(name, help=text)
        action.add_argument("run_id", metavar="RUN_ID")
        action.add_argument("--workspace", default=None)
        action.set_defaults(func=handler)


def run_submit(args: argparse.Namespace) -> int:
    remember_labels(args.data, args.workspace, args.labels)
    print(jobs.submit(config_from_args(args), args.data, args.workspace))
    return 0


def reconcile_if_writable(workspace: str | None) -> None:
    """Mark dead workers failed and pull Ray states before showing runs; a read-only workspace is shown as recorded."""
    if store.database_exists(workspace) and store.workspace_writable(workspace):
        jobs.reconcile(workspace)


def run_drain(args: argparse.Namespace) -> int:
    started = jobs.drain(args.workspace)
    print(f"started {len(started)} run(s)" + (f": {', '.join(started)}" if started else ""))
    return 0


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run_sweep(args: argparse.Namespace) -> int:
    models, samplings = split_list(args.models), split_list(args.samplings)
    base = config_from_args(args, model=models[0] if models else "cnn",
                            sampling=samplings[0] if samplings else "none")
    remember_labels(args.data, args.workspace, args.labels)
    experiment_id, run_ids = experiments.submit_sweep(base, models, samplings, split_list(args.data_variants),
                                                      args.data, args.workspace)
    print(experiment_id)
    for run_id in run_ids:
        print(run_id)
    return 0


def run_grid(args: argparse.Namespace) -> int:
    reconcile_if_writable(args.workspace)
    rows = experiments.grid_rows(experiments.experiment_runs(args.experiment_id, args.workspace))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    import pandas as pd

    table = pd.DataFrame(rows, columns=list(experiments.GRID_COLUMNS))
    for metric in experiments.GRID_METRICS:
        table[metric] = table[metric].map(lambda value: "" if value is None else f"{value:.4f}")
    print(table.to_string(index=False))
    return 0


def run_list(args: argparse.Namespace) -> int:
    reconcile_if_writable(args.workspace)
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
    reconcile_if_writable(args.workspace)
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
    """One line per run: id, state, what it runs, its progress or its headline figures."""
    config = record.config
    if record.kind == "train":
        what = f"{config.get('model')}/{config.get('sampling')} {config.get('size')}"
    else:
        what = record.kind
    line = f"{record.run_id}  {record.state:<9}  {what}"
    if record.events and not record.finished:
        last = record.events[-1]
        line += f"  epoch {last['epoch']}/{last['epochs']}"
    metrics = record.metrics or {}
    if metrics.get("accuracy") is not None:
        line += f"  accuracy {metrics['accuracy']:.4f}"
        if metrics.get("leak_free_accuracy") is not None:
            line += f", leak-free {metrics['leak_free_accuracy']:.4f}"
    return line
