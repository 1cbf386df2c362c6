"""Progress callbacks `(stage, done, total)` for the terminal (one tqdm bar per stage), and the time left
at the rate measured so far, for the app's progress bars."""

from __future__ import annotations

import math
import sys


def seconds_left(done: int, total: int, elapsed_seconds: float) -> float | None:
    """Seconds to finish at the rate measured so far; None before anything is done (no rate yet)."""
    if done <= 0 or elapsed_seconds <= 0:
        return None
    return max(0.0, (total - done) * elapsed_seconds / done)


def time_left_text(done: int, total: int, elapsed_seconds: float) -> str:
    """`about 40 s left`, `about 3 min left` (whole minutes from 90 s), `estimating the time left` before
    a rate is known."""
    seconds = seconds_left(done, total, elapsed_seconds)
    if seconds is None:
        return "estimating the time left"
    if seconds >= 90:
        return f"about {math.ceil(seconds / 60)} min left"
    return f"about {math.ceil(seconds)} s left" if seconds >= 1 else "less than a second left"


class TerminalProgress:
    """Shows a progress bar per stage on stderr; a new stage name closes the previous bar."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._stage = None
        self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit="img", file=sys.stderr, leave=False)
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._stage = None
