"""A dependency-free progress bar on stderr: steps done, rate (steps/s) and ETA.

Shown only when enabled: ``enabled=None`` means "if the stream is a terminal" (so it is off in pipes,
logs and tests), ``False`` (e.g. ``--quiet``) never. It redraws at most every ``min_interval`` seconds
with a carriage return and finishes with a newline.
"""
from __future__ import annotations

import sys
import time


def _fmt_time(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """``Progress(total, desc=..., enabled=None)``; call ``update(done)`` with the absolute count and
    ``close()`` at the end (also usable as a context manager)."""

    def __init__(self, total: int, *, desc: str = "simulate", unit: str = "steps", enabled: bool | None = None,
                 stream=None, min_interval: float = 0.2, initial: int = 0, width: int = 24):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = bool(enabled)
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.min_interval = float(min_interval)
        self.width = int(width)
        self.initial = int(initial)
        self.done = int(initial)
        self._t0 = time.perf_counter()
        self._last = -float("inf")
        self._drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def line(self, now: float | None = None) -> str:
        """The text of the bar for the current count."""
        now = time.perf_counter() if now is None else now
        el = max(now - self._t0, 1e-12)
        rate = (self.done - self.initial) / el
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (f"{self.desc} [{bar}] {100 * frac:5.1f}% {self.done}/{self.total} {self.unit} "
                f"{rate:.3g} {self.unit}/s elapsed {_fmt_time(el)} ETA {_fmt_time(eta)}")

    def update(self, done: int) -> None:
        self.done = int(done)
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.min_interval and self.done < self.total:
            return
        self._last = now
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
            self._drawn = False
