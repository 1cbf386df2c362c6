"""A seeded synthetic FER dataset with planted defects, and writers for its CSV and folder forms.

Faces are drawn procedurally (head, eyes, brows, nose, mouth on a lit background) so they are
smooth like photos and far apart in pHash; each defect is planted once and recorded in `Planted`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fer_core.dataset.loading import Dataset
from fer_core.duplicates.hashing import hamming_distance, phash_batch
from fer_core.labels import EMOTIONS

SIDE = 48
MIN_BASE_DISTANCE = 16  # distinct synthetic faces stay this far apart in pHash bits


@dataclass(frozen=True)
class Planted:
    """Ids of the planted defects, keyed by what they are."""

    exact_copy: tuple[str, str]  # same label, both Training
    shifted_copy: tuple[str, str]  # shifted by one pixel
    jpeg_copy: tuple[str, str]  # re-encoded as JPEG
    conflicting_copy: tuple[str, str]  # identical pixels, different emotion
    cross_split_copy: tuple[str, str]  # (PrivateTest original, Training copy)
    blank: str
    text: str
    drawing: str  # a flat-shaded cartoon face with pixel-sharp ink lines


def draw_face(rng: np.random.Generator) -> np.ndarray:
    """A 48×48 grayscale face-like drawing with random pose, lighting and features."""
    scale = 4  # draw large, then downsample, for smooth edges
    size = SIDE * scale
    background = np.linspace(rng.uniform(20, 120), rng.uniform(120, 230), size)
    canvas = np.tile(background, (size, 1))
    if rng.random() < 0.5:
        canvas = canvas.T
    image = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = size / 2 + rng.uniform(-6, 6) * scale, size / 2 + rng.uniform(-4, 4) * scale
    half_w, half_h = rng.uniform(15, 20) * scale, rng.uniform(19, 24) * scale
    skin = int(rng.uniform(110, 220))
    draw.ellipse([cx - half_w, cy - half_h, cx + half_w, cy + half_h], fill=skin)
    eye_y = cy - half_h * rng.uniform(0.15, 0.35)
    eye_dx = half_w * rng.uniform(0.35, 0.5)
    dark = int(rng.uniform(10, 70))
    for side in (-1, 1):
        ex = cx + side * eye_dx
        draw.ellipse([ex - 3 * scale, eye_y - 2 * scale, ex + 3 * scale, eye_y + 2 * scale], fill=dark)
        brow_y = eye_y - rng.uniform(4, 7) * scale
        draw.line([ex - 4 * scale, brow_y + side * rng.uniform(-1, 1) * scale, ex + 4 * scale, brow_y],
                  fill=dark, width=2 * scale)
    draw.line([cx, eye_y + 3 * scale, cx + rng.uniform(-2, 2) * scale, cy + half_h * 0.25],
              fill=max(0, skin - 50), width=scale)
    mouth_y = cy + half_h * rng.uniform(0.45, 0.6)
    mouth_w = half_w * rng.uniform(0.3, 0.6)
    opening = rng.uniform(1, 8) * scale
    draw.chord([cx - mouth_w, mouth_y - opening, cx + mouth_w, mouth_y + opening],
               rng.uniform(0, 40), rng.uniform(140, 180), fill=dark)
    image = image.filter(ImageFilter.GaussianBlur(radius=scale * 0.8)).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, 4, (SIDE, SIDE))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def draw_text(rng: np.random.Generator) -> np.ndarray:
    """A light card with a few short lines of small grey text, like FER-2013's 'image unavailable' cards:
    mostly one flat colour."""
    card = Image.new("L", (SIDE * 4, SIDE * 4), color=int(rng.integers(235, 252)))
    pen = ImageDraw.Draw(card)
    for line in range(6):
        words = " ".join("".join(chr(rng.integers(97, 123)) for _ in range(rng.integers(2, 6))) for _ in range(3))
        pen.text((int(rng.integers(8, 40)), 20 + line * 28), words, fill=int(rng.integers(60, 120)), font_size=14)
    return np.asarray(card.resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.uint8)


def draw_cartoon(rng: np.random.Generator) -> np.ndarray:
    """A comic-style face drawn straight at 48×48 without smoothing: flat fills, one-pixel ink jumps."""
    image = Image.new("L", (SIDE, SIDE), color=int(rng.integers(150, 200)))
    pen = ImageDraw.Draw(image)
    ink, skin = int(rng.integers(0, 30)), int(rng.integers(215, 250))
    pen.ellipse([6, 3, 42, 47], fill=skin, outline=ink, width=2)
    pen.chord([6, 1, 42, 24], 180, 360, fill=ink)  # hair
    for x in (17, 31):
        pen.ellipse([x - 4, 18, x + 4, 24], fill=255, outline=ink, width=1)
        pen.ellipse([x - 1, 19, x + 2, 23], fill=ink)
        pen.line([x - 5, 14, x + 5, 13], fill=ink, width=2)
    pen.line([24, 23, 22, 31, 25, 32], fill=ink, width=1)
    pen.chord([15, 30, 33, 41], 0, 180, fill=ink)  # open mouth
    return np.asarray(image, dtype=np.uint8)


def jpeg_round_trip(pixels: np.ndarray, quality: int = 70) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("L"), dtype=np.uint8)


def shift_one_pixel(pixels: np.ndarray) -> np.ndarray:
    """Shift right by one pixel, repeating the left edge column."""
    return np.concatenate([pixels[:, :1], pixels[:, :-1]], axis=1)


def make_synthetic(seed: int = 0, base_faces: int = 42) -> tuple[Dataset, Planted]:
    """Distinct faces in all three usages, plus one of each planted defect."""
    rng = np.random.default_rng(seed)
    faces: list[np.ndarray] = []
    hashes: list[int] = []
    while len(faces) < base_faces:
        face = draw_face(rng)
        value = int(phash_batch(face[None])[0])
        if all(hamming_distance(value, other) >= MIN_BASE_DISTANCE for other in hashes):
            faces.append(face)
            hashes.append(value)
    usages = ["Training"] * (base_faces - 12) + ["PublicTest"] * 6 + ["PrivateTest"] * 6
    labels = [i % len(EMOTIONS) for i in range(base_faces)]
    ids = [f"face_{i:03d}" for i in range(base_faces)]
    pixels = list(faces)

    def plant(sample_id: str, image: np.ndarray, label: int, usage: str) -> str:
        ids.append(sample_id)
        pixels.append(image)
        labels.append(label)
        usages.append(usage)
        return sample_id

    planted = Planted(
        exact_copy=(ids[0], plant("exact_copy_of_000", faces[0], labels[0], "Training")),
        shifted_copy=(ids[1], plant("shifted_copy_of_001", shift_one_pixel(faces[1]), labels[1], "Training")),
        jpeg_copy=(ids[2], plant("jpeg_copy_of_002", jpeg_round_trip(faces[2]), labels[2], "Training")),
        conflicting_copy=(ids[3], plant("conflicting_copy_of_003", faces[3], (labels[3] + 1) % 7, "Training")),
        cross_split_copy=(ids[base_faces - 1],
                          plant("training_copy_of_last", faces[-1], labels[base_faces - 1], "Training")),
        blank=plant("blank", np.full((SIDE, SIDE), 128, np.uint8), 6, "Training"),
        text=plant("text", draw_text(rng), 3, "Training"),
        drawing=plant("drawing", draw_cartoon(rng), 5, "Training"),
    )
    dataset = Dataset(ids=np.array(ids), pixels=np.stack(pixels), labels=np.array(labels, np.int8),
                      usages=np.array(usages), source=f"synthetic(seed={seed})")
    return dataset, planted


USAGE_FOLDER = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def write_folders(dataset: Dataset, root: Path, extension: str = "png") -> Path:
    """Write as <root>/<train|test>/<emotion>/<Usage>_<n>.<extension> (PNG is lossless)."""
    for n, (image, label, usage) in enumerate(zip(dataset.pixels, dataset.labels, dataset.usages)):
        folder = root / USAGE_FOLDER[str(usage)] / EMOTIONS[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{usage}_{n}.{extension}")
    return root


def write_csv(dataset: Dataset, path: Path) -> Path:
    """Write in the fer2013.csv schema: emotion,pixels,Usage."""
    lines = ["emotion,pixels,Usage"]
    for image, label, usage in zip(dataset.pixels, dataset.labels, dataset.usages):
        lines.append(f"{label},{' '.join(map(str, image.ravel().tolist()))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return path


# --- Near duplicates that survive shifts, crops and mirrors (issue 14) -------------------------------

@dataclass(frozen=True)
class PlantedNear:
    """Transformed copies, (original id, copy id) keyed by the kind they must be found as, and pairs of
    different faces whose pHashes are within a few bits (a hash-only search merges them)."""

    copies: dict[str, tuple[str, str]]
    lookalikes: tuple[tuple[str, str], ...]


def shift_pixels(pixels: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Shift right by dx and down by dy pixels, repeating the edge rows and columns."""
    height, width = pixels.shape
    rows = np.clip(np.arange(height) - dy, 0, height - 1)
    columns = np.clip(np.arange(width) - dx, 0, width - 1)
    return pixels[rows][:, columns]


def crop_and_resize(pixels: np.ndarray, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """Cut the given number of pixels off each edge and resize back to the original size."""
    height, width = pixels.shape
    cropped = Image.fromarray(pixels[top:height - bottom, left:width - right])
    return np.asarray(cropped.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def find_lookalikes(rng: np.random.Generator, max_distance: int = 6, draws: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs of distinct drawn faces whose pHashes are within `max_distance` bits (closest first)."""
    faces = np.stack([draw_face(rng) for _ in range(draws)])
    hashes = phash_batch(faces)
    distance = hamming_distance(hashes[:, None], hashes[None, :]).astype(int)
    first, second = np.nonzero(np.triu(distance <= max_distance, k=1))
    order = np.argsort(distance[first, second], kind="stable")
    return [(faces[a], faces[b]) for a, b in zip(first[order], second[order])]


def make_synthetic_near(seed: int = 0, lookalike_pairs: int = 3) -> tuple[Dataset, Planted, PlantedNear]:
    """`make_synthetic` plus copies shifted by 3 px, cropped by 5 px and resized back, mirrored, and
    mirrored + shifted + re-encoded; and `lookalike_pairs` pairs of different faces with close pHashes."""
    base, planted = make_synthetic(seed)
    rng = np.random.default_rng(seed + 14)
    ids, pixels = base.ids.tolist(), list(base.pixels)
    labels, usages = base.labels.tolist(), base.usages.tolist()

    def plant(sample_id: str, image: np.ndarray, label: int) -> str:
        ids.append(sample_id)
        pixels.append(image)
        labels.append(label)
        usages.append("Training")
        return sample_id

    originals = {kind: index for kind, index in (("shifted", 10), ("cropped", 11), ("mirrored", 12), ("combined", 13))}
    face = {kind: base.pixels[index] for kind, index in originals.items()}
    copies = {
        "shifted": shift_pixels(face["shifted"], 3, -2),
        "cropped": crop_and_resize(face["cropped"], 2, 3, 3, 2),
        "mirrored": np.ascontiguousarray(face["mirrored"][:, ::-1]),
        "combined": jpeg_round_trip(shift_pixels(np.ascontiguousarray(face["combined"][:, ::-1]), 1, 2), quality=50),
    }
    planted_copies = {kind: (ids[index], plant(f"{kind}_copy_of_{index:03d}", copies[kind], labels[index]))
                      for kind, index in originals.items()}
    lookalikes = []
    for number, (first, second) in enumerate(find_lookalikes(rng)[:lookalike_pairs]):
        lookalikes.append((plant(f"lookalike_{number}_a", first, 0), plant(f"lookalike_{number}_b", second, 3)))
    dataset = Dataset(ids=np.array(ids), pixels=np.stack(pixels), labels=np.array(labels, np.int8),
                      usages=np.array(usages), source=f"synthetic_near(seed={seed})")
    return dataset, planted, PlantedNear(copies=planted_copies, lookalikes=tuple(lookalikes))
