"""`python -m fer_core mislabels DATA --out DIR [--folds K] [--model M] [--size S] [--epochs N] [--workspace WS]`."""

from __future__ import annotations

import argparse
import sys

from fer_core.cli.labels_option import add_labels_option
from fer_core.dataset.loading import load
from fer_core.mislabels.config import MislabelConfig, MislabelProgress
from fer_core.mislabels.results import learning_warning, write_outputs
from fer_core.mislabels.run import run_mislabels
from fer_core.paths import check_output_apart, check_output_folder, check_workspace, protected_places
from fer_core.training.models import MODEL_NAMES, SIZES

DEFAULTS = MislabelConfig()


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "mislabels", help="suspected mislabels: cross-validated predictions + Confident Learning (cleanlab)")
    parser.add_argument("data", help="fer2013.csv or a folder with train/ and test/ image folders")
    parser.add_argument("--out", required=True, help="folder for mislabels.csv and summary.json")
    parser.add_argument("--folds", type=int, default=DEFAULTS.folds,
                        help=f"cross-validation folds over Training (default {DEFAULTS.folds})")
    parser.add_argument("--model", choices=MODEL_NAMES, default=DEFAULTS.model,
                        help=f"model of each fold (default {DEFAULTS.model})")
    parser.add_argument("--size", choices=SIZES, default=DEFAULTS.size,
                        help=f"model size preset (default {DEFAULTS.size})")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs,
                        help=f"most epochs per fold, early-stopped on PublicTest (default {DEFAULTS.epochs})")
    add_labels_option(parser)
    parser.add_argument("--workspace", default=None,
                        help="workspace folder: its edits give the curated data, its cache keeps results "
                             "(default $FER_AUDIT_HOME or ./workspace)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = MislabelConfig(folds=args.folds, model=args.model, size=args.size, epochs=args.epochs)
    out = check_output_folder(args.out, "--out")  # before hours of training, not after them
    check_output_apart(out, "--out", protected_places(args.workspace, args.data))
    check_workspace(args.workspace, data=args.data)
    dataset = load(args.data, workspace=args.workspace, labels=args.labels)
    report = None if args.quiet else print_progress
    result = run_mislabels(dataset, config, workspace=args.workspace, on_progress=report)
    csv_path, summary_path = write_outputs(result, out)
    print(format_summary(result.summary))
    warning = learning_warning(result)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {csv_path} and {summary_path}")
    return 0


def print_progress(progress: MislabelProgress) -> None:
    print(progress.describe(), file=sys.stderr, flush=True)


def format_summary(summary: dict) -> str:
    by_emotion = ", ".join(f"{emotion} {count:,}" for emotion, count in summary["flagged_by_emotion"].items())
    settings = summary["settings"]
    return "\n".join([
        f"{summary['flagged']:,} of {summary['images']:,} images flagged as suspected mislabels",
        f"  flagged by given emotion: {by_emotion}",
        f"out-of-fold accuracy on Training (given labels): {summary['out_of_fold_accuracy']:.3f}",
        f"{settings['folds']} folds of {settings['model']} ({settings['size']}, up to {settings['epochs']} epochs); "
        f"took {summary['seconds']:.1f}s",
    ])
