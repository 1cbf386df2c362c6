"""Shared fixtures: an isolated workspace per test, and the real dataset when it is present."""

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "fer2013"


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh FER_AUDIT_HOME for the test, so no test sees another's database or cache."""
    home = tmp_path / "workspace"
    home.mkdir()
    monkeypatch.setenv("FER_AUDIT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real FER-2013 not found at {REAL_DATA} (integration tests need ../shared/fer2013)")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """One workspace for the whole test session, so the real data is decoded once."""
    return tmp_path_factory.mktemp("real_cache")
