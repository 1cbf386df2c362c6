"""Keyboard review on the real data: decisions per minute in chromium, one key per decision.

    python benchmarks/bench_keyboard_review.py [--data ../shared/fer2013] [--workspace DIR] [--decisions 30]

Stores a stand-in suspected-mislabel result for the data (no training: every third Training image
doubted, as tests/test_mislabels.stored_result builds one), so the queue has FER-2013's size (~9,500
images); starts `streamlit run app.py` on the data; opens Review → Suspected mislabels → Keyboard
review and presses accept, keep, relabel and drop keys in turn, each after the page shows the next
image, as a reviewer would. Prints the decisions per minute and the time from a key to the next image
(median, slowest). The workspace's caches are reused (a first audit with its face stage takes minutes
on a 2-core machine); the edits it writes stay in the workspace's log.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from test_browser import WAIT_MS, browser_page, free_port, wait_for_health  # noqa: E402
from test_keyboard_review_browser import PAGE_SHOWS, relabel_key  # noqa: E402
from test_mislabels import stored_result  # noqa: E402

from fer_app.keyboard.keys import item_tag  # noqa: E402
from fer_core.curation.edits import read_state  # noqa: E402
from fer_core.dataset.loading import load  # noqa: E402
from fer_core.views.review_queue import mislabel_queue  # noqa: E402

KEYS = ("a", "o", "#", "d")  # accept, keep, relabel (a number key), drop, in turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--workspace", default=None, help="reused for its caches (default: a new temporary one)")
    parser.add_argument("--decisions", type=int, default=30)
    arguments = parser.parse_args()
    workspace = Path(arguments.workspace or tempfile.mkdtemp(prefix="bench_keys_"))
    workspace.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    dataset = load(arguments.data, workspace=workspace)
    training = [sample for sample, usage in zip(dataset.ids, dataset.usages) if usage == "Training"][::3]
    suspects = {sample: ((int(dataset.labels[dataset.index_of(sample)]) + 2) % 7, 0.01) for sample in training}
    result = stored_result(dataset, suspects, workspace)
    queue = list(mislabel_queue(result, dataset, read_state(workspace)).keys)
    print(f"data and stand-in result: {time.perf_counter() - started:.1f} s; queue {len(queue):,} images")

    port = free_port()
    env = {**os.environ, "FER_DATA": str(Path(arguments.data).resolve()), "FER_AUDIT_HOME": str(workspace)}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, server)
        with browser_page(Path(tempfile.mkdtemp()), "bench_failure.png") as page:
            opened = time.perf_counter()
            page.goto(f"{url}/Review")
            page.get_by_text("Suspected mislabels (model)").click(timeout=10 * WAIT_MS)
            page.get_by_text("Keyboard review: one at a time").click(timeout=WAIT_MS)
            page.wait_for_function(PAGE_SHOWS, arg=[f"item 1 of {len(queue):,}", item_tag(queue[0])],
                                   polling="raf", timeout=10 * WAIT_MS)
            page.wait_for_function("() => document.body.dataset.reviewKeys === 'listening'", timeout=WAIT_MS)
            print(f"Review page with the audit, then keyboard review: {time.perf_counter() - opened:.1f} s")
            waits = []
            first = time.perf_counter()
            for number in range(arguments.decisions):
                sample_id = queue[number]
                key = KEYS[number % len(KEYS)]
                key = relabel_key(int(dataset.labels[dataset.index_of(sample_id)])) if key == "#" else key
                pressed = time.perf_counter()
                page.keyboard.press(key)
                shown = f"item {number + 2:,} of {len(queue):,} · {number + 1} decided"
                page.wait_for_function(PAGE_SHOWS, arg=[shown, item_tag(queue[number + 1])], polling="raf",
                                       timeout=WAIT_MS)
                waits.append(time.perf_counter() - pressed)
            elapsed = time.perf_counter() - first
    finally:
        server.terminate()
        server.wait(timeout=30)
    waits.sort()
    print(f"{arguments.decisions} decisions in {elapsed:.1f} s: {arguments.decisions / elapsed * 60:.0f} per minute; "
          f"key → next image: median {waits[len(waits) // 2]:.2f} s, slowest {waits[-1]:.2f} s")
    print(f"load average (1, 5, 15 min): {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
