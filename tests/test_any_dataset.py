"""Any FER dataset (issue 25): the label set comes from the data (FER-2013's seven, then other classes such as
contempt), `--labels` names or maps it, split folders other than train/test, colour images of any size.

One integration test walks a synthetic 8-class dataset of colour images of mixed sizes through audit → edit
(relabel to contempt) → a tiny training run (the output layer has 8 units) → report (8×8 confusion); the
other tests pin the label-set rules and the bad input, each in one line.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_core import jobs
from fer_core.cli import main
from fer_core.dataset.label_sets import LABELS_RECORD
from fer_core.dataset.loading import Dataset, load
from fer_core.dataset.sources import decode_image
from fer_core.labels import (EMOTIONS, MAX_CLASSES, label_set_of_integers, label_set_of_names,
                             parse_labels_option)
from fer_core.training.config import TrainConfig
from tests.synthetic import draw_face

EIGHT = (*EMOTIONS, "contempt")
# AffectNet-style folder names: two need mapping to FER-2013's names, contempt is a class of its own.
FOLDERS = ("anger", "disgust", "fear", "happiness", "sad", "surprise", "neutral", "contempt")
MAPPING = "anger=angry,happiness=happy,disgust,fear,sad,surprise,neutral,contempt"
SPLITS = {"train": 4, "val": 2, "test": 2}  # images per class
SIZES = ((48, 48), (96, 96), (120, 90), (64, 80))  # width × height: square, larger, landscape, portrait


def write_colour_dataset(root: Path, folders=FOLDERS, splits=SPLITS, seed: int = 0) -> Path:
    """<root>/<split>/<folder>/<n>.{png,jpg}: tinted colour faces of mixed sizes, no usage prefix in the names."""
    rng = np.random.default_rng(seed)
    count = 0
    for split, per_class in splits.items():
        for folder in folders:
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            for _ in range(per_class):
                face = Image.fromarray(draw_face(rng)).resize(SIZES[count % len(SIZES)], Image.Resampling.BICUBIC)
                tint = rng.uniform(0.6, 1.0, 3)
                colour = Image.merge("RGB", [face.point(lambda v, t=t: int(v * t)) for t in tint])
                colour.save(root / split / folder / f"img{count:03d}.{'png' if count % 2 else 'jpg'}")
                count += 1
    return root


def run_cli(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def wait_until_finished(workspace: Path, timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = jobs.list_runs(workspace)
        if records and all(record.finished for record in records):
            return records
        time.sleep(0.5)
    raise AssertionError(f"the run did not finish in {timeout:.0f}s: {[r.state for r in jobs.list_runs(workspace)]}")


def output_units(model_path: Path) -> int:
    """Units of the model's output layer, read from model.keras's config (a zip) without importing Keras."""
    with zipfile.ZipFile(model_path) as archive:
        config = json.loads(archive.read("config.json"))
    [layer] = [layer for layer in config["config"]["layers"] if layer["config"]["name"] == "emotion"]
    return layer["config"]["units"]


def test_eight_classes_audit_edit_train_report(tmp_path, capsys):
    data, home = write_colour_dataset(tmp_path / "affect"), tmp_path / "workspace"

    code, out, err = run_cli(capsys, "audit", data, "--fast", "--out", tmp_path / "audit", "--workspace", home,
                             "--labels", MAPPING)
    assert code == 0, err
    assert "splits: train → Training, val → PublicTest, test → PrivateTest" in out
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    assert summary["emotions"] == list(EIGHT)
    assert summary["by_label"] == {emotion: 8 for emotion in EIGHT}
    assert summary["converted"] == summary["images"] == 64  # colour, and most not 48×48
    samples = pd.read_csv(tmp_path / "audit" / "samples.csv")
    assert set(samples.loc[samples["id"].str.contains("/anger/"), "label"]) == {"angry"}
    assert (samples["label"] == "contempt").sum() == 8

    # No --labels from here on: the workspace remembers it for this data (the worker must too).
    happy = samples.loc[(samples["label"] == "happy") & (samples["usage"] == "Training"), "id"].iloc[0]
    code, out, err = run_cli(capsys, "edit", "relabel", happy, "contempt", "--reason", "a one-sided smile",
                             "--data", data, "--workspace", home)
    assert code == 0, err

    [run_id] = [jobs.submit(TrainConfig(model="cnn", sampling="none", size="tiny", epochs=1, batch_size=16),
                            data, home)]
    [record] = wait_until_finished(home)
    assert record.state == "succeeded", record.error
    metrics = record.metrics
    assert metrics["labels"] == list(EIGHT) and np.shape(metrics["confusion"]) == (8, 8)
    assert metrics["train_class_counts"]["contempt"] == 5 and metrics["train_class_counts"]["happy"] == 3
    assert output_units(Path(record.out_dir) / "model.keras") == 8
    predictions = pd.read_csv(Path(record.out_dir) / "predictions.csv")
    assert [column for column in predictions if column.startswith("p_")] == [f"p_{emotion}" for emotion in EIGHT]

    code, out, err = run_cli(capsys, "report", data, "--out", tmp_path / "report.html", "--workspace", home,
                             "--fast", "--quiet", "--runs", run_id)
    assert code == 0, err
    text = (tmp_path / "report.html").read_text()
    changed = text[text.index('<section id="changed">'):]
    assert '"x":["angry","disgust","fear","happy","sad","surprise","neutral","contempt"]' in changed  # 8×8 confusion


# ---- the label-set rules --------------------------------------------------------------------------------


def test_default_label_set_is_fer_seven_then_other_folders_sorted():
    assert label_set_of_names(["happy", "sad"], None, "d") == EMOTIONS  # FER-2013's indices never move
    assert label_set_of_names(["Contempt", "happy", "boredom"], None, "d") == (*EMOTIONS, "boredom", "contempt")


def test_labels_list_is_the_order_and_a_mapping_renames_folders():
    listed = parse_labels_option("angry, disgust,fear,happy,sad,surprise,neutral,Contempt")
    assert label_set_of_names(["contempt", "happy"], listed, "d") == EIGHT
    mapped = parse_labels_option(MAPPING)
    assert label_set_of_names(FOLDERS, mapped, "d") == EIGHT
    assert mapped.text == MAPPING  # what the workspace remembers


def test_csv_labels_count_classes_from_the_data():
    assert label_set_of_integers([0, 3, 7], None, "f.csv") == ((*EMOTIONS, "class_7"), {0: 0, 3: 3, 7: 7})
    assert label_set_of_integers([0, 6], None, "f.csv")[0] == EMOTIONS
    names, index = label_set_of_integers([0, 7, 8], parse_labels_option(",".join(EIGHT)), "f.csv")
    assert names == EIGHT and index == {0: 0, 7: 7}  # 8 is past the list's end: a bad row


def test_csv_with_an_eighth_label_loads_with_or_without_names(tmp_path, workspace):
    rows = [f"{label}," + " ".join(["90"] * 2304) + f",{usage}" for label, usage in
            [(0, "Training"), (7, "Training"), (3, "PublicTest"), (8, "PrivateTest")]]
    path = tmp_path / "affect.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    assert load(path).emotions == (*EMOTIONS, "class_7", "class_8")
    named = load(path, labels=",".join(EIGHT))
    assert named.emotions == EIGHT and named.labels.tolist() == [0, 7, 3]
    assert [(p.sample_id, p.reason.split(": ", 1)[1][:20]) for p in named.problems] == [("row:3", "unknown emotion '8';")]


def test_split_folder_names_of_other_datasets(tmp_path, workspace):
    root = write_colour_dataset(tmp_path / "d", folders=("happy", "sad"),
                                splits={"Training": 1, "validation": 1, "PrivateTest": 1})
    loaded = load(root)
    assert dict(zip(loaded.ids.tolist(), loaded.usages.tolist()))["validation/sad/img003.png"] == "PublicTest"
    assert sorted(set(loaded.usages.tolist())) == ["PrivateTest", "PublicTest", "Training"]


def test_labels_are_remembered_per_data_and_default_forgets_them(tmp_path, workspace):
    root = write_colour_dataset(tmp_path / "d", folders=("anger", "happy"), splits={"train": 1, "test": 1})
    assert load(root).emotions == (*EMOTIONS, "anger")
    assert load(root, labels="anger=angry,happy").emotions == EMOTIONS
    assert load(root).emotions == EMOTIONS and (workspace / LABELS_RECORD).is_file()
    assert load(root, labels="default").emotions == (*EMOTIONS, "anger")
    assert load(root).emotions == (*EMOTIONS, "anger")


def test_fingerprint_names_a_label_set_other_than_fer_seven():
    pixels = np.zeros((2, 48, 48), np.uint8)
    arrays = dict(ids=np.array(["a", "b"]), pixels=pixels, labels=np.array([0, 1], np.int8),
                  usages=np.array(["Training", "PrivateTest"]))
    fer, renamed = Dataset(**arrays), Dataset(**arrays, emotions=(*EMOTIONS, "contempt"))
    assert fer.fingerprint == Dataset(**arrays, emotions=EMOTIONS).fingerprint != renamed.fingerprint
    assert renamed.select(np.array([1])).emotions == renamed.emotions == renamed.with_labels([1, 1]).emotions


# ---- images of any size and colour ---------------------------------------------------------------------


def encoded(image: Image.Image, kind: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def test_a_wide_colour_image_keeps_its_centre_square():
    wide = np.full((48, 96, 3), 255, np.uint8)
    wide[:, 24:72] = (200, 0, 0)  # a red square in the middle of white margins
    pixels, converted = decode_image(encoded(Image.fromarray(wide)))
    assert converted and pixels.shape == (48, 48)
    assert pixels.max() <= 61  # all red (luma 60): squeezed, the white margins would show at both sides


def test_camera_rotation_and_transparency():
    tall = Image.new("L", (48, 96), 0)
    tall.paste(255, (0, 0, 48, 48))  # top half white
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was held sideways: turn 90° clockwise to view
    pixels, _ = decode_image(encoded(tall.convert("RGB"), "JPEG", exif=exif, quality=95))
    assert pixels[:, 40:].mean() > 200 and pixels[:, :8].mean() < 50  # the white half is on the right now
    clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    assert decode_image(encoded(clear))[0].min() == 255  # transparent shows as white, not as its black RGB


# ---- bad input: one line, exit 2, nothing written -------------------------------------------------------


@pytest.mark.parametrize("labels, message", [
    ("anger=angry,happiness=angry,disgust,fear,sad,surprise,neutral,contempt", "maps two folders to 'angry'"),
    ("anger=angry,disgust,fear,sad,surprise,neutral,contempt", "leaves out emotion folder 'happiness'"),
    ("angry,disgust,fear,happy,sad,surprise,neutral", "emotion folder 'anger' is not in --labels"),
    ("anger=angry,angr=angry", "maps two folders to 'angry'"),
    ("angry,,sad", "empty entry"),
    ("anger=angry,happiness=happy,disgust,fear,sad,surprise,neutral,contempt,sadness=blue",
     "maps 'sadness', which is no emotion folder"),
])
def test_bad_labels_option_is_one_line_and_exit_2(tmp_path, capsys, labels, message):
    data = write_colour_dataset(tmp_path / "affect", splits={"train": 1})
    code, out, err = run_cli(capsys, "audit", data, "--fast", "--out", tmp_path / "out", "--workspace",
                             tmp_path / "home", "--labels", labels)
    assert code == 2 and message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "home" / LABELS_RECORD).exists()  # a refused --labels is not remembered either


def test_more_than_twenty_classes_are_refused_with_the_reason(tmp_path, capsys):
    folders = tuple(f"class{index:02d}" for index in range(MAX_CLASSES - len(EMOTIONS) + 1))
    data = write_colour_dataset(tmp_path / "many", folders=folders, splits={"train": 1})
    code, out, err = run_cli(capsys, "audit", data, "--fast", "--out", tmp_path / "out", "--workspace",
                             tmp_path / "home")
    assert code == 2 and "21 classes" in err and "more than 20" in err and err.count("\n") == 1


def test_export_keeps_the_original_colour_files_and_loads_back(tmp_path, workspace):
    from fer_core.curation import edits
    from fer_core.curation.export import export_curated

    data = write_colour_dataset(tmp_path / "affect", splits={"train": 1, "val": 1, "test": 1})
    dataset = load(data, labels=MAPPING)
    relabelled = "train/happiness/img003.png"
    edits.relabel(dataset, relabelled, "contempt", "a one-sided smile")
    result = export_curated(dataset, tmp_path / "export", "folders")
    moved = tmp_path / "export" / "train" / "contempt" / "Training_img003.png"
    assert moved.read_bytes() == (data / relabelled).read_bytes()  # the original file, colour and size kept
    assert (tmp_path / "export" / "test" / "angry" / "PublicTest_img008.jpg").is_file()  # val/anger → PublicTest
    again = load(result.path)
    assert again.emotions == EIGHT and len(again) == len(dataset)
    by_name = {Path(sample_id).name.split("_", 1)[1]: row for row, sample_id in enumerate(again.ids.tolist())}
    for row, sample_id in enumerate(dataset.ids.tolist()):
        np.testing.assert_array_equal(again.pixels[by_name[Path(sample_id).name]], dataset.pixels[row])
    assert again.labels[by_name["img003.png"]] == EIGHT.index("contempt")


def test_the_app_offers_the_datas_emotions(tmp_path, workspace, monkeypatch):
    from streamlit.testing.v1 import AppTest

    data = write_colour_dataset(tmp_path / "affect", folders=EIGHT, splits={"train": 1, "test": 1})
    monkeypatch.setenv("FER_DATA", str(data))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/3_Review.py")
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    assert list(app.multiselect(key="rev_emotions").options) == list(EIGHT)
    [relabel] = [box for box in app.selectbox if box.label == "Relabel to"]
    assert list(relabel.options) == list(EIGHT)
