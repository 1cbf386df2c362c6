"""AppTest fixtures: a synthetic image-folder dataset (written once) and an app pointed at it."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from synthetic import make_synthetic, write_folders

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory) -> Path:
    dataset, _ = make_synthetic()
    return write_folders(dataset, tmp_path_factory.mktemp("synthetic") / "fer")


@pytest.fixture
def app_without_data(workspace, monkeypatch):
    monkeypatch.delenv("FER_DATA", raising=False)
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


@pytest.fixture
def app(workspace, synthetic_folder, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(synthetic_folder))
    return AppTest.from_file(APP, default_timeout=TIMEOUT)

