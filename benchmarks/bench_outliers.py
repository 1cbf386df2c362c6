"""Outlier kinds and the face stage on the real data: timings, memory, and figures against labels by eye.

    python benchmarks/bench_outliers.py [--data ../shared/fer2013] [--workspace DIR] [--labels CSV]
    python benchmarks/bench_outliers.py --samples OUT/samples.csv   # figures of an audit already run
    python benchmarks/bench_outliers.py --sheets DIR [--samples OUT/samples.csv]   # contact sheets of the labels

Runs `python -m fer_core audit` three times in a fresh workspace (unless --workspace names a warm one):
cold with the face stage, warm, and `--fast` (the pixel kinds only). Peak memory is the largest summed
RSS of the process tree, sampled every 20 ms (benchmarks/bench_audit.py's `run_measured`).

The labels (benchmarks/outliers_labels.csv: id, kind, stratum, weight) were assigned by eye on contact
sheets, by the developer, from the pixels alone: `blank`, `placeholder` (text, icons, cards), `drawing`
(comics, line art, cartoons, CGI), `no_usable_face` (a photo without an upright framed face: lying or
upside down, cut off by the frame, a hand over it, tiny, several faces, an object), or empty (a usable
face; posterised or striped photos count as faces). The sample has three strata: the top 240 of the
pixel score (all of them), 160 random images of the rest, and 160 random images of the rest that a
first version of the face stage called suspect (no face, |roll| > 30°, size < 0.5 or offset > 0.2).
`weight` is how many images of the whole data set each labelled image stands for (post-stratified:
top 1; the rest split into suspect / not suspect, each weighted by its size over its labelled count),
so the weighted figures estimate the whole data set; the unweighted ones describe the sample.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from bench_audit import run_measured  # noqa: E402

from fer_core.outliers.kinds import OUTLIER_KINDS  # noqa: E402

LABELS = ROOT / "benchmarks" / "outliers_labels.csv"


def run_audits(data: str, workspace: Path, out: Path) -> dict:
    """Cold (face stage included), warm, and --fast audits: wall time, peak memory, stage seconds."""
    results = {}
    for name, extra in (("cold", []), ("warm", []), ("fast", ["--fast"])):
        folder = out / name
        command = [sys.executable, "-m", "fer_core", "audit", data, "--out", str(folder), "--workspace",
                   str(workspace), "--quiet", *extra]
        wall, peak, _ = run_measured(command)
        summary = json.loads((folder / "summary.json").read_text())
        results[name] = {"wall_seconds": round(wall, 1), "peak_mib": round(peak),
                         "seconds_by_stage": summary["seconds_by_stage"], "outliers": summary["outliers"]}
    return results


def kind_figures(labels: pd.DataFrame, samples: pd.DataFrame) -> dict:
    """Per kind: precision and recall on the sample, and weighted (whole-data estimates); AP of the ranking."""
    joined = labels.merge(samples[["id", "outlier_kind", "outlier_score"]], on="id", how="left", validate="one_to_one")
    if joined["outlier_kind"].isna().any():
        raise SystemExit(f"{int(joined['outlier_kind'].isna().sum())} labelled ids are not in samples.csv")
    truth, found = joined["kind"].to_numpy(), joined["outlier_kind"].to_numpy()
    weight = joined["weight"].to_numpy()
    figures = {}
    for kind in OUTLIER_KINDS:
        hit, said, real = (found == kind) & (truth == kind), found == kind, truth == kind
        figures[kind] = {
            "labelled": int(real.sum()), "flagged": int(said.sum()), "right": int(hit.sum()),
            "precision": _ratio(hit.sum(), said.sum()), "recall": _ratio(hit.sum(), real.sum()),
            "precision_weighted": _ratio((weight * hit).sum(), (weight * said).sum()),
            "recall_weighted": _ratio((weight * hit).sum(), (weight * real).sum()),
        }
    not_face, flagged = truth != "", found != ""
    figures["any"] = {
        "labelled": int(not_face.sum()), "flagged": int(flagged.sum()), "right": int((not_face & flagged).sum()),
        "precision": _ratio((not_face & flagged).sum(), flagged.sum()),
        "recall": _ratio((not_face & flagged).sum(), not_face.sum()),
        "precision_weighted": _ratio((weight * (not_face & flagged)).sum(), (weight * flagged).sum()),
        "recall_weighted": _ratio((weight * (not_face & flagged)).sum(), (weight * not_face).sum()),
        "average_precision": round(float(average_precision_score(not_face, joined["outlier_score"])), 3),
        "average_precision_weighted": round(float(average_precision_score(not_face, joined["outlier_score"],
                                                                          sample_weight=weight)), 3),
    }
    return figures


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(float(numerator) / float(denominator), 3) if denominator else None


def markdown(figures: dict, title: str) -> str:
    lines = [f"#### {title}", "",
             "| kind | labelled | flagged | right | precision | recall | precision (weighted) | recall (weighted) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, row in figures.items():
        lines.append(f"| {kind or 'any'} | {row['labelled']} | {row['flagged']} | {row['right']} | {row['precision']} | "
                     f"{row['recall']} | {row['precision_weighted']} | {row['recall_weighted']} |")
    any_row = figures["any"]
    lines += ["", f"Average precision of `outlier_score` (any kind vs a usable face): {any_row['average_precision']} "
                  f"on the sample, {any_row['average_precision_weighted']} weighted."]
    return "\n".join(lines)


def write_sheets(labels: pd.DataFrame, data: str, folder: Path, samples: pd.DataFrame | None) -> list[Path]:
    """One contact sheet per labelled kind (10 tiles a row, 2× upscaled), each tile captioned with its
    position in the CSV and, given an audit's samples.csv, the kind the audit gave it: for checking
    the labels by eye. Written outside the repository (the images are FER-2013's)."""
    from PIL import Image, ImageDraw

    from fer_core.dataset.loading import load

    dataset = load(data)
    found = dict(zip(samples["id"], samples["outlier_kind"])) if samples is not None else {}
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, group in labels.groupby("kind", sort=False):
        tile, caption, columns = 96, 14, 10
        sheet = Image.new("L", (columns * (tile + 4), -(-len(group) // columns) * (tile + caption + 4)), 255)
        pen = ImageDraw.Draw(sheet)
        for number, (position, sample_id) in enumerate(zip(group.index, group["id"])):
            top, left = divmod(number, columns)
            x, y = left * (tile + 4), top * (tile + caption + 4)
            image = Image.fromarray(dataset.pixels[dataset.index_of(sample_id)]).resize((tile, tile), Image.Resampling.NEAREST)
            sheet.paste(image, (x, y + caption))
            pen.text((x + 2, y), f"{position} {found.get(sample_id, '')}"[:16], fill=0)
        paths.append(folder / f"labels_{kind or 'face'}.png")
        sheet.save(paths[-1])
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--workspace", default=None, help="default: a fresh temporary workspace (cold run)")
    parser.add_argument("--labels", default=str(LABELS))
    parser.add_argument("--samples", default=None, help="only score this samples.csv against the labels")
    parser.add_argument("--sheets", default=None, help="write contact sheets of the labelled images to this folder")
    args = parser.parse_args()
    labels = pd.read_csv(args.labels, keep_default_na=False)
    if args.sheets:
        samples = pd.read_csv(args.samples, keep_default_na=False) if args.samples else None
        for path in write_sheets(labels, args.data, Path(args.sheets), samples):
            print(f"wrote {path}")
        return
    if args.samples:
        print(markdown(kind_figures(labels, pd.read_csv(args.samples, keep_default_na=False)), args.samples))
        return
    with tempfile.TemporaryDirectory() as scratch:
        workspace = Path(args.workspace) if args.workspace else Path(scratch) / "workspace"
        runs = run_audits(args.data, workspace, Path(scratch))
        with_faces = pd.read_csv(Path(scratch) / "warm" / "samples.csv", keep_default_na=False)
        fast = pd.read_csv(Path(scratch) / "fast" / "samples.csv", keep_default_na=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
    print(json.dumps({"machine": machine, "runs": runs}, indent=2))
    print(markdown(kind_figures(labels, with_faces), "Full audit (face stage included)"))
    print()
    print(markdown(kind_figures(labels, fast), "`audit --fast` (pixel kinds only)"))


if __name__ == "__main__":
    main()
