"""`python -m fer_core edit ...`: relabel, drop, restore, undo, history, resolve-leaks, resolve-group;
tag, untag and tags (edit_tags.py).

Every subcommand takes `--workspace` (default $FER_AUDIT_HOME) and `--author` (default
$FER_AUDIT_AUTHOR, else the OS user). Commands that name samples load the dataset to check the
ids: `--data`, else $FER_DATA, else the data path the workspace recorded when it was first used.
"""

from __future__ import annotations

import argparse
import json
import os

from fer_core.audit import AuditConfig, run_audit
from fer_core.cli.labels_option import add_labels_option
from fer_core.curation import edits
from fer_core.dataset.loading import Dataset, load
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, NEAR_MODES
from fer_core.labels import EMOTIONS
from fer_core.paths import check_workspace

SHOWN_EDITS = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edit", help="curate: relabel, drop, restore, undo, history, resolve leaks")
    commands = parser.add_subparsers(dest="edit_command", required=True)
    common = workspace_options()
    common.add_argument("--author", help="who made the edit (default: $FER_AUDIT_AUTHOR, else the OS user)")
    with_data = argparse.ArgumentParser(add_help=False)
    with_data.add_argument("--data", help="the dataset (default $FER_DATA, else the workspace's recorded data path)")
    add_labels_option(with_data)

    relabel = commands.add_parser("relabel", parents=[common, with_data], help="give one sample a new label")
    relabel.add_argument("sample_id", metavar="ID")
    relabel.add_argument("emotion", metavar="EMOTION", help=f"one of the data's emotions ({', '.join(EMOTIONS)}, ...)")
    relabel.add_argument("--reason", required=True)
    relabel.set_defaults(func=run_relabel)

    drop = commands.add_parser("drop", parents=[common, with_data], help="drop samples from the curated data")
    drop.add_argument("sample_ids", metavar="ID", nargs="+")
    drop.add_argument("--reason", required=True)
    drop.set_defaults(func=run_drop)

    restore = commands.add_parser("restore", parents=[common, with_data], help="bring dropped samples back")
    restore.add_argument("sample_ids", metavar="ID", nargs="+")
    restore.add_argument("--reason", default="")
    restore.set_defaults(func=run_restore)

    undo = commands.add_parser("undo", parents=[common], help="reverse one edit (appends an undo row)")
    undo.add_argument("edit_id", metavar="EDIT_ID", type=int)
    undo.add_argument("--reason", default="")
    undo.set_defaults(func=run_undo)

    history = commands.add_parser("history", parents=[common], help="every edit, oldest first")
    history.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    history.add_argument("--sample", metavar="ID", help="only the edits of this sample")
    history.set_defaults(func=run_history)

    leaks = commands.add_parser("resolve-leaks", parents=[common],
                                help="drop every Training copy of a PublicTest/PrivateTest image")
    leaks.add_argument("data", metavar="DATA")
    add_labels_option(leaks)
    leaks.add_argument("--dry-run", action="store_true", help="show what would be dropped, write nothing")
    leaks.add_argument("--max-hamming-distance", type=int, default=None,
                       help="near-copy threshold in pHash bits (default: the duplicates module's)")
    leaks.add_argument("--near-mode", choices=NEAR_MODES, default="verified",
                       help="verified: the audit's leaks, near copies confirmed on pixels (shifted, cropped, "
                            "mirrored too; default); hash: pHashes within --max-hamming-distance only")
    leaks.add_argument("--reason", default=edits.DEFAULT_LEAK_REASON)
    leaks.set_defaults(func=run_resolve_leaks)

    group = commands.add_parser("resolve-group", parents=[common, with_data],
                                help="resolve one duplicate group in one batch")
    group.add_argument("sample_ids", metavar="ID", nargs="+", help="members of one duplicate group (the audit's)")
    group.add_argument("--resolution", required=True, choices=edits.RESOLUTIONS)
    group.add_argument("--emotion", help="for --resolution relabel")
    group.add_argument("--keep", metavar="ID", help="for keep_one: the copy to keep")
    group.add_argument("--reason", required=True)
    group.add_argument("--dry-run", action="store_true")
    group.add_argument("--allow-test", action="store_true",
                       help="also drop or relabel PublicTest/PrivateTest images (changes what models are scored on)")
    group.add_argument("--near-threshold", type=int, default=DEFAULT_NEAR_THRESHOLD,
                       help=f"the audit's groups: max pHash distance (default {DEFAULT_NEAR_THRESHOLD})")
    group.add_argument("--near-mode", choices=NEAR_MODES, default="verified",
                       help="the audit's groups: verified on pixels (default) or pHashes only")
    group.set_defaults(func=run_resolve_group)

    from fer_core.cli.edit_tags import register_tag_commands  # it imports this module's load_bound_dataset

    register_tag_commands(commands, common)


def workspace_options() -> argparse.ArgumentParser:
    """The --workspace option edit and export share (a parent parser)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--workspace", metavar="PATH", help="workspace folder (default $FER_AUDIT_HOME or ./workspace)")
    return options


def load_bound_dataset(data: str | None, workspace: str | None, labels: str | None = None) -> Dataset:
    """The dataset to check ids against: --data, else $FER_DATA, else the path the workspace recorded."""
    path = data or os.environ.get("FER_DATA") or edits.read_workspace_meta(workspace).get("data_path")
    if not path:
        raise ValueError("no dataset: pass --data DATA or set FER_DATA (the workspace has none recorded yet)")
    check_workspace(workspace, data=path)  # the edit log and caches never go into the images' tree
    return load(path, workspace=workspace, labels=labels)


def run_relabel(args: argparse.Namespace) -> int:
    dataset = load_bound_dataset(args.data, args.workspace, args.labels)
    return print_edits(edits.relabel(dataset, args.sample_id, args.emotion, args.reason,
                                     author=args.author, workspace=args.workspace))


def run_drop(args: argparse.Namespace) -> int:
    dataset = load_bound_dataset(args.data, args.workspace, args.labels)
    return print_edits(edits.drop(dataset, args.sample_ids, args.reason, author=args.author, workspace=args.workspace))


def run_restore(args: argparse.Namespace) -> int:
    dataset = load_bound_dataset(args.data, args.workspace, args.labels)
    return print_edits(edits.restore(dataset, args.sample_ids, args.reason,
                                     author=args.author, workspace=args.workspace))


def run_undo(args: argparse.Namespace) -> int:
    return print_edits([edits.undo(args.edit_id, args.reason, author=args.author, workspace=args.workspace)])


def run_history(args: argparse.Namespace) -> int:
    table = edits.history(args.workspace, sample_id=args.sample)
    if args.json:
        print(json.dumps(json.loads(table.to_json(orient="records")), indent=2))
    elif table.empty:
        print("no edits yet")
    else:
        shown = ["edit_id", "batch_id", "created_at", "author", "action", "sample_id", "old_label", "new_label",
                 "undoes", "active", "reason"]
        print(table[shown].astype("string").fillna("").to_string(index=False))
    return 0


def run_resolve_leaks(args: argparse.Namespace) -> int:
    check_workspace(args.workspace, data=args.data)
    dataset = load(args.data, workspace=args.workspace, labels=args.labels)
    leaks = None
    if args.near_mode == "verified":  # the same leaks the audit, the app and the report show
        edits.check_fingerprint(edits.read_workspace_meta(args.workspace), dataset, args.workspace)
        threshold = DEFAULT_NEAR_THRESHOLD if args.max_hamming_distance is None else args.max_hamming_distance
        config = AuditConfig(near_threshold=threshold, near_mode="verified", face_stage=False)
        leaks = run_audit(dataset, config, workspace=args.workspace).leaks
    planned = edits.resolve_leaks(dataset, args.reason, max_hamming_distance=args.max_hamming_distance,
                                  author=args.author, workspace=args.workspace, dry_run=args.dry_run, leaks=leaks)
    return print_edits(planned, dry_run=args.dry_run)


def run_resolve_group(args: argparse.Namespace) -> int:
    """The ids must form one of the audit's duplicate groups (the app resolves only those), and test
    images are dropped or relabelled only with --allow-test (the app's confirmation box)."""
    dataset = load_bound_dataset(args.data, args.workspace, args.labels)
    edits.check_fingerprint(edits.read_workspace_meta(args.workspace), dataset, args.workspace)  # before the audit
    config = AuditConfig(near_threshold=args.near_threshold, near_mode=args.near_mode, face_stage=False)
    samples = run_audit(dataset, config, workspace=args.workspace).samples
    group_of = samples.set_index("id")["near_group"].reindex(dataset.ids).fillna(-1).to_numpy(dtype="int64")
    edits.check_one_group(dataset, args.sample_ids, group_of)
    planned = edits.resolve_group(dataset, args.sample_ids, args.resolution, args.reason, emotion=args.emotion,
                                  keep_id=args.keep, author=args.author, workspace=args.workspace,
                                  dry_run=args.dry_run, allow_test=args.allow_test)
    print_edits(planned, dry_run=args.dry_run)
    if args.dry_run and not args.allow_test:
        try:
            edits.check_no_test_changes(dataset, [edit.sample_id for edit in planned])
        except ValueError as refusal:  # what the real run would say
            print(f"note: {refusal}")
    return 0


def print_edits(written: list[edits.Edit], dry_run: bool = False) -> int:
    """One line per edit (the first few when there are many), then a summary line."""
    for edit in written[:SHOWN_EDITS]:
        number = "planned" if edit.edit_id is None else f"#{edit.edit_id}"
        labels = f" ({edit.old_label or '-'} -> {edit.new_label or '-'})" if edit.old_label or edit.new_label else ""
        target = f" of #{edit.undoes}" if edit.undoes is not None else ""
        print(f"{number} {edit.action}{target} {edit.sample_id}{labels}")
    if len(written) > SHOWN_EDITS:
        print(f"... and {len(written) - SHOWN_EDITS} more")
    if dry_run:
        print(f"dry run: {len(written)} edit(s) planned, nothing written")
    elif written:
        print(f"{len(written)} edit(s) written in batch {written[0].batch_id}")
    else:
        print("nothing to do")
    return 0
