"""`python -m fer_core audit DATA --out DIR [--near-threshold T] [--near-mode verified|hash]`."""

from __future__ import annotations

import argparse
import sys

from fer_core.audit import AuditConfig, audit_source, write_report
from fer_core.cli.labels_option import add_labels_option
from fer_core.dataset.label_sets import describe_splits
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, NEAR_MODES
from fer_core.paths import check_output_apart, check_output_folder, check_workspace, protected_places
from fer_core.progress import TerminalProgress


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="find duplicates, conflicts, train–test leaks and non-faces")
    parser.add_argument("data", help="fer2013.csv or a folder with train/ and test/ image folders")
    parser.add_argument("--out", required=True, help="folder for summary.json and samples.csv")
    add_audit_options(parser)
    add_labels_option(parser)
    parser.add_argument("--workspace", default=None, help="workspace folder (default $FER_AUDIT_HOME or ./workspace)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def add_audit_options(parser: argparse.ArgumentParser) -> None:
    """--near-threshold, --near-mode, --fast: how the audit runs (shared with `report`, which audits too)."""
    parser.add_argument("--near-threshold", type=int, default=DEFAULT_NEAR_THRESHOLD,
                        help=f"max Hamming distance between pHashes of near copies (default {DEFAULT_NEAR_THRESHOLD})")
    parser.add_argument("--near-mode", choices=NEAR_MODES, default="verified",
                        help="verified: near copies confirmed on pixels, also shifted, cropped or mirrored (default); "
                             "hash: pHashes within --near-threshold only, the original method")
    parser.add_argument("--fast", action="store_true",
                        help="skip the face stage (minutes on a first audit); outlier kinds come from pixels only")


def audit_config_from_args(args: argparse.Namespace) -> AuditConfig:
    """The AuditConfig of parsed audit options (ValueError on a bad threshold)."""
    return AuditConfig(near_threshold=args.near_threshold, near_mode=args.near_mode, face_stage=not args.fast)


def run(args: argparse.Namespace) -> int:
    config = audit_config_from_args(args)
    check_output_folder(args.out, "--out")  # before the audit, not after it
    check_output_apart(args.out, "--out", protected_places(args.workspace, args.data))
    check_workspace(args.workspace, data=args.data)
    progress = TerminalProgress(enabled=not args.quiet and sys.stderr.isatty())
    report = audit_source(args.data, config, workspace=args.workspace, progress=progress, labels=args.labels)
    progress.close()
    summary_path, samples_path = write_report(report, args.out)
    print(format_summary(report.summary))
    print(f"wrote {summary_path} and {samples_path}")
    return 0


def _near_method(near: dict) -> str:
    if near.get("mode", "hash") == "hash":
        return f"pHash ≤ {near['threshold']} bits"
    return f"verified on pixels, similarity ≥ {near['min_similarity']}"


def format_summary(summary: dict) -> str:
    exact, near, leaks = summary["exact"], summary["near"], summary["leaks"]
    usage = ", ".join(f"{name} {count:,}" for name, count in summary["by_usage"].items())
    labels = ", ".join(f"{name} {count:,}" for name, count in summary["by_label"].items())
    lines = [
        f"{summary['images']:,} images ({usage})",
        f"  {describe_splits(summary.get('splits', {}))}",
        f"  by emotion: {labels}",
        f"exact duplicates: {exact['groups']:,} groups, {exact['images_in_groups']:,} images, "
        f"{exact['redundant']:,} redundant copies; {exact['conflicting_groups']:,} with conflicting emotions, "
        f"{exact['cross_split_groups']:,} across train/test",
        f"near duplicates ({_near_method(near)}): {near['groups']:,} groups, "
        f"{near['images_in_groups']:,} images; {near['conflicting_groups']:,} conflicting, "
        f"{near['cross_split_groups']:,} across train/test",
        f"train–test leaks: {leaks['test_images_with_training_copy']:,} test images have a copy in Training "
        f"({leaks['training_copies_of_test_images']:,} Training copies)",
        f"outliers: {summary['outliers']['flagged']:,} flagged (box-plot rule alone: {summary['outliers']['box_plot']:,})",
    ]
    if summary["unreadable"]:
        lines.append(f"unreadable: {len(summary['unreadable']):,} (listed in summary.json)")
    if summary.get("skipped"):
        lines.append(f"skipped (not images): {len(summary['skipped']):,} (listed in summary.json)")
    if summary["converted"]:
        lines.append(f"converted to 48×48 grayscale: {summary['converted']:,}")
    stages = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in summary["seconds_by_stage"].items())
    lines.append(f"took {summary['seconds']:.2f}s ({stages})")
    return "\n".join(lines)
