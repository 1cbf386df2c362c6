"""`python -m fer_core compare DATA [--model cnn] [--size fast] [--epochs N] [--sampling none] [--seeds 3]
[--out DIR] [--wait]`: does curation help? Raw and curated data × seeds, queued as one experiment.

The first line printed is the experiment id. With `--wait` the command blocks until both arms have
finished, then prints the table and writes compare.json (into --out, else
`<workspace>/experiments/<id>/`). `compare --experiment ID` (re)computes compare.json of a finished
experiment without queueing anything (with `--wait`, after waiting for it). Every option, --out
included, is checked before anything is queued or written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fer_core.cli.labels_option import add_labels_option, remember_labels
from fer_core.jobs import compare
from fer_core.jobs.records import RunRecord
from fer_core.paths import (
    check_output_apart,
    check_output_folder,
    check_workspace,
    protected_places,
)
from fer_core.training.config import TrainConfig
from fer_core.training.models import MODEL_NAMES, SIZES
from fer_core.training.sampling import SAMPLING_NAMES
from fer_core.views import comparison as views

QUEUE_DEFAULTS = {"model": "cnn", "size": "fast", "epochs": None, "sampling": "none", "seeds": 3}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="train raw and curated data × seeds as one experiment; compare them with 95 % intervals",
        description="Queue raw and curated × seeds as one experiment; when they finish, score both on the same "
                    "PrivateTest images with their original labels and write compare.json.")
    parser.add_argument("data", metavar="DATA", nargs="?", help="fer2013.csv or an image-folder tree (train/, test/)")
    parser.add_argument("--model", default=None, help=f"one of {', '.join(MODEL_NAMES)} (default: cnn)")
    parser.add_argument("--size", default=None, help=f"model size preset: {', '.join(SIZES)} (default: fast)")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the size's)")
    parser.add_argument("--sampling", default=None, help=f"one of {', '.join(SAMPLING_NAMES)} (default: none)")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"runs per arm, seeds 0..N-1, 1..{compare.MAX_SEEDS} (default: 3)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for compare.json (default: <workspace>/experiments/<id>/)")
    parser.add_argument("--wait", action="store_true", help="block until both arms finish, then compare")
    parser.add_argument("--experiment", default=None, metavar="EXPERIMENT_ID",
                        help="(re)compute compare.json of an experiment queued earlier; queues nothing")
    parser.add_argument("--workspace", default=None, help="workspace folder (default $FER_AUDIT_HOME or ./workspace)")
    add_labels_option(parser)
    parser.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    check_workspace(args.workspace, data=args.data)
    if args.experiment is not None:
        return recompute(args)
    if args.data is None:
        raise ValueError("compare needs DATA (or --experiment ID to recompute an experiment queued earlier)")
    options = {name: QUEUE_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
               for name in QUEUE_DEFAULTS}
    base = TrainConfig(model=options["model"], sampling=options["sampling"], size=options["size"],
                       epochs=options["epochs"])
    compare.compare_configs(base, options["seeds"])  # every config valid before anything is queued
    out = check_out(args.out, args.workspace, args.data, experiment_id=None)
    remember_labels(args.data, args.workspace, args.labels)
    experiment_id, run_ids = compare.submit_compare(base, options["seeds"], args.data, args.workspace)
    print(experiment_id, flush=True)
    print(f"queued {len(run_ids)} runs: raw and curated × seeds {', '.join(map(str, range(options['seeds'])))} "
          f"({base.model}/{base.sampling}, size {base.size}, {base.epochs_to_run} epochs)", flush=True)
    if not args.wait:
        print(f"when they finish: python -m fer_core compare --experiment {experiment_id}"
              + (f" --out {args.out}" if args.out else ""))
        return 0
    return finish(experiment_id, args.workspace, out, wait=True)


def recompute(args: argparse.Namespace) -> int:
    given = [f"--{name}" if name != "data" else "DATA" for name in ("data", *QUEUE_DEFAULTS)
             if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} only apply when queueing; --experiment recomputes an experiment "
                         "queued earlier with its own settings")
    runs = compare.experiment_runs(args.experiment, args.workspace)
    compare.comparison_arms(runs)
    if not args.wait:
        compare.check_all_succeeded(runs)
    out = check_out(args.out, args.workspace, runs[0].data_path, experiment_id=args.experiment)
    print(args.experiment, flush=True)
    return finish(args.experiment, args.workspace, out, wait=args.wait)


def check_out(out: str | None, workspace: str | None, data: str, experiment_id: str | None) -> Path | None:
    """--out as a folder, or ValueError: unusable, in or around the workspace or the data, or holding
    another experiment's compare.json (kept: nothing of the user's is replaced)."""
    if out is None:
        return None
    folder = check_output_folder(out, "--out")
    check_output_apart(out, "--out", protected_places(workspace, data))
    earlier = folder / compare.COMPARE_NAME
    if earlier.exists():
        try:
            owner = json.loads(earlier.read_text(encoding="utf-8")).get("experiment_id")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner is None or owner != experiment_id:
            raise ValueError(f"--out {out} holds the {compare.COMPARE_NAME} of "
                             f"{'experiment ' + owner if owner else 'something else'}; choose another --out")
    return folder


def finish(experiment_id: str, workspace: str | None, out: Path | None, wait: bool) -> int:
    """Wait (when asked), then compute, write and print the comparison."""
    if wait:
        try:
            compare.wait_for_experiment(experiment_id, workspace, on_finish=print_finished)
        except KeyboardInterrupt:
            print(f"stopped waiting; the runs go on: python -m fer_core compare --experiment {experiment_id} --wait")
            raise
    comparison = compare.compute_comparison(experiment_id, workspace)
    path = compare.write_comparison(comparison, out or compare.experiment_folder(experiment_id, workspace))
    print_comparison(comparison)
    print(f"wrote {path}")
    return 0


def print_finished(run: RunRecord) -> None:
    accuracy = (run.metrics or {}).get("accuracy")
    print(f"run {run.run_id} ({compare.arm_of(run)}, seed {run.config.get('seed')}) {run.state}"
          + (f", accuracy {accuracy:.4f}" if accuracy is not None else "")
          + (f": {run.error}" if run.error else ""), flush=True)


def print_comparison(comparison: dict[str, Any]) -> None:
    """The table: per arm mean ± sd, the paired difference with both 95 % intervals, recall per emotion, verdict
    (the Results page's and the report's own table and words, fer_core/views/comparison.py)."""
    print(views.arm_table(comparison).to_string(index=False))
    print(views.arm_table_note(comparison))
    recall = comparison["recall_difference"]
    print("recall, curated − raw (points): " + ", ".join(
        f"{emotion} {views.signed_points(recall[emotion]['difference'])}" for emotion in recall))
    print(f"verdict: {comparison['verdict']}")
    print(views.circular_text(comparison))
