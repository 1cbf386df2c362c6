"""`python -m fer_core curate DATA --policy recommended [--rules dedupe,leaks,...] [--dry-run] ...`: apply a policy.

The policy, its rules and the mislabel options are checked before the data is read; the workspace's
log (made for this data?) and, for a named mislabels rule, the stored mislabel result before the
audit runs. The audit is the default one without the face stage (its cached parts come from the
workspace): the rules read exact groups, verified leaks, the pixel kinds blank and placeholder and
the box-plot flag, none of which the face stage changes.
"""

from __future__ import annotations

import argparse

from fer_core.audit import AuditConfig, run_audit
from fer_core.cli.labels_option import add_labels_option
from fer_core.curation import policies
from fer_core.curation.edit_log import check_workspace_dataset, read_state
from fer_core.dataset.loading import load
from fer_core.mislabels.results import latest_result
from fer_core.paths import check_workspace

SHOWN_EXAMPLES = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("curate", help="apply a curation policy: its rules, one edit batch each")
    parser.add_argument("data", metavar="DATA", help="fer2013.csv or a folder with train/ and test/ image folders")
    parser.add_argument("--policy", default="recommended",
                        help=f"{' or '.join(policies.POLICIES)} (default recommended: "
                             f"{', '.join(policies.POLICIES['recommended'])}; study: "
                             f"{', '.join(policies.POLICIES['study'])})")
    parser.add_argument("--rules", help="only these of the policy's rules, comma-separated (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="show what each rule would change, write nothing")
    add_labels_option(parser)
    parser.add_argument("--workspace", default=None, help="workspace folder (default $FER_AUDIT_HOME or ./workspace)")
    parser.add_argument("--mislabel-threshold", type=float, default=policies.DEFAULT_MISLABEL_THRESHOLD,
                        help="the mislabels rule acts where the model's suggestion has at least this probability "
                             f"(default {policies.DEFAULT_MISLABEL_THRESHOLD})")
    parser.add_argument("--mislabel-action", default="relabel",
                        help=f"what the mislabels rule does: {' or '.join(policies.MISLABEL_ACTIONS)} (default relabel)")
    parser.add_argument("--author", help="who made the edits (default: $FER_AUDIT_AUTHOR, else the OS user)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = policies.PolicyConfig(mislabel_threshold=args.mislabel_threshold, mislabel_action=args.mislabel_action)
    rules = None if args.rules is None else args.rules.split(",")
    policies.choose_rules(args.policy, rules)
    check_workspace(args.workspace, data=args.data)
    dataset = load(args.data, workspace=args.workspace, labels=args.labels)
    check_workspace_dataset(dataset, args.workspace)  # before the audit
    mislabels = latest_result(dataset, args.workspace)
    policies.check_mislabel_result(args.policy, rules, mislabels)  # before the audit
    report = run_audit(dataset, AuditConfig(face_stage=False), workspace=args.workspace)
    if args.dry_run:
        plans = policies.plan_policy(report, read_state(args.workspace), args.policy, rules, config, mislabels)
    else:
        plans = policies.apply_policy(report, args.policy, rules, config, mislabels, author=args.author,
                                      workspace=args.workspace)
    for plan in plans:
        print(plan.describe(planned=args.dry_run))
        if plan.changes:
            more = len(plan.changes) - SHOWN_EXAMPLES
            print(f"  e.g. {', '.join(plan.examples(SHOWN_EXAMPLES))}" + (f" and {more:,} more" if more > 0 else ""))
    if args.dry_run:
        print("dry run: nothing written")
    else:
        batches = [plan for plan in plans if plan.batch_id]
        print(f"{len(batches)} batch(es) written: " + ", ".join(f"{plan.rule} {plan.batch_id}" for plan in batches)
              if batches else "nothing to do")
    return 0
