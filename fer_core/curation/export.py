"""Write the curated data out: a `fer2013.csv`-schema file or image folders, plus a manifest.

An export is what leaves FER Audit (for training elsewhere, or for sharing), so it must be
loadable by `dataset.load` with exactly the curated pixels, labels and usages, must say which
edits made it (`manifest.json`), and must never be half written: everything is built in a
hidden temporary sibling and renamed into place. An existing non-empty output is replaced only
when asked, and never when it is, holds, or lies inside the source data or the workspace.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fer_core.curation.edits import DROP, RELABEL, RESTORE, Edit, find_active_edits, read_curation
from fer_core.curation.tags import tags_by_image
from fer_core.dataset.loading import Dataset, Progress
from fer_core.files import replace_atomically as _replace_atomically
from fer_core.labels import USAGES
from fer_core.paths import check_output_apart, check_output_file, check_output_folder, protected_places

EXPORT_FORMATS: tuple[str, ...] = ("csv", "folders")
SPLIT_FOLDERS = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}
MANIFEST_NAME = "manifest.json"
CSV_CHUNK_ROWS = 1024
CSV_HEADER = b"emotion,pixels,Usage,id\n"  # FER-2013's columns, then the sample id last: readers by name still work
EXPORT_STAGE = "export"
WRITER_THREADS = 4


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and how many samples it holds."""

    path: Path
    manifest_path: Path
    export_format: str
    samples: int


def export_curated(dataset: Dataset, out: str | os.PathLike, export_format: str, *,
                   workspace: str | os.PathLike | None = None, overwrite: bool = False,
                   progress: Progress | None = None) -> ExportResult:
    """Export the workspace's curated view of `dataset` as `csv` (file at `out`) or `folders` (folder `out`).

    The manifest is `<out>/manifest.json` for folders and `<out stem>.manifest.json` beside a CSV.
    `progress` is called as `(EXPORT_STAGE, images written, images)` while the images are written.
    """
    out = check_destination(out, export_format, overwrite, source=dataset.source, workspace=workspace)
    manifest_path = out / MANIFEST_NAME if export_format == "folders" else csv_manifest_path(out)
    curated, edits = read_curation(dataset, workspace)
    manifest = build_manifest(dataset, curated, edits, export_format, image_tags=tags_by_image(workspace))
    out.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "csv":
        _replace_atomically(out, lambda temporary: write_csv(curated, temporary, progress))
        _replace_atomically(manifest_path, lambda temporary: _write_json(manifest, temporary))
    else:
        # Converted images (colour, another size) are exported as their original files, which load back to the
        # same pixels; FER-2013's own 48×48 grayscale images as PNGs of the pixels, as before.
        originals = Path(dataset.source) if dataset.converted and Path(dataset.source).is_dir() else None

        def build_folders(temporary: Path) -> None:
            write_folders(curated, temporary, progress, originals=originals)
            _write_json(manifest, temporary / MANIFEST_NAME)

        _replace_atomically(out, build_folders)
    return ExportResult(path=out, manifest_path=manifest_path, export_format=export_format, samples=len(curated))


def csv_manifest_path(csv_path: str | os.PathLike) -> Path:
    """The manifest beside a CSV export: `curated.csv` → `curated.manifest.json`."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}.{MANIFEST_NAME}")


def build_manifest(source: Dataset, curated: Dataset, edits: list[Edit], export_format: str,
                   image_tags: Mapping[str, Sequence[str]] | None = None) -> dict:
    """What made this export: the source, every edit in effect, counts before and after, and the
    reviewers' tags of the exported images (`image_tags`: sample id → tags, from `tags.tags_by_image`).

    Tags go here, keyed by the sample id that the CSV's last column and `applied_edits` carry, not in
    a CSV column: the CSV keeps FER-2013's columns with `id` last, and an image may have many tags.
    """
    exported = set(curated.ids.tolist())
    applied = [edit for edit in find_active_edits(edits) if edit.action in (RELABEL, DROP, RESTORE)]
    return {
        "format": export_format,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source.source,
        "source_fingerprint": source.fingerprint,
        "emotions": list(source.emotions),  # the label set: a CSV's emotion column indexes it (load with --labels)
        "curated_fingerprint": curated.fingerprint,
        "counts": {"before": count_samples(source), "after": count_samples(curated)},
        "edits_in_log": len(edits),
        "applied_edits": [{"edit_id": edit.edit_id, "batch_id": edit.batch_id, "sample_id": edit.sample_id,
                           "action": edit.action, "old_label": edit.old_label, "new_label": edit.new_label,
                           "reason": edit.reason, "author": edit.author, "created_at": edit.created_at}
                          for edit in applied],
        "tags": {sample_id: sorted(tags) for sample_id, tags in sorted((image_tags or {}).items())
                 if sample_id in exported},
    }


def count_samples(dataset: Dataset) -> dict:
    """Totals by usage, by label, and by usage and label."""
    by_usage_label = {usage: {emotion: int(np.sum((dataset.usages == usage) & (dataset.labels == index)))
                              for index, emotion in enumerate(dataset.emotions)} for usage in USAGES}
    return {"total": len(dataset), "by_usage": dataset.count_by_usage(), "by_label": dataset.count_by_label(),
            "by_usage_label": by_usage_label}


# ---------------------------------------------------------------------------------------------
# Writers (to a fresh path; export_curated makes them atomic)


def write_csv(dataset: Dataset, path: str | os.PathLike, progress: Progress | None = None) -> None:
    """`emotion,pixels,Usage,id` rows in dataset order: emotion (index into the label set), 2304 space-separated ints, the usage,
    and the sample id (the source file, or `row:<n>` of a source CSV) so each row can be traced back."""
    with open(path, "wb") as handle:
        handle.write(CSV_HEADER)
        for start in range(0, len(dataset), CSV_CHUNK_ROWS):
            stop = min(start + CSV_CHUNK_ROWS, len(dataset))
            texts = format_pixel_rows(dataset.pixels[start:stop])
            handle.writelines(b"%d,%s,%s,%s\n" % (label, text, usage.encode(), csv_field(sample_id))
                              for label, text, usage, sample_id in zip(
                                  dataset.labels[start:stop].tolist(), texts, dataset.usages[start:stop].tolist(),
                                  dataset.ids[start:stop].tolist()))
            if progress is not None:
                progress(EXPORT_STAGE, stop, len(dataset))


def csv_field(text: str) -> bytes:
    """One CSV field as UTF-8, quoted (quotes doubled) when it holds a comma, a quote or a line break."""
    if any(character in text for character in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text.encode("utf-8", errors="surrogateescape")


def format_pixel_rows(pixels: np.ndarray) -> list[bytes]:
    """Each image as b'v v v ...' (decimal, single spaces), vectorized: 82M ints one by one take too long."""
    digits = [str(value).encode() + b" " for value in range(256)]
    table = np.zeros((256, 4), dtype=np.uint8)
    for value, text in enumerate(digits):
        table[value, :len(text)] = np.frombuffer(text, dtype=np.uint8)
    widths = np.array([len(text) for text in digits], dtype=np.int64)
    flat = pixels.reshape(len(pixels), -1)
    cells = table[flat]
    keep = np.arange(4) < widths[flat][..., None]
    text = cells[keep].tobytes()
    ends = np.cumsum(widths[flat].sum(axis=1))
    starts = np.concatenate([[0], ends[:-1]])
    return [text[start:end - 1] for start, end in zip(starts.tolist(), ends.tolist())]


def write_folders(dataset: Dataset, root: str | os.PathLike, progress: Progress | None = None,
                  originals: Path | None = None) -> None:
    """PNG files (lossless) in the `train/<emotion>/`, `test/<emotion>/` layout, names from `export_file_names`;
    with `originals` (the source image tree), each sample's source file copied as it is instead."""
    import cv2

    root = Path(root)
    for split in sorted(set(SPLIT_FOLDERS.values())):
        for emotion in dataset.emotions:
            (root / split / emotion).mkdir(parents=True, exist_ok=True)

    def write_one(name: str, image: np.ndarray, sample_id: str) -> None:
        if originals is not None:
            (root / name).write_bytes((originals / sample_id).read_bytes())
            return
        encoded, png = cv2.imencode(".png", image)
        if not encoded:
            raise ValueError(f"cannot encode {name} as PNG")
        (root / name).write_bytes(png.tobytes())  # cv2.imwrite reports success for an empty file on a full disk

    # File creation dominates and releases the GIL, so a few threads overlap it.
    with ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
        names = export_file_names(dataset, originals is not None)  # the suffix of the originals, else .png
        for written, _ in enumerate(pool.map(write_one, names, dataset.pixels, dataset.ids.tolist()), start=1):
            if progress is not None and (written % CSV_CHUNK_ROWS == 0 or written == len(dataset)):
                progress(EXPORT_STAGE, written, len(dataset))


def export_file_names(dataset: Dataset, keep_suffix: bool = False) -> list[str]:
    """`<split>/<emotion>/<Usage>_<stem>.png` per sample (the source file's own suffix with `keep_suffix`),
    keeping the source file stem so names stay traceable.

    The usage prefix is what `dataset.load` reads the usage from; CSV ids (`row:<n>`) become
    `<Usage>_<n>`; a clash (same stem twice in one folder, e.g. after a relabel) gets `-2`, `-3`, ...
    """
    names: list[str] = []
    taken: set[str] = set()
    for sample_id, label, usage in zip(dataset.ids.tolist(), dataset.labels.tolist(), dataset.usages.tolist()):
        stem = sample_id.split(":", 1)[1] if sample_id.startswith("row:") else Path(sample_id).stem
        if not stem.startswith(f"{usage}_"):
            stem = f"{usage}_{stem}"
        base = f"{SPLIT_FOLDERS[usage]}/{dataset.emotions[label]}/{stem}"
        suffix = Path(sample_id).suffix.lower() if keep_suffix else ".png"
        name, copy = f"{base}{suffix}", 1
        while name in taken:
            copy += 1
            name = f"{base}-{copy}{suffix}"
        taken.add(name)
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------
# Safety


def check_destination(out: str | os.PathLike, export_format: str, overwrite: bool = False,
                      source: str | os.PathLike | None = None, workspace: str | os.PathLike | None = None) -> Path:
    """`out` as a Path, or ValueError when an export must not or cannot go there; only looks, so a
    command calls it before loading anything. Refused: an empty path, a CSV path that is a folder (or
    not .csv), a folders path that is a file, a path under a file or in an unwritable folder, a path
    that is, holds or lies inside the source data or the workspace (`workspace`, else $FER_AUDIT_HOME,
    else ./workspace: its edit log and caches), and an existing non-empty output (or CSV manifest)
    unless `overwrite`."""
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {export_format!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    check_output_apart(out, "--out", protected_places(workspace, source))
    out = Path(out)
    if export_format == "csv":
        if out.suffix.lower() != ".csv":
            raise ValueError(f"{out}: a CSV export needs a path ending in .csv")
        check_output_file(out, "--out")
    else:
        check_output_folder(out, "--out")
    for path in (out, csv_manifest_path(out)) if export_format == "csv" else (out,):
        if _is_nonempty(path) and not overwrite:
            raise ValueError(f"{path} exists and is not empty; pass overwrite (--overwrite) to replace it")
    return out


def _is_nonempty(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() and path.stat().st_size > 0


def _write_json(document: dict, path: Path) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
