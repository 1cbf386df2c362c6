"""Internal entry points: `launch RUN_ID` (start a detached worker, print its pid), `work RUN_ID` (the
local worker), and `run --kind K --config-json JSON --data D --out O --workspace W` (the Ray job)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
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
    if args.action == "launch":
        from fer_core.jobs.local import spawn_detached

        print(spawn_detached(args.run_id, Path(args.workspace)))
        return 0
    if args.action == "work":
        from fer_core.jobs.local import work

        return work(args.run_id, Path(args.workspace))
    from fer_core.jobs.ray_runner import run_entry

    return run_entry(args.kind, args.config_json, args.data, args.out, args.workspace)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
