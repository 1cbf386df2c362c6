"""Near duplicates on the real data: planted copies (recall per kind), before → after figures, timings.

    python benchmarks/bench_near.py [--data ../shared/fer2013] [--copies 200] [--seed 0]
                                    [--sheet /tmp/near_new_pairs.png]

Planted copies: 2 × copies distinct Training images are drawn per kind; copies of the first half
("tuning") only print their similarity percentiles (what the default threshold was read from),
copies of the second half ("held out") give the recall. Kinds: JPEG re-encoding (quality 30–70),
brightness/contrast ±15 %, shift 1–3 px, crop of 2–5 px resized back, horizontal mirror, and
combinations (2–3 of shift/crop/mirror/brightness, then JPEG). A copy is found when it lands in
its original's near group; its pair is right when the kind matches.

On the real data alone it compares the hash-only mode (pHash ≤ threshold) with the verified
mode: groups, conflicting groups, leaks; the similarity histogram of candidates and accepted
pairs; and writes a contact sheet of 50 random pairs that the verified mode accepts and the
hash-only mode does not link (look at it and count the pairs that are not the same photo).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_core.dataset.loading import Dataset, load  # noqa: E402
from fer_core.duplicates.candidates import descriptor_candidates, hash_candidates, shape_descriptors  # noqa: E402
from fer_core.duplicates.grouping import (NO_GROUP, describe_groups, exact_pairs, expand_pairs, find_leaks, group_near,
                                          group_verified, leaks_from_pairs)
from fer_core.duplicates.hashing import exact_digests, phash_and_mirror_batch  # noqa: E402
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD
from fer_core.duplicates.verification import NearVerifyConfig, VerifiedPairs, accepted, verify_pairs  # noqa: E402

PLANTED_KINDS = ("jpeg", "brightness", "shift", "crop", "mirror", "combined")
EXPECTED_KIND = {"jpeg": "near", "brightness": "near", "shift": "shifted", "crop": "cropped", "mirror": "mirrored"}


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def transform(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One planted copy of `image` of the given kind."""
    if kind == "jpeg":
        return jpeg(image, rng.integers(30, 71))
    if kind == "brightness":
        gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.15, 0.15) * 128
        mean = image.mean()
        return np.clip(gain * (image.astype(np.float64) - mean) + mean + offset, 0, 255).astype(np.uint8)
    if kind == "shift":
        size = rng.integers(1, 4)
        dx, dy = rng.integers(-size, size + 1, 2)
        if max(abs(dx), abs(dy)) < size:
            dx = size * rng.choice([-1, 1])
        return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (48, 48), borderMode=cv2.BORDER_REPLICATE)
    if kind == "crop":
        total = rng.integers(2, 6)
        left, top = rng.integers(0, total + 1, 2)
        return cv2.resize(image[top:48 - (total - top), left:48 - (total - left)], (48, 48),
                          interpolation=cv2.INTER_LINEAR)
    if kind == "mirror":
        return np.ascontiguousarray(image[:, ::-1])
    if kind == "combined":
        for part in rng.choice(["shift", "crop", "mirror", "brightness"], rng.integers(2, 4), replace=False):
            image = transform(image, str(part), rng)
        return jpeg(image, rng.integers(30, 71))
    raise ValueError(f"unknown planted kind {kind!r}; expected one of {', '.join(PLANTED_KINDS)}")


def plant_copies(dataset: Dataset, copies: int, seed: int) -> tuple[Dataset, dict]:
    """The dataset plus planted copies (Training); returns the plan: kind → (original rows, copy rows, half)."""
    rng = np.random.default_rng(seed)
    training = np.flatnonzero(dataset.usages == "Training")
    chosen = rng.choice(training, 2 * copies * len(PLANTED_KINDS), replace=False).reshape(len(PLANTED_KINDS), -1)
    images, plan = [], {}
    next_row = len(dataset)
    for kind, originals in zip(PLANTED_KINDS, chosen):
        images += [transform(dataset.pixels[row], kind, rng) for row in originals]
        plan[kind] = (originals, next_row + np.arange(len(originals)), np.repeat(["tuning", "held_out"], copies))
        next_row += len(originals)
    planted = Dataset(ids=np.concatenate([dataset.ids, [f"planted_{n}" for n in range(len(images))]]),
                      pixels=np.concatenate([dataset.pixels, np.stack(images)]),
                      labels=np.concatenate([dataset.labels, dataset.labels[chosen.ravel()]]),
                      usages=np.concatenate([dataset.usages, np.full(len(images), "Training")]),
                      source=dataset.source + " + planted")
    return planted, plan


def timed(seconds: dict, name: str, work):
    """Run `work`, recording its wall and CPU seconds (CPU: this process only, so a busy machine
    inflates it less than the wall time)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    seconds[name] = {"wall": round(time.perf_counter() - wall, 2), "cpu": round(time.process_time() - cpu, 2)}
    return result


def verified_near(dataset: Dataset, config: NearVerifyConfig, seconds: dict) -> tuple[VerifiedPairs, VerifiedPairs,
                                                                                         np.ndarray, np.ndarray]:
    """(all scored candidate pairs, accepted pairs incl. exact links, hashes, digests), stage by stage."""
    pixels = np.asarray(dataset.pixels)
    hashes, mirror_hashes = timed(seconds, "phash (with mirror)", lambda: phash_and_mirror_batch(pixels))
    digests = timed(seconds, "exact digests", lambda: exact_digests(pixels))
    _, representatives = np.unique(digests, return_index=True)
    representatives = np.sort(representatives)
    descriptors = timed(seconds, "descriptors", lambda: shape_descriptors(pixels[representatives]))
    shape = timed(seconds, "descriptor neighbours", lambda: descriptor_candidates(descriptors, config))
    by_hash = timed(seconds, "hash candidates (direct + mirror)",
                    lambda: hash_candidates(hashes[representatives], mirror_hashes[representatives], config.hash_radius,
                                            config.mirror_hash_radius))
    a = representatives[np.concatenate([shape[0], by_hash[0]])]
    b = representatives[np.concatenate([shape[1], by_hash[1]])]
    codes = np.unique(np.minimum(a, b) * len(pixels) + np.maximum(a, b))
    a, b = codes // len(pixels), codes % len(pixels)
    scored = timed(seconds, "verification", lambda: verify_pairs(pixels, a, b, config))
    return scored, VerifiedPairs.concatenate([exact_pairs(digests), scored.select(accepted(scored, config))]), hashes, digests


def recall_by_kind(plan: dict, group_of: np.ndarray, pairs: VerifiedPairs) -> dict:
    kind_of_pair = {(min(a, b), max(a, b)): kind for a, b, kind in zip(pairs.rows_a.tolist(), pairs.rows_b.tolist(),
                                                                       pairs.kind.tolist())}
    result = {}
    for kind, (originals, copies, half) in plan.items():
        held = half == "held_out"
        found = (group_of[originals] == group_of[copies]) & (group_of[copies] != NO_GROUP)
        direct = [kind_of_pair.get((min(o, c), max(o, c))) for o, c in zip(originals[held], copies[held])]
        expected = EXPECTED_KIND.get(kind)
        result[kind] = {
            "copies": int(held.sum()),
            "recall": round(float(found[held].mean()), 3),
            "direct_pair": round(float(np.mean([k is not None for k in direct])), 3),
            "right_kind": None if expected is None else round(float(np.mean([k == expected for k in direct if k])), 3),
            "kinds_found": {k: direct.count(k) for k in sorted({k for k in direct if k})},
        }
    return result


def similarity_percentiles(plan: dict, scored: VerifiedPairs) -> dict:
    score = {(a, b): s for a, b, s in zip(scored.rows_a.tolist(), scored.rows_b.tolist(), scored.similarity.tolist())}
    out = {}
    for kind, (originals, copies, half) in plan.items():
        values = [score.get((min(o, c), max(o, c)), np.nan) for o, c in zip(originals[half == "tuning"],
                                                                           copies[half == "tuning"])]
        values = np.array(values, float)
        out[kind] = {"not_a_candidate": int(np.isnan(values).sum()),
                     **{f"p{p}": round(float(np.nanpercentile(values, p)), 3) for p in (1, 2, 5, 10, 50)}}
    return out


def figures(dataset: Dataset, group_of: np.ndarray, leaks) -> dict:
    groups = describe_groups(dataset, group_of)
    return {"groups": int(len(groups)), "images_in_groups": int(groups["size"].sum()),
            "conflicting_groups": int(groups["conflicting"].sum()),
            "cross_split_groups": int(groups["cross_split"].sum()),
            "leak_pairs": int(len(leaks.train_rows)),
            "test_images_with_training_copy": int(len(leaks.leaked_test_rows()))}


def contact_sheet(dataset: Dataset, pairs: VerifiedPairs, path: Path, count: int, seed: int) -> list[dict]:
    """A PNG of `count` random pairs (two images side by side, 2× size, numbered), and their list."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(pairs), min(count, len(pairs)), replace=False))
    tile, label, columns = 96, 14, 5
    rows = (len(chosen) + columns - 1) // columns
    sheet = Image.new("L", (columns * (2 * tile + 12), rows * (tile + label + 8)), color=255)
    pen = ImageDraw.Draw(sheet)
    listing = []
    for number, index in enumerate(chosen):
        a, b = int(pairs.rows_a[index]), int(pairs.rows_b[index])
        x, y = (number % columns) * (2 * tile + 12), (number // columns) * (tile + label + 8)
        for offset, row in ((0, a), (tile, b)):
            sheet.paste(Image.fromarray(np.asarray(dataset.pixels[row])).resize((tile, tile), Image.Resampling.NEAREST),
                        (x + offset, y + label))
        pen.text((x + 2, y), f"{number + 1}. {pairs.kind[index]} {pairs.similarity[index]:.3f}", fill=0)
        listing.append({"number": number + 1, "id_a": str(dataset.ids[a]), "id_b": str(dataset.ids[b]),
                        "kind": str(pairs.kind[index]), "similarity": round(float(pairs.similarity[index]), 3)})
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--copies", type=int, default=200, help="held-out copies per kind (as many again for tuning)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=int, default=DEFAULT_NEAR_THRESHOLD, help="hash-only mode's pHash bits")
    # The sheet shows dataset images: written outside the repository, never committed.
    parser.add_argument("--sheet", default="/tmp/near_new_pairs.png")
    parser.add_argument("--skip-planted", action="store_true", help="only the real-data comparison")
    args = parser.parse_args()
    config = NearVerifyConfig()
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "load_average_at_start": [round(value, 1) for value in os.getloadavg()],
                     "config": {name: getattr(config, name) for name in (
                         "min_similarity", "wide_min_similarity", "wide_shift", "hash_radius", "mirror_hash_radius",
                         "descriptor_neighbours",
                         "descriptor_dimensions", "descriptor_probes", "max_shift", "coarse_min_similarity",
                         "refine_radius")}}
    dataset = load(args.data)

    # the real data: hash-only vs verified
    seconds: dict = {}
    scored, accepted, hashes, digests = verified_near(dataset, config, seconds)
    results["real_seconds_by_stage"] = seconds
    results["real_candidates"] = int(len(scored))
    results["real_fine_searched"] = int((scored.kind != "").sum())  # reached coarse_min_similarity
    verified_of = group_verified(len(dataset), accepted)
    hash_of = group_near(hashes, args.threshold)
    verified_leaks = leaks_from_pairs(dataset, expand_pairs(accepted.select(accepted.kind != "exact"), digests), hashes)
    results["real_before_after"] = {
        "hash_only": figures(dataset, hash_of, find_leaks(dataset, args.threshold, hashes)),
        "verified": figures(dataset, verified_of, verified_leaks),
    }
    non_exact = accepted.select(accepted.kind != "exact")
    results["real_pairs_by_kind"] = {kind: int((non_exact.kind == kind).sum()) for kind in np.unique(non_exact.kind.astype(str))}
    edges = [0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0001]
    results["real_candidate_histogram"] = {f"{low:.2f}–{min(high, 1):.2f}": int(count) for low, high, count in zip(
        edges[:-1], edges[1:], np.histogram(scored.similarity, edges)[0])}
    new = non_exact.select((hash_of[non_exact.rows_a] != hash_of[non_exact.rows_b]) | (hash_of[non_exact.rows_a] == NO_GROUP))
    results["real_new_pairs"] = int(len(new))
    results["contact_sheet"] = {"path": str(Path(args.sheet).relative_to(ROOT)) if Path(args.sheet).is_relative_to(ROOT)
                                else args.sheet, "pairs": contact_sheet(dataset, new, Path(args.sheet), 50, args.seed)}

    if not args.skip_planted:
        planted, plan = plant_copies(dataset, args.copies, args.seed)
        planted_seconds: dict = {}
        scored_p, accepted_p, hashes_p, _ = verified_near(planted, config, planted_seconds)
        group_of = group_verified(len(planted), accepted_p)
        results["planted_recall_verified"] = recall_by_kind(plan, group_of, accepted_p)
        results["planted_recall_hash_only"] = {kind: value["recall"] for kind, value in recall_by_kind(
            plan, group_near(hashes_p, args.threshold), exact_pairs(exact_digests(planted.pixels))).items()}
        results["planted_tuning_similarity"] = similarity_percentiles(plan, scored_p)
    results["load_average_at_end"] = [round(value, 1) for value in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
