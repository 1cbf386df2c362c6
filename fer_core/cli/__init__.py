"""`python -m fer_core COMMAND ...`: one module per command family, each with `register(subparsers)`.

Errors the user can fix (bad paths, ids, emotions, options) arrive as ValueError and are printed
as one line on stderr with exit status 2; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("audit", "edit", "curate", "export", "train", "jobs", "compare", "report", "mislabels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_core", description="Audit, fix and retrain on FER-2013.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fer_core.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"fer_core.cli.{name}":
                raise
            continue  # command family not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
