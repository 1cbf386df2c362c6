"""The app in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Drops a duplicate group on the Duplicates page and checks the Overview's counts follow.
Screenshots go to a tmp folder, or to $FER_E2E_SCREENSHOTS when set.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from fer_core.edits import read_edits
from synthetic import make_synthetic, write_folders

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STARTUP_SECONDS = 60
WAIT_MS = 90_000  # generous: CI machines are small and often busy

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {STARTUP_SECONDS} s")


@pytest.fixture
def server(tmp_path, workspace):
    data = write_folders(make_synthetic()[0], tmp_path / "fer")
    port = free_port()
    env = {**os.environ, "FER_DATA": str(data), "FER_AUDIT_HOME": str(workspace)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def metric(page, label: str) -> str:
    card = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return card.locator('[data-testid="stMetricValue"]').inner_text()


def settle(page) -> None:
    """Wait until the script run finishes (Streamlit shows its status widget while running)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)


def screenshot_folder(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("FER_E2E_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@contextmanager
def browser_page(shots: Path, failure_name: str = "failure.png"):
    """A 1400×1000 chromium page; on an exception, a screenshot of it goes to `shots/failure_name`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page
        except Exception:
            page.screenshot(path=str(shots / failure_name))
            raise
        finally:
            browser.close()


def test_drop_a_group_and_see_the_overview_change(server, workspace, tmp_path):
    from playwright.sync_api import expect

    shots = screenshot_folder(tmp_path)
    with browser_page(shots) as page:
        page.goto(server)
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Images kept")).to_be_visible(timeout=WAIT_MS)
        settle(page)
        images_before = metric(page, "Images kept")
        groups_before = metric(page, "Near-copy groups")

        page.get_by_role("link", name="Duplicates").first.click()
        first_group = page.locator('[data-testid="stForm"]').first
        expect(first_group).to_be_visible(timeout=WAIT_MS)
        settle(page)
        first_group.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name="Drop all").click()
        first_group.get_by_placeholder("why (kept in the edit history)").fill("e2e: drop a duplicate group")
        first_group.get_by_role("button", name="Apply").click()
        expect(page.get_by_text("Dropped the group")).to_be_visible(timeout=WAIT_MS)
        page.screenshot(path=str(shots / "duplicates.png"))

        log = read_edits(workspace)
        assert log and {edit.action for edit in log} == {"drop"}
        assert log[0].reason == "e2e: drop a duplicate group"

        page.get_by_role("link", name="Overview").first.click()
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Edits made")).to_contain_text(
            str(len(log)), timeout=WAIT_MS)
        assert int(metric(page, "Images kept").replace(",", "")) == int(images_before.replace(",", "")) - len(log)
        assert int(metric(page, "Near-copy groups").split()[0]) == int(groups_before) - 1
        page.screenshot(path=str(shots / "overview.png"))
