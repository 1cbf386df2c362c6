"""Outlier statistics, the box-plot rule, and the non-face score on planted and real images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFilter
from synthetic import make_synthetic

from fer_core.outliers import kinds as outlier_kinds
from fer_core.outliers import statistics as outliers
from fer_core.outliers.statistics import OutlierConfig

SIDE = 48


def draw_face(rng: np.random.Generator) -> np.ndarray:
    """A smooth, noisy face-like drawing: lit background, head, eyes, brows, nose and mouth."""
    scale = 4
    size = SIDE * scale
    ramp = np.linspace(rng.uniform(30, 110), rng.uniform(130, 220), size)
    canvas = np.tile(ramp, (size, 1))
    image = Image.fromarray((canvas.T if rng.random() < 0.5 else canvas).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    cx, cy = size / 2 + rng.uniform(-4, 4) * scale, size / 2 + rng.uniform(-3, 3) * scale
    half_w, half_h = rng.uniform(16, 20) * scale, rng.uniform(20, 24) * scale
    draw.ellipse([cx - half_w, cy - half_h, cx + half_w, cy + half_h], fill=int(rng.uniform(120, 210)))
    dark = int(rng.uniform(10, 60))
    eye_y = cy - half_h * 0.25
    for side in (-1, 1):
        ex = cx + side * half_w * 0.42
        draw.ellipse([ex - 3 * scale, eye_y - 2 * scale, ex + 3 * scale, eye_y + 2 * scale], fill=dark)
        draw.line([ex - 4 * scale, eye_y - 5 * scale, ex + 4 * scale, eye_y - 5 * scale], fill=dark, width=2 * scale)
    mouth_y = cy + half_h * 0.5
    opening = rng.uniform(1, 6) * scale
    draw.ellipse([cx - half_w * 0.4, mouth_y - opening, cx + half_w * 0.4, mouth_y + opening], fill=dark)
    image = image.filter(ImageFilter.GaussianBlur(radius=3)).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, 4, (SIDE, SIDE))
    return np.clip(pixels, 0, 255).astype(np.uint8)


PLACEHOLDER_LINES = ("This photo is", "no longer", "available.", "Sorry!", "image removed")


def draw_text_card(rng: np.random.Generator) -> np.ndarray:
    """A light card with short lines of small text, like FER-2013's 'image removed' placeholders (mostly
    one flat colour)."""
    card = Image.new("L", (SIDE * 4, SIDE * 4), color=int(rng.integers(225, 250)))
    pen = ImageDraw.Draw(card)
    first = int(rng.integers(0, len(PLACEHOLDER_LINES)))
    lines = [PLACEHOLDER_LINES[(first + step) % len(PLACEHOLDER_LINES)] for step in range(5)]
    pen.multiline_text((8, 24), "\n".join(lines), fill=int(rng.integers(0, 80)), font_size=16, spacing=14)
    return np.asarray(card.resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.uint8)


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], list[int]]:
    """300 synthetic faces with 3 blank frames (one black frame filed under 3 emotions) and 3 text cards."""
    rng = np.random.default_rng(7)
    images = [draw_face(rng) for _ in range(300)]
    labels = list(rng.integers(0, 7, 300))
    blank_rows = []
    for value, label in ((0, 1), (0, 4), (0, 2)):
        blank_rows.append(len(images))
        images.append(np.full((SIDE, SIDE), value, np.uint8))
        labels.append(label)
    text_rows = []
    for _ in range(3):
        text_rows.append(len(images))
        images.append(draw_text_card(rng))
        labels.append(int(rng.integers(0, 7)))
    groups = np.full(len(images), -1)
    groups[blank_rows] = 0
    return np.stack(images), np.array(labels, dtype=np.int8), groups, blank_rows, text_rows


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=0)


def test_whiskers_and_box_plot_match_hand_computation():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 100.0])
    # quartiles (numpy's linear rule) 3 and 7, IQR 4, whiskers 3 − 6 = −3 and 7 + 6 = 13
    assert outliers.whiskers(values) == (-3.0, 13.0)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=np.int8)
    flags = outliers.box_plot_outliers(values, labels)
    assert flags["box_outlier"].tolist() == [False] * 8 + [True]
    # emotion 1: 5, 6, 7, 8, 100 → quartiles 6 and 8, whiskers 3 and 11
    assert flags["box_outlier_emotion"].tolist() == [False] * 8 + [True]


def test_pixel_statistics_golden_values():
    pixels = np.array([
        np.zeros((2, 2)),
        [[0, 0], [255, 255]],
        [[0, 64], [128, 192]],
    ], dtype=np.uint8)
    table = outliers.pixel_statistics(pixels)
    assert table["mean"].tolist() == [0.0, 127.5, 96.0]
    assert table["std"].tolist() == pytest.approx([0.0, 127.5, np.sqrt(5120.0)])
    assert table["entropy"].tolist() == pytest.approx([0.0, 1.0, 2.0])


def test_flat_fraction_counts_pixels_without_gradient():
    flat = np.full((1, 4, 4), 9, np.uint8)
    striped = np.tile(np.array([0, 50], np.uint8), (1, 4, 2))
    assert outliers.flat_fraction(np.concatenate([flat, striped])).tolist() == [1.0, 0.0]


def test_grey_range_ignores_stray_pixels():
    image = np.full((1, 10, 10), 100, np.uint8)
    image[0, :5] = 200
    image[0, 9, 9] = 255  # one stray pixel out of 100 falls outside the 2–98 % range
    histograms = outliers.grey_histograms(image)
    assert outliers.grey_range(histograms).tolist() == [100.0]
    assert outliers.grey_range(histograms, 0.0, 1.0).tolist() == [155.0]


def test_sharp_edges_count_drawn_strokes_not_soft_photo_edges():
    stroke = np.full((8, 8), 240, np.uint8)
    stroke[:, 4] = 20  # one-pixel ink line: every row jumps paper → ink → paper
    ramp = np.tile(np.linspace(20, 240, 8).astype(np.uint8), (8, 1))  # same range, spread over 8 pixels
    pixels = np.stack([stroke, ramp])
    fractions = outliers.sharp_edge_fraction(pixels, outliers.grey_range(outliers.grey_histograms(pixels)))
    assert fractions.tolist() == [2 / 7, 0.0]  # 2 of the 7 steps per row cross the line


def test_recurring_placeholders_need_several_emotions():
    labels = np.array([0, 1, 2, 3, 3, 5])
    groups = np.array([0, 0, 0, 1, 1, -1])
    assert outliers.recurring_placeholders(labels, groups, 3).tolist() == [True, True, True, False, False, False]
    assert not outliers.recurring_placeholders(labels, None, 3).any()


def test_planted_blank_and_text_rank_on_top_and_are_flagged(planted):
    pixels, labels, groups, blank_rows, text_rows = planted
    table = outliers.score_outliers(pixels, labels, groups)
    assert len(table) == len(pixels)
    for column in ("mean", "std", "entropy", "box_outlier", "box_outlier_emotion", "flat_fraction",
                   "reconstruction_error", "sharp_edge_fraction", "dominant_fraction", "recurring_placeholder",
                   "blank_score", "placeholder_score", "drawing_score"):
        assert column in table.columns
    kinds = outlier_kinds.classify_outliers(table, None)
    assert list(kinds.columns) == ["no_face_score", "outlier_kind", "outlier_score", "outlier"]
    assert kinds["no_face_score"].isna().all()  # no face stage, no evidence either way
    top = set(kinds["outlier_score"].sort_values(ascending=False).index[:6])
    assert top == set(blank_rows + text_rows)
    assert kinds.loc[blank_rows, "outlier_kind"].eq("blank").all()
    assert kinds.loc[text_rows, "outlier_kind"].eq("placeholder").all()
    assert kinds["outlier"].equals(kinds["outlier_kind"] != "")
    assert kinds["outlier"].equals(kinds["outlier_score"] >= OutlierConfig().flag_min_score)
    assert kinds["outlier"].sum() <= 6 + len(pixels) // 50  # few faces flagged
    assert table["recurring_placeholder"].sum() == 3 and table.loc[blank_rows, "recurring_placeholder"].all()


def test_synthetic_fixture_blank_text_and_drawing_get_their_kinds(synthetic):
    dataset, planted = synthetic
    table = outliers.score_outliers(dataset.pixels, dataset.labels)
    kinds = outlier_kinds.classify_outliers(table, None).set_index(dataset.ids)
    assert kinds.loc[planted.blank, "outlier_kind"] == "blank"
    assert kinds.loc[planted.text, "outlier_kind"] == "placeholder"
    assert kinds.loc[planted.drawing, "outlier_kind"] == "drawing"
    assert set(kinds.index[kinds["outlier"]]) == {planted.blank, planted.text, planted.drawing}
    ranked = kinds["outlier_score"].sort_values(ascending=False).index[:3].tolist()
    assert ranked == [planted.blank, planted.text, planted.drawing]  # kinds rank blank, placeholder, drawing


def test_dominant_fraction_counts_pixels_near_the_commonest_grey():
    image = np.full((1, 10, 10), 200, np.uint8)
    image[0, :3] = 100  # 30 % at another level
    image[0, 3, :5] = 204  # within 4 levels of 200: counts with it
    assert outliers.dominant_fraction(outliers.grey_histograms(image)).tolist() == [0.7]
    assert outliers.dominant_fraction(outliers.grey_histograms(image), window=0).tolist() == [0.65]


def faces_table(found, confidence, roll, size, offset) -> pd.DataFrame:
    return pd.DataFrame({"face_found": found, "face_confidence": confidence, "face_roll": roll,
                         "face_size": size, "face_offset": offset})


def test_no_face_score_reaches_one_for_each_reason():
    config = OutlierConfig()
    table = faces_table(
        found=[True, False, True, True, True, True],
        confidence=[0.99, 0.3, 0.99, 0.99, 0.99, 0.95],
        roll=[5.0, np.nan, 80.0, 0.0, 0.0, -config.face_max_roll + 1],
        size=[1.0, np.nan, 1.0, 0.3, 1.0, 1.0],
        offset=[0.05, np.nan, 0.05, 0.05, 0.4, 0.05])
    score = outlier_kinds.no_face_score(table, config)
    assert score.round(3).tolist() == [0.5, 1.7, 2.0, round(0.5 / 0.3, 3), 1.6, round(39 / 40, 3)]


def test_pixel_kinds_take_precedence_and_rank_above_no_face():
    pixels_table = pd.DataFrame({"blank_score": [0.1, 0.1, 0.1, 0.1, 2.0],
                                 "placeholder_score": [0.0, 1.5, 0.0, 0.0, 0.0],
                                 "drawing_score": [0.2, 0.0, 1.2, 0.0, 0.0]})
    table = faces_table([True, False, False, False, False], [0.99, 0.0, 0.0, 0.1, 0.0],
                        [0.0] + [np.nan] * 4, [0.9] + [np.nan] * 4, [0.0] + [np.nan] * 4)
    kinds = outlier_kinds.classify_outliers(pixels_table, table)
    assert kinds["outlier_kind"].tolist() == ["", "placeholder", "drawing", "no_usable_face", "blank"]
    assert kinds["outlier_score"].rank(ascending=False).tolist() == [5.0, 2.0, 3.0, 4.0, 1.0]
    without_faces = outlier_kinds.classify_outliers(pixels_table, None)
    assert without_faces["outlier_kind"].tolist() == ["", "placeholder", "drawing", "", "blank"]
    assert outlier_kinds.kind_counts(kinds["outlier_kind"].to_numpy()) == {
        "blank": 1, "placeholder": 1, "drawing": 1, "no_usable_face": 1}


def test_progress_is_reported(planted):
    pixels, labels, groups, _, _ = planted
    calls = []
    outliers.score_outliers(pixels, labels, groups, progress=lambda stage, done, total: calls.append((done, total)))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1]


def test_empty_input_gives_empty_table():
    table = outliers.score_outliers(np.zeros((0, SIDE, SIDE), np.uint8), np.zeros(0, np.int8))
    assert len(table) == 0 and "drawing_score" in table.columns
    kinds = outlier_kinds.classify_outliers(table, None)
    assert len(kinds) == 0 and "outlier_kind" in kinds.columns


def test_real_blank_frames_rank_first_and_are_flagged(real_data, tmp_path):
    from fer_core.dataset.loading import load
    from fer_core.duplicates.grouping import group_exact

    dataset = load(real_data, workspace=tmp_path)
    table = outliers.score_outliers(dataset.pixels, dataset.labels, group_exact(dataset.pixels))
    kinds = outlier_kinds.classify_outliers(table, None)
    blank = table["std"].to_numpy() < 1.0
    assert blank.sum() >= 10
    assert kinds.loc[blank, "outlier_kind"].eq("blank").all()
    ranks = kinds["outlier_score"].rank(ascending=False, method="min")
    assert ranks[blank].max() <= (kinds["outlier_kind"] == "blank").sum()
    assert 50 <= kinds["outlier"].sum() <= 1000
    counts = outlier_kinds.kind_counts(kinds["outlier_kind"].to_numpy())
    assert counts["placeholder"] >= 20 and counts["drawing"] >= 50 and counts["no_usable_face"] == 0


def test_kind_evidence_says_why_in_words():
    samples = pd.DataFrame({
        "outlier_kind": ["blank", "placeholder", "drawing", "no_usable_face", "no_usable_face", ""],
        "std": [0.4, 30.0, 60.0, 50.0, 50.0, 50.0],
        "dominant_fraction": [1.0, 0.82, 0.3, 0.1, 0.1, 0.1],
        "recurring_placeholder": [True, True, False, False, False, False],
        "sharp_edge_fraction": [0.0, 0.05, 0.09, 0.0, 0.0, 0.0],
        "face_found": [False, False, False, False, True, True],
        "face_confidence": [0.0, 0.0, 0.0, 0.12, 0.99, 0.99],
        "face_roll": [np.nan] * 4 + [70.0, 2.0],
        "face_size": [np.nan] * 4 + [0.31, 0.9],
        "face_offset": [np.nan] * 4 + [0.05, 0.05]})
    assert outlier_kinds.kind_evidence(samples, range(6)) == [
        ("blank", "std 0.4"), ("placeholder", "82% one grey · same pixels under several emotions"),
        ("drawing", "sharp edges 9%"), ("no usable face", "none found (detector 0.12)"),
        ("no usable face", "turned 70°, face 31% of the frame"), ("", "")]
