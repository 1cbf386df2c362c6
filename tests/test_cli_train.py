"""`python -m fer_core train` on a small stratified subset of the real FER-2013: every model × sampling."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core.cli import main
from fer_core.dataset.loading import load
from fer_core.training.models import MODEL_NAMES
from fer_core.training.sampling import SAMPLING_NAMES, stratified_subset

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMOKE_LIMIT = 150
COMBINATION_LIMIT = 100
METRICS_FIELDS = {"model", "sampling", "size", "epochs", "device", "seed", "train_images", "train_class_counts",
                  "test_usage", "labels", "accuracy", "macro_f1", "per_class", "confusion", "leak_free_accuracy",
                  "leaked_test_images", "seconds", "images_per_second"}
SMOKE_COMBINATION = ("cnn", "none")  # run as a real subprocess; the other 15 run in-process


@pytest.fixture(scope="session")
def train_workspace(tmp_path_factory, real_data) -> Path:
    """One workspace (no edits) for all runs, so the real data is decoded once and then read from cache."""
    home = tmp_path_factory.mktemp("train-workspace")
    load(real_data, workspace=home)
    return home


def train_arguments(data: Path, workspace: Path, out: Path, model: str, sampling: str, limit: int) -> list[str]:
    return ["train", str(data), "--model", model, "--sampling", sampling, "--epochs", "1", "--size", "tiny",
            "--batch-size", "32", "--limit", str(limit), "--seed", "0", "--workspace", str(workspace),
            "--out", str(out)]


def test_cli_smoke_run_writes_complete_metrics(tmp_path, real_data, train_workspace):
    out = tmp_path / "run"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-m", "fer_core", *train_arguments(real_data, train_workspace, out, *SMOKE_COMBINATION,
                                                            SMOKE_LIMIT)],
        cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "epoch 1/1: loss " in completed.stdout and "leak-free accuracy" in completed.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert METRICS_FIELDS <= metrics.keys()
    subset = stratified_subset(load(real_data, workspace=train_workspace), SMOKE_LIMIT, seed=0)
    test_size = subset.count_by_usage()["PrivateTest"]
    assert metrics["test_usage"] == "PrivateTest" and metrics["test_images"] == test_size
    assert len(metrics["confusion"]) == 7 and all(len(row) == 7 for row in metrics["confusion"])
    assert sum(map(sum, metrics["confusion"])) == test_size
    assert sum(entry["support"] for entry in metrics["per_class"].values()) == test_size
    assert list(metrics["per_class"]) == metrics["labels"] == list(metrics["train_class_counts"])
    assert metrics["train_images"] == subset.count_by_usage()["Training"]
    assert metrics["leaked_test_images"] + metrics["leak_free_test_images"] == test_size
    assert metrics["device"] == "CPU" or metrics["device"].startswith("GPU: ")
    assert (metrics["model"], metrics["sampling"], metrics["size"], metrics["epochs"]) == ("cnn", "none", "tiny", 1)
    history = json.loads((out / "history.json").read_text())
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= history.keys() and len(history["loss"]) == 1
    assert (out / "model.keras").stat().st_size > 0


@pytest.mark.parametrize("model, sampling", [combination for combination in
                                             itertools.product(MODEL_NAMES, SAMPLING_NAMES)
                                             if combination != SMOKE_COMBINATION])
def test_every_model_and_sampling_trains_from_the_cli(tmp_path, real_data, train_workspace, model, sampling):
    out = tmp_path / "run"
    assert main(train_arguments(real_data, train_workspace, out, model, sampling, COMBINATION_LIMIT)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["model"], metrics["sampling"]) == (model, sampling)
    assert sum(map(sum, metrics["confusion"])) == metrics["test_images"]
    counts = list(metrics["train_class_counts"].values())
    if sampling in ("ros", "smote"):
        assert len(set(counts)) == 1 and metrics["images_added_by_sampling"] > 0
    else:
        assert metrics["train_images"] == metrics["train_images_before_sampling"]
    assert (metrics["class_weight"] is not None) == (sampling == "class_weight")


@pytest.mark.parametrize("option, value, message", [
    ("--model", "resnet", f"error: unknown model 'resnet'; expected one of {', '.join(MODEL_NAMES)}"),
    ("--sampling", "adasyn", "error: unknown sampling 'adasyn'; expected one of none, class_weight, ros, smote"),
    ("--epochs", "0", "error: epochs must be a positive integer, got 0"),
    ("--epochs", "99999999999999999999", "error: epochs must be at most 10,000, got 99999999999999999999"),
])
def test_invalid_argument_prints_one_line_and_writes_nothing(tmp_path, capsys, option, value, message):
    arguments = ["train", str(tmp_path / "data"), "--model", "cnn", "--sampling", "none", "--epochs", "1",
                 "--workspace", str(tmp_path / "workspace"), "--out", str(tmp_path / "run")]
    arguments[arguments.index(option) + 1] = value
    assert main(arguments) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["train"], ["jobs", "submit"]])
def test_every_config_field_is_an_option(command):
    """A TrainConfig field added later becomes `--field-name` with no edit to the CLI."""
    import dataclasses

    from test_train_config import non_default_config

    from fer_core.cli import build_parser
    from fer_core.cli.train import config_from_args

    config = non_default_config()
    arguments = [*command, "DATA"] + (["--out", "RUN"] if command == ["train"] else [])
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        option = "--" + field.name.replace("_", "-")
        arguments += [option] if value is True else [option, str(value)]
    assert config_from_args(build_parser().parse_args(arguments)) == config
