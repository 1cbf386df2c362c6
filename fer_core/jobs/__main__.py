"""Internal entry points: `launch RUN_ID` (start a detached worker, print its pid), `work RUN_ID` (the
local worker), and `run --kind K --config-json JSON --data D --out O --workspace W` (the Ray job).

A user can rerun these by hand, so bad input (an unknown kind or run id, a config that is not valid
JSON or not a valid config) is one line on stderr and exit status 2, as in `python -m fer_core`;
nothing runs before the kind and the config are checked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    try:
        return run_action(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run_action(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_core.jobs")
    actions = parser.add_subparsers(dest="action", required=True)
    for name in ("launch", "work"):
        action = actions.add_parser(name)
        action.add_argument("run_id")
        action.add_argument("--workspace", required=True)
    run = actions.add_parser("run")
    for option in ("--kind", "--config-json", "--data", "--out", "--workspace"):
        run.add_argument(option, required=True)
    args = parser.parse_args(argv)
    if args.action in ("launch", "work") and not Path(args.workspace).is_dir():
        raise ValueError(f"--workspace {args.workspace} is not a folder (a run's workspace holds its record)")
    if args.action == "launch":
        from fer_core.jobs import records
        from fer_core.jobs.local import spawn_detached

        records.read_run(Path(args.workspace), args.run_id)  # an unknown id: one line, and no process started
        print(spawn_detached(args.run_id, Path(args.workspace)))
        return 0
    if args.action == "work":
        from fer_core.jobs.local import work

        return work(args.run_id, Path(args.workspace))
    from fer_core.jobs.ray_runner import run_entry

    return run_entry(args.kind, args.config_json, args.data, args.out, args.workspace)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
