"""The pHash near search and the hash-mode grouping on FER-2013 per threshold: what MAX_NEAR_THRESHOLD rests on.

    python benchmarks/bench_hash_threshold.py [--data ../shared/fer2013] [--thresholds 6 8 10 12 16]
                                              [--group-up-to 12] [--workspace /tmp/bench_hash_threshold]

For each threshold, on FER-2013's distinct pHashes: the seconds of the multi-index search (only where
its key sets are at most --index-key-sets: at 16 bits there are 735,471, about 54 minutes), of the
blocked scan of all pairs, and the pairs within the threshold; then the seconds of the hash-mode
near-duplicate grouping (`find_near_duplicates`: links, groups, leaks, pair table) and its largest
group, up to --group-up-to bits (beyond the bound it is run with the bound's check lifted; at 16 bits
it takes minutes and about 12 GB). One process, one run per cell (the searches take seconds).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from math import comb
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.dataset.loading import load  # noqa: E402
from fer_core.duplicates import grouping, hashing  # noqa: E402
from fer_core.duplicates.limits import MAX_NEAR_THRESHOLD  # noqa: E402


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--workspace", default="/tmp/bench_hash_threshold")
    parser.add_argument("--thresholds", type=int, nargs="+", default=sorted({6, 8, 10, 12, 16, MAX_NEAR_THRESHOLD}))
    parser.add_argument("--group-up-to", type=int, default=12)
    parser.add_argument("--index-key-sets", type=int, default=2000)
    args = parser.parse_args()

    dataset = load(args.data, workspace=args.workspace)
    hash_seconds, hashes = timed(hashing.phash_batch, dataset.pixels)
    digests = hashing.exact_digests(dataset.pixels)
    unique = np.unique(hashes)
    print(f"{cpu_name()}; {len(dataset):,} images, {len(unique):,} distinct pHashes (hashed in {hash_seconds:.1f} s); "
          f"MAX_NEAR_THRESHOLD = {MAX_NEAR_THRESHOLD}, MAX_CLOSE_PAIRS = {hashing.MAX_CLOSE_PAIRS:,}\n")
    print("| bits | key sets | index s | scan s | chosen | pairs | grouping s | groups | largest group |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    grouping.check_near_threshold = int  # time the settings beyond the bound too (this process only)
    for bits in args.thresholds:
        chunks, agree = hashing.chunk_plan(bits, len(unique))
        key_sets = comb(chunks, agree)
        index_cell = "—"
        if key_sets <= args.index_key_sets:
            index_seconds, (a, _) = timed(hashing._close_pairs_by_index, unique, bits, chunks, agree)
            index_cell = f"{index_seconds:.2f}"
        scan_seconds, (a, _) = timed(hashing._close_pairs_by_scan, unique, bits)
        chosen = "scan" if key_sets * hashing.SCAN_PAIRS_PER_KEY_SET > len(unique) else "index"
        group_cells = "— | — | —"
        if bits <= args.group_up_to:
            group_seconds, near = timed(grouping.find_near_duplicates, dataset, hashes, digests, "hash", bits)
            largest = int(near.groups["size"].max()) if len(near.groups) else 0
            group_cells = f"{group_seconds:.2f} | {len(near.groups):,} | {largest:,}"
        print(f"| {bits} | {key_sets:,} | {index_cell} | {scan_seconds:.2f} | {chosen} | {len(a):,} | {group_cells} |",
              flush=True)


if __name__ == "__main__":
    main()
