import json
import subprocess
import sys

import pandas as pd
import pytest

from fer_core.audit import AuditConfig, run_audit, write_report
from fer_core.cli import main
from synthetic import make_synthetic, write_folders

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
    assert summary["near"] == {"threshold": 6, "groups": 5, "images_in_groups": 10, "redundant": 5,
                               "conflicting_groups": 1, "cross_split_groups": 1}
    samples = report.samples.set_index("id")
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
    assert set(summary["near"]) == {"threshold", "groups", "images_in_groups", "conflicting_groups",
                                    "cross_split_groups", "redundant"}
    samples = pd.read_csv(samples_path, keep_default_na=False)
    for column in ("id", "label", "usage", "mean", "exact_group", "near_group", "outlier_score", "outlier"):
        assert column in samples.columns
    assert len(samples) == len(dataset)
    assert set(samples["outlier"].astype(str)) <= {"True", "False"}
    assert (samples.loc[samples["exact_group"] == "", "near_group"].astype(str) != "nan").all()
    assert set(samples["label"]) <= {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def test_second_audit_reuses_cached_features(synthetic, workspace):
    dataset, _ = synthetic
    run_audit(dataset, workspace=workspace)
    second = run_audit(dataset, workspace=workspace)
    assert "hashes_cache" in second.summary["seconds_by_stage"]
    assert "phash" not in second.summary["seconds_by_stage"]


def test_threshold_zero_near_groups_equal_identical_hashes(synthetic, workspace):
    dataset, _ = synthetic
    report = run_audit(dataset, AuditConfig(near_threshold=0), workspace=workspace)
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
                             "--workspace", str(real_cache), "--quiet"], capture_output=True, text=True)
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
