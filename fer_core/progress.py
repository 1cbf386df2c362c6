"""Progress callbacks `(stage, done, total)` for the terminal: one tqdm bar per stage."""

from __future__ import annotations

import sys


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
