"""The face stage: MTCNN on batches of 48×48 frames finds upright framed faces, and only those."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_core.outliers import faces
from fer_core.outliers import kinds as outlier_kinds
from fer_core.outliers import statistics as outliers
from fer_core.outliers.faces import FACE_COLUMNS, DetectionPass, FaceConfig


@pytest.fixture(scope="module")
def real_faces(real_data) -> np.ndarray:
    """Eight real FER-2013 training faces (the first files of 'happy', 'neutral' and 'surprise')."""
    from fer_core.dataset.loading import decode_image

    chosen = []
    for emotion in ("happy", "neutral", "surprise"):
        paths = sorted((real_data / "train" / emotion).glob("*.jpg"))[:3]
        chosen += [decode_image(path.read_bytes())[0] for path in paths]
    return np.stack(chosen[:8])


def test_pyramid_covers_the_pass_face_sizes():
    config = FaceConfig()
    scales = faces.pyramid_scales(60, 48, DetectionPass(True, 0.125, 0.35), config.scale_factor)
    assert scales[0] == pytest.approx(12 / (0.35 * 48))  # PNet's 12 px window = the smallest face
    assert 12 / scales[-1] <= 48 and 12 / (scales[-1] * config.scale_factor) > 48  # up to the whole frame
    assert (60 * scales >= 12).all()


def test_top_per_image_keeps_each_images_best_rows():
    boxes = np.array([[0, 0, 0, 1, 1, 0.5], [1, 0, 0, 1, 1, 0.9], [0, 0, 0, 1, 1, 0.7], [0, 0, 0, 1, 1, 0.6]])
    kept = faces._top_per_image(boxes, 2)
    assert kept[:, [0, 5]].tolist() == [[0, 0.7], [0, 0.6], [1, 0.9]]


def test_blank_and_noise_frames_have_no_face():
    rng = np.random.default_rng(0)
    frames = np.stack([np.full((48, 48), 128, np.uint8), rng.integers(0, 256, (48, 48)).astype(np.uint8)])
    table = faces.find_faces(frames)
    assert list(table.columns) == list(FACE_COLUMNS)
    assert not table["face_found"].any()
    assert table[["face_roll", "face_size", "face_offset"]].isna().all().all()


def test_real_faces_are_found_upright_and_framed(real_faces):
    table = faces.find_faces(real_faces)
    assert table["face_found"].sum() >= 7  # MTCNN misses about 1 in 25 upright FER faces
    found = table[table["face_found"]]
    assert (found["face_roll"].abs() < 25).all()
    assert (found["face_size"] > 0.6).all() and (found["face_offset"] < 0.2).all()
    assert (outlier_kinds.no_face_score(table, outliers.OutlierConfig()) < 1).sum() >= 7


@pytest.mark.parametrize("change", ["rotate 90", "rotate 270", "upside down", "left half", "lower half"])
def test_a_rotated_or_cut_real_face_has_no_usable_face(real_faces, change):
    upright = faces.find_faces(real_faces)
    usable = outlier_kinds.no_face_score(upright, outliers.OutlierConfig()) < 1
    originals = real_faces[usable]
    if change.startswith("rotate"):
        changed = np.rot90(originals, k=1 if change == "rotate 90" else 3, axes=(1, 2))
    elif change == "upside down":
        changed = originals[:, ::-1]
    else:  # half of the face, stretched to fill the frame (an eye, a mouth filling the image)
        half = originals[:, :, :24] if change == "left half" else originals[:, 24:, :]
        changed = np.stack(_stretch(half))
    table = faces.find_faces(np.ascontiguousarray(changed))
    kinds = outlier_kinds.classify_outliers(_pixel_table(changed), table)
    assert kinds["outlier_kind"].eq("no_usable_face").mean() >= 0.8, kinds.join(table).to_string()


def _stretch(halves: np.ndarray) -> list[np.ndarray]:
    import cv2

    return [cv2.resize(image, (48, 48), interpolation=cv2.INTER_LINEAR) for image in halves]


def _pixel_table(pixels: np.ndarray) -> pd.DataFrame:
    """Pixel kind scores of zero: these photos are neither blank, placeholders nor drawings."""
    return pd.DataFrame({"blank_score": np.zeros(len(pixels)), "placeholder_score": np.zeros(len(pixels)),
                         "drawing_score": np.zeros(len(pixels))})


def test_progress_counts_images_in_batches(real_faces):
    calls = []
    faces.find_faces(real_faces, config=FaceConfig(batch_size=3), progress=lambda *args: calls.append(args))
    assert calls == [("faces", done, 8) for done in (0, 3, 6, 8)]


def test_empty_input_and_skipped_stage():
    assert len(faces.find_faces(np.zeros((0, 48, 48), np.uint8))) == 0
    skipped = faces.skipped_table(3)
    assert list(skipped.columns) == list(FACE_COLUMNS) and skipped.isna().all().all()


def test_audit_runs_the_face_stage_once_then_reads_its_cache(workspace):
    from synthetic import make_synthetic

    from fer_core.audit import AuditConfig, run_audit

    dataset, planted = make_synthetic(seed=0)
    config = AuditConfig(face_stage=True)
    first = run_audit(dataset, config, workspace=workspace)
    assert "faces" in first.summary["seconds_by_stage"] and first.summary["faces"]["ran"] is True
    assert first.samples["face_found"].notna().all()
    second = run_audit(dataset, config, workspace=workspace)
    assert "faces (cache)" in second.summary["seconds_by_stage"] and "faces" not in second.summary["seconds_by_stage"]
    pd.testing.assert_frame_equal(first.samples, second.samples)
    samples = second.samples.set_index("id")
    assert samples.loc[planted.blank, "outlier_kind"] == "blank"
    assert samples.loc[planted.text, "outlier_kind"] == "placeholder"
    assert samples.loc[planted.drawing, "outlier_kind"] == "drawing"
    assert second.summary["outliers"]["face_stage"] is True
    assert sum(second.summary["outliers"]["by_kind"].values()) == second.summary["outliers"]["flagged"]


def test_cli_fast_skips_the_face_stage(tmp_path, workspace):
    import json
    import subprocess
    import sys

    from synthetic import make_synthetic, write_folders

    root = write_folders(make_synthetic(seed=0)[0], tmp_path / "data")
    for extra, expect_faces in (("--fast", False), (None, True)):
        out = tmp_path / f"out{extra}"
        command = [sys.executable, "-m", "fer_core", "audit", str(root), "--out", str(out), "--quiet",
                   "--workspace", str(workspace)] + ([extra] if extra else [])
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        samples = pd.read_csv(out / "samples.csv", keep_default_na=False)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["faces"]["ran"] is expect_faces
        assert bool((samples["face_found"] != "").all()) == expect_faces
        assert set(samples["outlier_kind"]) >= {"blank", "placeholder", "drawing"}


def test_batched_driver_agrees_with_mtcnn_detect_faces(real_faces):
    """The fast path against the library: with MTCNN's own thresholds and a comparable pyramid, the
    same faces are found in the same places."""
    from mtcnn import MTCNN

    pad = 12
    config = FaceConfig(passes=(DetectionPass(False, pad / 48, 17 / 48),), threshold_pnet=0.6, threshold_rnet=0.7)
    ours = faces.FaceDetector(config).detect(real_faces)
    padded = [np.repeat(np.pad(image, pad, mode="edge")[..., None], 3, axis=2).astype(np.float32)
              for image in real_faces]
    theirs = MTCNN().detect_faces(padded, min_face_size=17, output_type="json")
    for row, detections in enumerate(theirs):
        if not detections:
            continue
        best = max(detections, key=lambda detection: detection["confidence"])
        x, y, width, height = best["box"]
        assert ours[row, 0] >= 0.8, f"image {row}: MTCNN finds a face, the batched driver does not"
        centre = np.array([x + width / 2, y + height / 2]) - pad
        assert np.abs(centre - [(ours[row, 1] + ours[row, 3]) / 2, (ours[row, 2] + ours[row, 4]) / 2]).max() < 4
        eye = np.array(best["keypoints"]["left_eye"]) - pad
        assert np.abs(eye - ours[row, 5:7]).max() < 4
    assert sum(bool(detections) for detections in theirs) >= 6


def test_a_mixed_precision_policy_left_by_training_does_not_change_the_face_stage(real_faces):
    """Training sets a process-wide mixed precision policy (bfloat16 on some CPUs); the detector
    built afterwards must still run its float32 weights in float32 and find the same faces."""
    import keras

    faces.face_detector.cache_clear()
    expected = faces.find_faces(real_faces)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        faces.face_detector.cache_clear()
        found = faces.find_faces(real_faces)
    finally:
        keras.mixed_precision.set_global_policy(previous)
        faces.face_detector.cache_clear()
    assert found.equals(expected)
