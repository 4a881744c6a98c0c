"""A dependency-free progress bar for sweeps (jobs done / total, cached, failed, elapsed, ETA).

On a terminal the bar redraws in place; otherwise (a log file, CI) it prints one line at every 10% and
at the end, so logs stay short. :meth:`Progress.note` prints a line of news (corrupt entries found, jobs
another sweep is computing).
"""
from __future__ import annotations

import sys
import time


def _hms(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Progress of ``total`` jobs of which ``cached`` were already done.

    Parameters
    ----------
    total, cached : job counts.
    label : printed first.
    enabled : False silences it.
    stream : where to write (stderr by default).
    """

    def __init__(self, total: int, cached: int = 0, *, label: str = "sweep", enabled: bool = True,
                 stream=None, width: int = 24):
        self.total, self.cached, self.label, self.width = total, cached, label, width
        self.done = cached
        self.failed = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last_decile = -1
        self._last_draw = 0.0
        self.draw()

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        bar = "=" * fill + " " * (self.width - fill)
        elapsed = time.perf_counter() - self.t0
        computed = self.done - self.cached
        todo = self.total - self.done
        eta = f"{_hms(elapsed / computed * todo)} left" if computed and todo else ""
        extra = [f"{self.cached} cached"] if self.cached else []
        if self.failed:
            extra.append(f"{self.failed} failed")
        parts = [f"{self.label} [{bar}] {self.done}/{self.total}", *extra, f"{_hms(elapsed)} elapsed", eta]
        return "  ".join(p for p in parts if p)

    def draw(self, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            now = time.perf_counter()
            if final or now - self._last_draw > 0.1 or self.done == self.total:
                self._last_draw = now
                self.stream.write("\r" + self.line().ljust(79) + ("\n" if final else ""))
                self.stream.flush()
        else:
            decile = int(10 * self.done / self.total)
            if final or decile > self._last_decile:
                if not final or decile > self._last_decile:
                    self.stream.write(self.line() + "\n")
                    self.stream.flush()
                self._last_decile = decile

    def note(self, text: str) -> None:
        """Print one line of news (on a terminal, above the bar, which is then drawn again)."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + text.ljust(79) + "\n")
            self._last_draw = 0.0
            self.stream.flush()
            self.draw()
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def update(self, n: int = 1, *, failed: bool = False) -> None:
        self.done += n
        if failed:
            self.failed += n
        self.draw()

    def close(self) -> None:
        self.draw(final=True)
