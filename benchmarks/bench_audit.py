"""Audit benchmark on the real data: cold and warm audits, and a 1M-hash near-duplicate search.

    python benchmarks/bench_audit.py [--data ../shared/fer2013] [--threshold 6] [--hashes 1000000] [--peers]

Each timed run is a separate process; peak memory is the largest summed RSS of that process
and its children, sampled every 20 ms. `--peers` also times cleanvision's Imagelab on the same
folder (pip install cleanvision first; it takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def run_measured(command: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB over the process tree, stdout) of a command."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, **(env or {})}, cwd=ROOT)
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return time.perf_counter() - started, peak / 2**20, stdout


def bench_audit(data: str, threshold: int, workspace: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "fer_core", "audit", data, "--out", str(out), "--workspace", str(workspace),
               "--near-threshold", str(threshold), "--quiet", "--fast"]  # the face stage: bench_outliers.py
    results = {}
    for name in ("cold", "warm"):
        wall, peak, _ = run_measured(command)
        summary = json.loads((out / "summary.json").read_text())
        results[name] = {"wall_seconds": round(wall, 2), "audit_seconds": summary["seconds"],
                         "peak_mib": round(peak), "seconds_by_stage": summary["seconds_by_stage"]}
    results["figures"] = {key: summary[key] for key in ("images", "exact", "near", "leaks", "outliers")}
    return results


HASH_SEARCH = """
import json, sys, time
import numpy as np
from fer_core.duplicates.hashing import find_near_links, hamming_distance
from fer_core.duplicates.grouping import components_from_pairs
count, planted, radius = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
hashes = rng.integers(0, 2**63, count, dtype=np.int64).astype(np.uint64) ^ (rng.integers(0, 2, count).astype(np.uint64) << np.uint64(63))
sources = rng.choice(count, planted, replace=False)
targets = rng.choice(np.setdiff1d(np.arange(count), sources), planted, replace=False)
for s, t, k in zip(sources, targets, rng.integers(1, radius + 1, planted)):
    bits = rng.choice(64, k, replace=False).astype(np.uint64)
    hashes[t] = hashes[s] ^ np.bitwise_or.reduce(np.uint64(1) << bits)
started = time.perf_counter()
i, j, d = find_near_links(hashes, radius)
groups = components_from_pairs(count, i, j)
seconds = time.perf_counter() - started
found = int(np.sum((groups[sources] == groups[targets]) & (groups[sources] >= 0)))
print(json.dumps({"hashes": count, "planted_pairs": planted, "radius": radius, "seconds": round(seconds, 2),
                  "pairs_found": int(len(i)), "planted_found": found}))
"""


def bench_hash_search(count: int, radius: int) -> dict:
    wall, peak, stdout = run_measured([sys.executable, "-c", HASH_SEARCH, str(count), str(count // 100), str(radius)])
    return {**json.loads(stdout), "wall_seconds": round(wall, 2), "peak_mib": round(peak)}


PEER = """
import sys, time
from cleanvision import Imagelab
started = time.perf_counter()
lab = Imagelab(data_path=sys.argv[1])
lab.find_issues({"exact_duplicates": {}, "near_duplicates": {}, "dark": {}, "light": {}, "low_information": {},
                 "blurry": {}})
print(time.perf_counter() - started)
"""


def bench_peer(data: str) -> dict:
    wall, peak, stdout = run_measured([sys.executable, "-c", PEER, data])
    return {"tool": "cleanvision Imagelab", "seconds": round(float(stdout.strip().splitlines()[-1]), 1),
            "wall_seconds": round(wall, 1), "peak_mib": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--threshold", type=int, default=6)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--peers", action="store_true", help="also run cleanvision on the same folder")
    args = parser.parse_args()

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"
    results = {"machine": machine, "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as scratch:
        results["audit"] = bench_audit(args.data, args.threshold, Path(scratch) / "ws", Path(scratch) / "out")
    results["hash_search"] = bench_hash_search(args.hashes, args.threshold)
    if args.peers:
        results["peer"] = bench_peer(args.data)
        results["peer"]["ratio_to_our_cold_audit"] = round(
            results["peer"]["seconds"] / results["audit"]["cold"]["audit_seconds"], 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
