"""`python -m fer_core COMMAND ...`: one module per command family, each with `register(subparsers)`.

The top layer: imports any layer; nothing in fer_core imports it.

Errors the user can fix (bad paths, ids, emotions, options) arrive as ValueError and are printed
as one line on stderr with exit status 2; nothing is written in that case. So is a write the disk
refuses (full, read-only, no permission) that reaches here without passing fer_core.files.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fer_core.files import write_failure

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
    except OSError as error:
        message = write_failure(error, error.filename or "an output file")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
