"""benchmarks/make_faces.py (issue 25): an N-image FER-layout folder with planted exact and near copies,
the same bytes whatever the number of workers; here from a small synthetic FER tree (no real data needed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_core.dataset.pixel_store import decode_chunk
from fer_core.duplicates.verification import verify_pairs
from tests.synthetic import make_synthetic, write_folders

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_faces():
    spec = importlib.util.spec_from_file_location("make_faces", ROOT / "benchmarks" / "make_faces.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_faces"] = module  # dataclasses and worker processes find it by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("make_faces", None)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return write_folders(make_synthetic(seed=3)[0], tmp_path_factory.mktemp("sources") / "fer", extension="jpg")


def image_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.glob("*/*/*.jpg"))


def test_two_hundred_images_with_their_planted_copies(make_faces, sources, tmp_path):
    settings = make_faces.FaceSettings(seed=1, exact_share=0.05, near_share=0.05)
    manifest = make_faces.make_faces(200, tmp_path / "faces", sources, settings, workers=1)
    root = tmp_path / "faces"
    files = image_files(root)
    assert len(files) == manifest["images"] == 200
    assert {path.split("/")[0] for path in files} == {"train", "test"}
    assert manifest["contempt"] == len(list(root.glob("*/contempt/*.jpg"))) > 0
    planted = [line.split(",") for line in (root / "planted.csv").read_text().splitlines()[1:]]
    assert len(planted) == manifest["exact_copies"] + manifest["near_copies"]
    assert manifest["exact_copies"] > 0 and manifest["near_copies"] > 0
    for copy, original, kind in planted:
        if kind == "exact":
            assert (root / copy).read_bytes() == (root / original).read_bytes()
    near = [(copy, original) for copy, original, kind in planted if kind == "near"]
    decoded = decode_chunk([str(root / path) for pair in near for path in pair]).pixels
    scored = verify_pairs(decoded, np.arange(0, len(decoded), 2), np.arange(1, len(decoded), 2))
    assert (scored.similarity >= 0.95).all(), scored.similarity  # what the audit calls a near copy


def test_same_bytes_whatever_the_workers_and_an_existing_folder_is_refused(make_faces, sources, tmp_path):
    settings = make_faces.FaceSettings(seed=2, contempt_share=0.0)
    make_faces.make_faces(120, tmp_path / "one", sources, settings, workers=1)
    make_faces.make_faces(120, tmp_path / "two", sources, settings, workers=2)
    files = image_files(tmp_path / "one")
    assert files == image_files(tmp_path / "two") and not any("/contempt/" in path for path in files)
    assert all((tmp_path / "one" / path).read_bytes() == (tmp_path / "two" / path).read_bytes() for path in files)
    assert json.loads((tmp_path / "one" / "make_faces.json").read_text())["images"] == 120
    with pytest.raises(ValueError, match="exists"):
        make_faces.make_faces(10, tmp_path / "one", sources, settings)
