import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from synthetic import make_synthetic, write_folders

from fer_core.audit import SAMPLE_COLUMNS, AuditConfig, run_audit, write_cached_result, write_report
from fer_core.cli import main
from fer_core.detectors import Detector, DetectorResult, Flag, flag_mask, registered_detectors, registered_flags
from fer_core.duplicates.grouping import find_leaks
from fer_core.outliers.statistics import OutlierConfig

SUMMARY_KEYS = {"images", "by_usage", "by_label", "exact", "near", "outliers", "unreadable", "seconds",
                "seconds_by_stage"}


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic(seed=0)


def test_audit_finds_exactly_what_was_planted(synthetic, workspace):
    dataset, planted = synthetic
    report = run_audit(dataset, AuditConfig(near_threshold=6), workspace=workspace)
    summary = report.summary
    assert summary["exact"] == {"groups": 3, "images_in_groups": 6, "redundant": 3,
                                "conflicting_groups": 1, "cross_split_groups": 1}
    assert summary["near"] == {"threshold": 6, "mode": "verified", "min_similarity": 0.95,
                               "groups": 5, "images_in_groups": 10, "redundant": 5,
                               "conflicting_groups": 1, "cross_split_groups": 1,
                               "pairs_by_kind": {"exact": 3, "near": 1, "shifted": 1}}
    samples = report.samples.set_index("id")
    assert samples.loc[planted.shifted_copy[1], "near_kind"] == "shifted"
    assert set(samples.index[samples["leak"]]) == set(planted.cross_split_copy)
    assert set(samples.index[samples["conflicting"]]) == set(planted.conflicting_copy)
    top_two = samples["outlier_score"].sort_values(ascending=False).index[:2]
    assert set(top_two) == {planted.blank, planted.text}
    assert samples.loc[[planted.blank, planted.text], "outlier"].all()


def test_report_files_follow_the_contract(synthetic, workspace, tmp_path):
    dataset, _ = synthetic
    summary_path, samples_path = write_report(run_audit(dataset, workspace=workspace), tmp_path / "out")
    summary = json.loads(summary_path.read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert set(summary["exact"]) == {"groups", "images_in_groups", "redundant", "conflicting_groups",
                                     "cross_split_groups"}
    assert set(summary["near"]) == {"threshold", "mode", "min_similarity", "groups", "images_in_groups",
                                    "conflicting_groups", "cross_split_groups", "redundant", "pairs_by_kind"}
    pairs = pd.read_csv(samples_path.parent / "near_pairs.csv")
    assert {"id_a", "id_b", "kind", "similarity"} <= set(pairs.columns) and set(pairs["kind"]) <= {"exact", "near",
                                                                                                  "shifted"}
    samples = pd.read_csv(samples_path, keep_default_na=False)
    for column in ("id", "label", "usage", "mean", "exact_group", "near_group", "outlier_score", "outlier"):
        assert column in samples.columns
    assert len(samples) == len(dataset)
    assert set(samples["outlier"].astype(str)) <= {"True", "False"}
    assert (samples.loc[samples["exact_group"] == "", "near_group"].astype(str) != "nan").all()
    assert set(samples["label"]) <= {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def test_second_audit_reuses_cached_features(synthetic, workspace):
    dataset, _ = synthetic
    first = run_audit(dataset, workspace=workspace)
    second = run_audit(dataset, workspace=workspace)
    stages = second.summary["seconds_by_stage"]
    assert {"digests (cache)", "phash (cache)", "near_pairs (cache)", "outliers (cache)"} <= stages.keys()
    assert not {"digests", "phash", "near_pairs", "outliers"} & stages.keys()
    pd.testing.assert_frame_equal(first.samples, second.samples)
    cached = sorted(path.name.split("-")[0] for path in (workspace / "cache").glob("*.parquet"))
    assert cached == ["digests", "faces", "near_pairs", "outliers", "phash"]


def test_a_config_change_misses_only_that_detectors_cache(synthetic, workspace):
    dataset, _ = synthetic
    run_audit(dataset, workspace=workspace)
    stages = run_audit(dataset, AuditConfig(outliers=OutlierConfig(flag_min_score=2.0)),
                       workspace=workspace).summary["seconds_by_stage"]
    assert "outliers" in stages and "phash (cache)" in stages


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickle", "other_length"])
def test_a_damaged_or_planted_cache_is_recomputed_never_executed(synthetic, workspace, tmp_path, damage):
    dataset, _ = synthetic
    expected = run_audit(dataset, workspace=workspace).samples
    marker = tmp_path / "pwned"
    for path in (workspace / "cache").glob("*.parquet"):
        if damage == "truncated":
            path.write_bytes(path.read_bytes()[:200])
        elif damage == "garbage":
            path.write_bytes(b"PAR1 not a parquet file")
        elif damage == "pickle":  # a pickle (protocol 0) that creates `marker` if anything unpickles it
            path.write_bytes(b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR.")
        else:
            write_cached_result(path, DetectorResult(pd.DataFrame({"phash": np.zeros(3, np.uint64)})))
    report = run_audit(dataset, workspace=workspace)
    assert not marker.exists()
    assert {"digests", "phash", "outliers"} <= report.summary["seconds_by_stage"].keys()
    pd.testing.assert_frame_equal(report.samples, expected)
    again = run_audit(dataset, workspace=workspace)  # and the cache was repaired
    assert "phash (cache)" in again.summary["seconds_by_stage"]


def test_a_registered_detector_adds_its_columns_summary_and_flags(synthetic, workspace):
    dataset, planted = synthetic

    def detect_flat(dataset, config, context):
        flat = context.column("std") < 2
        return DetectorResult(pd.DataFrame({"flat": flat}), {"flat": {"images": int(flat.sum())}})

    flag = Flag("flat", "pixel standard deviation under 2", ("flat",))
    detectors = (*registered_detectors(), Detector("flat", detect_flat, needs=("outliers",), flags=(flag,)))
    report = run_audit(dataset, workspace=workspace, detectors=detectors)
    assert list(report.samples.columns[:len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
    assert report.samples.columns[-1] == "flat" and "digest" not in report.samples.columns
    assert report.summary["flat"]["images"] == int(report.samples["flat"].sum()) >= 1
    assert [f.name for f in registered_flags(detectors)] == ["duplicate", "conflict", "leak", "outlier", "flat"]
    assert report.samples.set_index("id").loc[planted.blank, "flat"]
    assert flag_mask(report.samples, flag).sum() == report.summary["flat"]["images"]
    duplicate = registered_flags()[0]
    assert flag_mask(report.samples, duplicate).sum() == report.samples["near_group"].notna().sum()


def test_a_detector_runs_after_the_ones_it_is_ordered_after(synthetic, workspace):
    dataset, _ = synthetic
    started: list[str] = []

    def recorder(name):
        def detect(dataset, config, context):
            started.append(name)
            return DetectorResult(pd.DataFrame({name: np.zeros(len(dataset))}))
        return detect

    ordered = (Detector("second", recorder("second"), after=("first", "unregistered")),
               Detector("first", recorder("first")))
    run_audit(dataset, workspace=workspace, detectors=(*registered_detectors(), *ordered))
    assert started == ["first", "second"]
    faces = next(detector for detector in registered_detectors() if detector.name == "faces")
    assert faces.after == ("near_pairs",)


def test_detectors_that_cannot_run_are_refused(synthetic, workspace):
    dataset, _ = synthetic
    lost = Detector("lost", lambda *args: None, needs=("nowhere",))
    with pytest.raises(ValueError, match="needs \\['nowhere'\\]"):
        run_audit(dataset, workspace=workspace, detectors=(*registered_detectors(), lost))


@pytest.mark.parametrize("threshold", [-1, 33, 2.5, True])
def test_near_threshold_bounds_are_checked_once_for_all(threshold, synthetic):
    with pytest.raises(ValueError, match="expected 0..10 bits"):
        AuditConfig(near_threshold=threshold)
    with pytest.raises(ValueError, match="expected 0..10 bits"):
        find_leaks(synthetic[0], threshold)


def test_threshold_zero_near_groups_equal_identical_hashes(synthetic, workspace):
    dataset, _ = synthetic
    report = run_audit(dataset, AuditConfig(near_threshold=0, near_mode="hash"), workspace=workspace)
    assert report.summary["near"]["groups"] == 4  # 3 exact groups + the JPEG copy with an identical hash


def test_cli_audit_on_folders(synthetic, tmp_path, workspace):
    dataset, _ = synthetic
    root = write_folders(dataset, tmp_path / "data")
    assert main(["audit", str(root), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["images"] == len(dataset)
    assert summary["exact"]["redundant"] == 3


@pytest.mark.parametrize("args, message", [
    (["audit", "/no/such/path", "--out", "OUT"], "no such file or folder: /no/such/path"),
    (["audit", "DATA", "--out", "OUT", "--near-threshold", "99"], "near threshold 99 out of range"),
])
def test_cli_bad_arguments_exit_nonzero_with_one_line(args, message, tmp_path, synthetic):
    root = write_folders(synthetic[0], tmp_path / "data")
    args = [str(root) if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = subprocess.run([sys.executable, "-m", "fer_core", *args], capture_output=True, text=True,
                            env={"FER_AUDIT_HOME": str(tmp_path / "ws"), "PATH": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {message}"] or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_real_data_audit_figures(real_data, real_cache, tmp_path):
    result = subprocess.run([sys.executable, "-m", "fer_core", "audit", str(real_data), "--out", str(tmp_path),
                             "--workspace", str(real_cache), "--quiet", "--fast"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["images"] == 35887
    assert summary["by_usage"] == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert summary["exact"]["redundant"] == 1853
    assert summary["exact"]["groups"] == 1516
    assert summary["unreadable"] == []
    assert summary["near"]["groups"] >= summary["exact"]["groups"] - summary["exact"]["cross_split_groups"]
    samples = pd.read_csv(tmp_path / "samples.csv")
    assert len(samples) == 35887
    blank = samples["std"] < 1
    assert blank.sum() >= 10  # FER-2013 has a dozen all-black / all-white frames
    assert samples.loc[blank, "outlier"].all()
