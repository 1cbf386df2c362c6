"""The fast audit at scale: FER-2013-sized folders made by make_faces.py, 1× to 28× (a million images).

    python benchmarks/bench_scale.py [--sizes real,1,4,16,28] [--data-dir /tmp/fer_scale] [--fresh]
                                     [--out benchmarks/RESULTS_scale] [--contempt | --no-contempt]

For each size k, `<data-dir>/faces_<k>x` holds k × 35,887 images (made once by make_faces.py and reused
while its make_faces.json matches; `--fresh` makes it again); `real` is FER-2013 itself (--real-data).
Each audit is `python -m fer_core audit DATA --fast` in its own process, first cold (a new workspace),
then warm (the same workspace again). Written: OUT.json and OUT.md, one row per size: wall seconds per
stage, peak memory of the process tree (RSS, and its anonymous part: RSS less file-backed pages such as
the memory-mapped pixel store), images per second, and the disk used by the folder and the workspace.
The load average is recorded before and after every run: on a shared machine the timings are only
comparable at the same load. Generated data never goes into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
FER_IMAGES = 35_887
DEFAULT_REAL = ROOT.parent / "shared" / "fer2013"
SAMPLE_SECONDS = 0.05


def measure(command: list[str], timeout: float) -> dict:
    """Wall seconds, peak RSS and peak anonymous memory (MiB) of a command and all its children."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peak_rss = peak_anonymous = 0
    while process.poll() is None:
        if time.perf_counter() - started > timeout:
            for child in process.children(recursive=True):
                child.kill()
            process.kill()
            raise SystemExit(f"{' '.join(command)}: over {timeout:.0f} s, stopped")
        rss = anonymous = 0
        try:
            for member in [process, *process.children(recursive=True)]:
                info = member.memory_info()
                rss += info.rss
                anonymous += info.rss - info.shared
        except psutil.Error:
            pass  # a worker that just ended
        peak_rss, peak_anonymous = max(peak_rss, rss), max(peak_anonymous, anonymous)
        time.sleep(SAMPLE_SECONDS)
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return {"wall_seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": round(peak_rss / 2**20),
            "peak_anonymous_mib": round(peak_anonymous / 2**20)}


def disk_mib(folder: Path) -> float:
    """Space a folder takes on disk (allocated blocks, as `du`)."""
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(path, name)).st_blocks * 512
            except OSError:
                pass
    return round(total / 2**20, 1)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def faces_folder(size: str, args: argparse.Namespace) -> tuple[Path, dict]:
    """The data of one size (made when missing or made with other settings) and how it was made."""
    if size == "real":
        return args.real_data, {}
    count = int(float(size) * FER_IMAGES)
    folder = args.data_dir / f"faces_{size}x"
    manifest_path = folder / "make_faces.json"
    if folder.exists() and not args.fresh:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        made_with_contempt = manifest.get("settings", {}).get("contempt_share", 0) > 0
        if manifest.get("images") == count and made_with_contempt == (not args.no_contempt):
            print(f"reusing {folder} ({count:,} images)", file=sys.stderr)
            return folder, {"generated": "reused", "generate_seconds": manifest.get("seconds")}
    if folder.exists():
        shutil.rmtree(folder)
    command = [sys.executable, str(ROOT / "benchmarks" / "make_faces.py"), str(count), str(folder),
               "--data", str(args.real_data), "--workers", str(args.workers)]
    if args.no_contempt:
        command.append("--no-contempt")
    print(f"making {folder} ({count:,} images)", file=sys.stderr)
    before = load_average()
    measured = measure(command, args.timeout)
    return folder, {"generated": "now", "generate_seconds": measured["wall_seconds"],
                    "generate_images_per_second": round(count / measured["wall_seconds"]),
                    "generate_load_average": [before, load_average()]}


def audit(data: Path, workspace: Path, out: Path, timeout: float) -> dict:
    """One fast audit: measured, with its summary's stage times."""
    command = [sys.executable, "-m", "fer_core", "audit", str(data), "--out", str(out), "--workspace", str(workspace),
               "--quiet", "--fast"]
    before = load_average()
    result = measure(command, timeout)
    summary = json.loads((out / "summary.json").read_text())
    result.update({"seconds_by_stage": summary["seconds_by_stage"], "load_average": [before, load_average()],
                   "images": summary["images"],
                   "images_per_second": round(summary["images"] / result["wall_seconds"])})
    return result


def bench_size(size: str, args: argparse.Namespace) -> dict:
    data, made = faces_folder(size, args)
    workspace = args.data_dir / f"workspace_{size}x"
    out = args.data_dir / f"audit_{size}x"
    shutil.rmtree(workspace, ignore_errors=True)
    row = {"size": size, "data": str(data), **made}
    for run in ("cold", "warm"):
        print(f"{run} audit of {data}", file=sys.stderr)
        row[run] = audit(data, workspace, out, args.timeout)
    row["images"] = row["cold"]["images"]
    row["data_disk_mib"] = disk_mib(data)
    row["workspace_disk_mib"] = disk_mib(workspace)
    return row


STAGES = ("load", "digests", "phash", "near_pairs", "outliers", "duplicates", "write")
STAGE_NAMES = {"load": "load (scan, decode, store)"}


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [f"Fast audit at scale ({machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
             f"{machine['date']}). Wall and peak memory of the whole process tree; stages overlap (two run at once).",
             "",
             "| data | images | run | wall s | images/s | peak RSS MiB | peak anonymous MiB | "
             + " | ".join(f"{STAGE_NAMES.get(stage, stage)} s" for stage in STAGES)
             + " | data disk MiB | workspace MiB | load avg before→after |",
             "|" + "---|" * (10 + len(STAGES))]
    for row in rows:
        for run in ("cold", "warm"):
            result = row[run]
            stages = result["seconds_by_stage"]
            cells = [f"{stages.get(stage, stages.get(f'{stage} (cache)', 0)):.1f}" for stage in STAGES]
            load = f"{result['load_average'][0][0]}→{result['load_average'][1][0]}"
            lines.append(f"| {row['size']}{'' if row['size'] == 'real' else '×'} | {row['images']:,} | {run} | "
                         f"{result['wall_seconds']} | {result['images_per_second']:,} | {result['peak_rss_mib']:,} | "
                         f"{result['peak_anonymous_mib']:,} | " + " | ".join(cells)
                         + f" | {row['data_disk_mib']:,} | {row['workspace_disk_mib']:,} | {load} |")
    generated = [row for row in rows if row.get("generated") == "now"]
    if generated:
        lines += ["", "Generation (make_faces.py): " + "; ".join(
            f"{row['size']}× {row['generate_seconds']} s ({row['generate_images_per_second']:,} images/s)"
            for row in generated)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="real,1,4", help="comma-separated multiples of FER-2013, or real")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/fer_scale"),
                        help="where the generated folders, workspaces and audits go (never the repository)")
    parser.add_argument("--real-data", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--fresh", action="store_true", help="make the generated folders again")
    parser.add_argument("--no-contempt", action="store_true", help="generated folders without a contempt class")
    parser.add_argument("--workers", type=int, default=2, help="make_faces processes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command before it is stopped")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS_scale",
                        help="results as OUT.json and OUT.md")
    args = parser.parse_args(argv)
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    for size in sizes:
        if size != "real":
            float(size)  # a clear ValueError on a typo
    if args.data_dir.resolve().is_relative_to(ROOT):
        parser.error(f"--data-dir {args.data_dir} is inside the repository; generated data goes elsewhere")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "memory_gib": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        with open("/proc/cpuinfo") as handle:
            machine["cpu"] = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = []
    for size in sizes:
        rows.append(bench_size(size, args))
        args.out.with_suffix(".json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(rows, machine))
    print(markdown(rows, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
