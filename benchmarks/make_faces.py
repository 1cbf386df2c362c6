"""Make an N-image FER-layout folder from FER-2013, for audits at scale.

    python benchmarks/make_faces.py N OUT [--data ../shared/fer2013] [--seed 0] [--workers 2]
                                          [--exact-share 0.01] [--near-share 0.02] [--no-contempt]

OUT gets train/<emotion>/ and test/<emotion>/ folders of 48×48 grayscale JPEGs (named
`<Usage>_<row>.jpg`, so the usage comes from the name as in FER-2013), `make_faces.json` (the
settings and counts) and `planted.csv` (every planted copy: id, the id it copies, kind). Nothing is
written inside the repository unless OUT is there: put it under /tmp or a data disk.

Each image is one FER-2013 face (row i takes source face i mod 35,887, so every face is used before
any is used twice) under random transforms: from its second use on, blended with another face
(weight 0.4–0.55 on its own) and rotated by up to 15°, so that reuses are new faces rather than copies
(of two reuses of one face, 8 % reach the verification's fine search, none is accepted); then scaled,
shifted, mirrored, brightened, noised and JPEG-encoded at a random quality. Planted on top, within
each chunk of rows: exact copies (the same file bytes under another name) and near copies (the same
face shifted by 1–2 px, re-lit, re-noised and re-encoded), some under another emotion (a conflict) or
in the other split (a leak), and a share of images in a `contempt` folder (`--no-contempt`: none).

Seeded: the same N, seed and shares give the same bytes whatever the number of workers. The folder
is built beside OUT under a temporary name and renamed into place when whole; an OUT that exists is
refused (delete it, or let `bench_scale.py --reuse` keep it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "fer2013"
EMOTION_FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CONTEMPT = "contempt"
SIDE = 48
CHUNK_ROWS = 4096
FRESH, EXACT, NEAR = 0, 1, 2
KIND_NAMES = {EXACT: "exact", NEAR: "near"}
MANIFEST = "make_faces.json"


@dataclass(frozen=True)
class FaceSettings:
    """What make_faces plants; every share is of all N images."""

    seed: int = 0
    exact_share: float = 0.01
    near_share: float = 0.02
    conflict_share: float = 0.2  # of the planted copies: filed under another emotion
    cross_split_share: float = 0.1  # of the planted copies: in the other split (a train–test leak)
    contempt_share: float = 0.02  # of the fresh images: moved to a contempt folder (0 with --no-contempt)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "seed" and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} {value} out of range; expected 0..1")
        if self.exact_share + self.near_share > 0.5:
            raise ValueError("exact_share + near_share above 0.5: most images would be copies")


@dataclass(frozen=True)
class Sources:
    """FER-2013's faces: pixels (n×48×48 uint8), emotion index, split ('train'/'test'), usage (file prefix)."""

    pixels: np.ndarray
    emotions: np.ndarray
    splits: np.ndarray
    usages: np.ndarray


def read_sources(data: Path) -> Sources:
    """Every FER-2013 image under data/{train,test}/<emotion>/, sorted by path."""
    pixels, emotions, splits, usages = [], [], [], []
    for split in ("train", "test"):
        for emotion, folder in enumerate(EMOTION_FOLDERS):
            for path in sorted((data / split / folder).glob("*.jpg")):
                image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                if image is None or image.shape != (SIDE, SIDE):
                    continue
                pixels.append(image)
                emotions.append(emotion)
                splits.append(split)
                usages.append(path.name.split("_")[0])
    if not pixels:
        raise ValueError(f"{data}: no 48×48 FER-2013 images under train/<emotion>/ and test/<emotion>/")
    return Sources(np.stack(pixels), np.array(emotions, np.int8), np.array(splits), np.array(usages))


@dataclass(frozen=True)
class Plan:
    """Per output row: its source face, kind (fresh / exact / near copy), the row it copies, where it goes."""

    source: np.ndarray
    kind: np.ndarray
    original: np.ndarray  # the row a copy copies (-1 for a fresh image); always an earlier row of its chunk
    folder: np.ndarray  # emotion folder name
    split: np.ndarray
    usage: np.ndarray

    first_row: int = 0  # the plan's first row (a chunk's plan is a slice)

    def relative_path(self, row: int) -> str:
        at = row - self.first_row
        return f"{self.split[at]}/{self.folder[at]}/{self.usage[at]}_{row:07d}.jpg"

    def rows(self, start: int, stop: int) -> Plan:
        """Rows [start, stop) only (what one worker needs: copies stay inside their chunk)."""
        return Plan(*(getattr(self, name)[start:stop] for name in ("source", "kind", "original", "folder", "split",
                                                                    "usage")), first_row=start)


def plan_rows(count: int, sources: Sources, settings: FaceSettings) -> Plan:
    """Which face each row shows, which rows are planted copies of which, and their folders (vectorised)."""
    rng = np.random.default_rng([settings.seed, 1])
    rows = np.arange(count)
    source = rng.permutation(len(sources.pixels))[rows % len(sources.pixels)]  # train and test mixed from row 0
    draw = rng.random(count)
    kind = np.where(draw < settings.exact_share, EXACT,
                    np.where(draw < settings.exact_share + settings.near_share, NEAR, FRESH)).astype(np.int8)
    chunk_start = rows - rows % CHUNK_ROWS
    kind[rows == chunk_start] = FRESH  # a chunk's first row has nothing earlier to copy
    # a copy copies a fresh row earlier in its chunk (copies of copies would be the same thing)
    original = np.full(count, -1, np.int64)
    copies = np.flatnonzero(kind != FRESH)
    for row in copies:  # a few percent of the rows
        start = chunk_start[row]
        candidate = start + int(rng.integers(0, row - start))
        while kind[candidate] != FRESH:
            candidate -= 1
            if candidate < start:
                candidate = start
                break
        original[row] = candidate
    has_original = original >= 0
    source[has_original] = source[original[has_original]]
    emotion = sources.emotions[source].astype(np.int64)
    split = sources.splits[source].copy()
    usage = sources.usages[source].copy()
    conflict = has_original & (rng.random(count) < settings.conflict_share)
    other = rng.integers(1, len(EMOTION_FOLDERS), count)
    emotion[conflict] = (emotion[conflict] + other[conflict]) % len(EMOTION_FOLDERS)
    folder = np.array(EMOTION_FOLDERS, dtype=object)[emotion]
    cross = has_original & (rng.random(count) < settings.cross_split_share)
    to_test = cross & (split == "train")
    to_train = cross & (split == "test")
    split[to_test], usage[to_test] = "test", "PrivateTest"
    split[to_train], usage[to_train] = "train", "Training"
    contempt = (kind == FRESH) & (rng.random(count) < settings.contempt_share)
    folder[contempt] = CONTEMPT
    return Plan(source, kind, original, folder.astype(str), split, usage)


def fresh_image(sources: Sources, source: int, partner: int, reuse: bool, rng: np.random.Generator) -> np.ndarray:
    """One new face (float32, before lighting and noise): the source, blended with a partner face when the
    source is reused, under a random rotation, scale, shift and mirror."""
    image = sources.pixels[source].astype(np.float32)
    if reuse:
        weight = rng.uniform(0.4, 0.55)
        image = weight * image + (1 - weight) * sources.pixels[partner]
    angle = rng.uniform(-15, 15) if reuse else rng.uniform(-4, 4)
    matrix = cv2.getRotationMatrix2D(((SIDE - 1) / 2, (SIDE - 1) / 2), angle, rng.uniform(0.92, 1.08))
    matrix[:, 2] += rng.uniform(-2, 2, 2)
    image = cv2.warpAffine(image, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return image[:, ::-1] if rng.random() < 0.5 else image


def finish_image(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """Lighting, sensor noise and a JPEG at a random quality: the file's bytes."""
    lit = image * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15) + rng.normal(0, rng.uniform(0, 4), image.shape)
    pixels = np.clip(np.rint(lit), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return encoded.tobytes()


def near_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same face shifted by 1–2 px in each direction (edges repeated)."""
    shift_y, shift_x = rng.integers(-2, 3, 2)
    matrix = np.float32([[1, 0, shift_x], [0, 1, shift_y]])
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (SIDE, SIDE), borderMode=cv2.BORDER_REPLICATE)


_SOURCES: Sources | None = None  # set in each worker once (fork: shared with the parent)


def render_chunk(task: tuple[Path, Plan, FaceSettings, int, int]) -> int:
    """Write rows [start, stop) of the plan under `out`; a chunk's rng depends only on the seed and its start."""
    out, plan, settings, start, stop = task
    sources = _SOURCES
    rng = np.random.default_rng([settings.seed, 2, start])
    kept_images: dict[int, np.ndarray] = {}
    kept_bytes: dict[int, bytes] = {}
    faces = len(sources.pixels)
    for row in range(start, stop):
        kind, source = plan.kind[row - start], int(plan.source[row - start])
        if kind == FRESH:
            partner = int(rng.integers(0, faces - 1))
            partner += partner >= source
            image = fresh_image(sources, source, partner, row >= faces, rng)  # each face's first use: no blend
            data = finish_image(image, rng)
            kept_images[row], kept_bytes[row] = image, data
        elif kind == EXACT:
            data = kept_bytes[int(plan.original[row - start])]
        else:
            data = finish_image(near_copy(kept_images[int(plan.original[row - start])], rng), rng)
        with open(out / plan.relative_path(row), "wb") as handle:
            handle.write(data)
    return stop - start


def _init_worker(sources: Sources) -> None:
    global _SOURCES
    _SOURCES = sources


def make_faces(count: int, out: Path, data: Path = DEFAULT_DATA, settings: FaceSettings = FaceSettings(),
               workers: int = 1, progress=None) -> dict:
    """Build the folder (see the module docstring); returns the manifest written as make_faces.json."""
    if count < 1:
        raise ValueError(f"N {count} out of range; expected at least 1 image")
    out = Path(out)
    if os.path.lexists(out):
        raise ValueError(f"{out} exists; remove it or choose another OUT")
    started = time.perf_counter()
    sources = read_sources(Path(data))
    plan = plan_rows(count, sources, settings)
    building = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        for folder in sorted({f"{split}/{name}" for split, name in zip(plan.split.tolist(), plan.folder.tolist())}):
            (building / folder).mkdir(parents=True, exist_ok=True)
        tasks = [(building, plan.rows(start, min(start + CHUNK_ROWS, count)), settings, start,
                  min(start + CHUNK_ROWS, count))
                 for start in range(0, count, CHUNK_ROWS)]
        done = 0
        if workers <= 1:
            _init_worker(sources)
            results = map(render_chunk, tasks)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(sources,))
            results = pool.map(render_chunk, tasks)
        try:
            for written in results:
                done += written
                if progress:
                    progress(done, count)
        finally:
            if pool is not None:
                pool.shutdown()
        copies = np.flatnonzero(plan.kind != FRESH)
        planted = ["id,copy_of,kind"] + [f"{plan.relative_path(row)},{plan.relative_path(int(plan.original[row]))},"
                                         f"{KIND_NAMES[int(plan.kind[row])]}" for row in copies]
        (building / "planted.csv").write_text("\n".join(planted) + "\n")
        manifest = {"images": count, "source": str(data), "sources": len(sources.pixels), "settings": asdict(settings),
                    "exact_copies": int(np.sum(plan.kind == EXACT)), "near_copies": int(np.sum(plan.kind == NEAR)),
                    "contempt": int(np.sum(plan.folder == CONTEMPT)),
                    "by_split": {split: int(np.sum(plan.split == split)) for split in ("train", "test")},
                    "seconds": round(time.perf_counter() - started, 1), "workers": workers}
        (building / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, metavar="N", help="number of images")
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to create (must not exist)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER-2013 image folders (read only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--exact-share", type=float, default=FaceSettings.exact_share)
    parser.add_argument("--near-share", type=float, default=FaceSettings.near_share)
    parser.add_argument("--no-contempt", action="store_true", help="no contempt folder (for loaders without it)")
    args = parser.parse_args(argv)
    try:
        settings = FaceSettings(seed=args.seed, exact_share=args.exact_share, near_share=args.near_share,
                                contempt_share=0.0 if args.no_contempt else FaceSettings.contempt_share)
        manifest = make_faces(args.count, args.out, args.data, settings, args.workers,
                              progress=lambda done, total: print(f"\r{done:,}/{total:,}", end="", file=sys.stderr))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
