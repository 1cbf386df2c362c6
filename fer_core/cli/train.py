"""`python -m fer_core train DATA --model M --sampling S [--size fast] [--epochs N] --out RUN_DIR`: one training run.

Options and RUN_DIR are validated (TrainConfig, fer_core.paths) before the data is read or anything
is written; the run prints one line per epoch and writes RUN_DIR/metrics.json, history.json,
predictions.csv and model.keras. RUN_DIR must stay apart from the workspace and the data, and an
earlier run there is replaced only with --overwrite. (Background runs write their own
`workspace/runs/<run_id>/` through fer_core.jobs, which calls training directly, not this command.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from pathlib import Path

from fer_core.cli.labels_option import add_labels_option
from fer_core.dataset.loading import load
from fer_core.duplicates.limits import NEAR_MODES
from fer_core.paths import check_output_apart, check_output_folder, check_workspace, protected_places
from fer_core.training.config import DEFAULT_EPOCHS, EpochProgress, TrainConfig, format_epoch_line
from fer_core.training.fit import PREDICTIONS_NAME, train_and_evaluate
from fer_core.training.models import MODEL_NAMES, SIZES, model_variants
from fer_core.training.sampling import SAMPLING_NAMES

RUN_FILES: tuple[str, ...] = ("metrics.json", "history.json", "model.keras", PREDICTIONS_NAME)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on the curated data and report PrivateTest metrics",
        description="Train on Training, early-stop on PublicTest, report on PrivateTest (also leak-free).")
    add_train_options(parser)
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for metrics.json, history.json, model.keras")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in RUN_DIR")
    parser.set_defaults(func=run_train)


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """DATA and the training options, shared by `train`, `jobs submit` and `jobs sweep`.

    Every TrainConfig field is an option: the ones below with their help, any other field
    (added later) as `--field-name` typed from its annotation, so a new field needs no edit here.
    """
    parser.add_argument("data", metavar="DATA", help="fer2013.csv or an image-folder tree (train/, test/)")
    parser.add_argument("--model", required=True, help=f"one of {', '.join(MODEL_NAMES)}")
    parser.add_argument("--sampling", required=True, help=f"one of {', '.join(SAMPLING_NAMES)}")
    add_config_options(parser)
    add_labels_option(parser)
    parser.add_argument("--workspace", default=None, help="workspace folder (default $FER_AUDIT_HOME or ./workspace)")


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ("model", "sampling")) -> None:
    """The TrainConfig options other than `skip` (those a caller declares itself)."""
    explained = {
        "epochs": dict(type=int, default=None,
                       help=f"maximum epochs, early stopping may end sooner (default per size: "
                            f"{', '.join(f'{size} {count}' for size, count in DEFAULT_EPOCHS.items())})"),
        "variant": dict(default=None, help="model variant, e.g. for cnn_lstm: "
                                           f"{', '.join(model_variants('cnn_lstm'))} (default: the first)"),
        "deterministic": dict(action="store_true",
                              help="op determinism and float32: identical reruns, slower on a CPU"),
        "size": dict(default=TrainConfig.size, help=f"model size preset: {', '.join(SIZES)}"),
        "batch_size": dict(type=int, default=TrainConfig.batch_size),
        "limit": dict(type=int, default=None, help="train on a stratified subset of about N Training images (quick "
                       "runs); PublicTest and PrivateTest are always used whole, so every run is scored alike"),
        "seed": dict(type=int, default=TrainConfig.seed),
        "raw": dict(action="store_true", help="ignore the workspace's edits (train on the raw data)"),
        "near_threshold": dict(type=int, default=None,
                               help="with --near-mode hash: pHash bits that make a test image leaked (default: the audit's threshold)"),
        "near_mode": dict(default=TrainConfig.near_mode, choices=NEAR_MODES,
                          help="how a leaked test image is found: verified near pairs (default) or pHashes "
                               "within --near-threshold"),
        "learning_rate": dict(type=float, default=TrainConfig.learning_rate),
        "patience": dict(type=int, default=TrainConfig.patience,
                         help="epochs without improvement before stopping (counted from the schedule's second half)"),
    }
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name in skip:
            continue
        option = "--" + field.name.replace("_", "-")
        if field.name in explained:
            parser.add_argument(option, **explained[field.name])
        elif hints[field.name] is bool:
            parser.add_argument(option, action="store_true", default=field.default)
        else:
            kinds = [kind for kind in typing.get_args(hints[field.name]) or (hints[field.name],) if kind is not type(None)]
            parser.add_argument(option, type=kinds[0] if len(kinds) == 1 and kinds[0] in (int, float, str) else str,
                                default=field.default)


def config_from_args(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The validated TrainConfig of parsed training options (ValueError on a bad one)."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)
              if hasattr(args, field.name)}
    return TrainConfig(**{**values, **overrides})


def check_run_folder(out: str | os.PathLike, overwrite: bool = False, protected: dict[str, Path] | None = None) -> Path:
    """RUN_DIR as a Path, or ValueError before any work: empty, a file, under a file, unwritable, the
    workspace or the data (or inside/around them, `protected`), or holding an earlier run unless `overwrite`."""
    folder = check_output_folder(out, "--out")
    check_output_apart(out, "--out", protected or {})
    earlier = [name for name in RUN_FILES if (folder / name).exists()]
    if earlier and not overwrite:
        raise ValueError(f"--out {out} holds an earlier run ({', '.join(earlier)}); pass --overwrite to replace it "
                         f"or choose another --out")
    return folder


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_run_folder(args.out, args.overwrite, protected_places(args.workspace, args.data))  # not after the run
    check_workspace(args.workspace, data=args.data)
    dataset = load(args.data, workspace=args.workspace, labels=args.labels)
    metrics = train_and_evaluate(dataset, config, args.out, on_epoch=print_epoch, workspace=args.workspace)
    leak_free = metrics["leak_free_accuracy"]
    print(f"{metrics['test_usage']}: accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
          f"leak-free accuracy {'n/a' if leak_free is None else f'{leak_free:.4f}'} "
          f"({metrics['leaked_test_images']} leaked image(s) left out); device {metrics['device']}, "
          f"{metrics['seconds']:.1f} s")
    print(f"wrote {args.out}/metrics.json, history.json, predictions.csv, model.keras")
    return 0


def print_epoch(progress: EpochProgress) -> None:
    print(format_epoch_line(progress), flush=True)
