"""Shared fixtures: an isolated workspace per test, and the real dataset when it is present."""

import os
import sys
from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "fer2013"
# The Train page measures this machine's speed in a TensorFlow process of its own (fer_app.speed): off for the
# suite (apps started by tests inherit it), on in the tests of that measurement.
os.environ.setdefault("FER_AUDIT_MEASURE_SPEED", "0")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh FER_AUDIT_HOME for the test, so no test sees another's database or cache."""
    home = tmp_path / "workspace"
    home.mkdir()
    monkeypatch.setenv("FER_AUDIT_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def keras_precision_policy_restored():
    """Each training run is its own process in the product; here many run in one, and a run leaves
    Keras's process-wide precision policy (bfloat16 on some CPUs) to whatever test comes next."""
    before = _keras_policy() or "float32"
    yield
    after = _keras_policy()
    if after is not None and after != before:
        sys.modules["keras"].mixed_precision.set_global_policy(before)


def _keras_policy() -> str | None:
    """Keras's precision policy, or None when Keras is not (yet fully) imported: an app test's
    background face stage may still be importing it when the test ends."""
    precision = getattr(sys.modules.get("keras"), "mixed_precision", None)
    return precision.global_policy().name if precision is not None else None


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real FER-2013 not found at {REAL_DATA} (integration tests need ../shared/fer2013)")
    return REAL_DATA


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory) -> Path:
    """One workspace for the whole test session, so the real data is decoded once."""
    return tmp_path_factory.mktemp("real_cache")
