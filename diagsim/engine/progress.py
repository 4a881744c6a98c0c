"""Progress bars on stderr, without dependencies: :class:`RunProgress` for the steps of a run (steps
done, rate, ETA) and :class:`SweepProgress` for the jobs of a sweep.

A run's bar is shown only when enabled: ``enabled=None`` means "if the stream is a terminal" (so it is off
in pipes, logs and tests), ``False`` (e.g. ``--quiet``) never. It redraws at most every ``min_interval``
seconds with a carriage return and finishes with a newline.
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


class RunProgress:
    """``RunProgress(total, desc=..., enabled=None)``; call ``update(done)`` with the absolute count and
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


def _hms(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class SweepProgress:
    """Progress of a sweep: ``total`` jobs of which ``cached`` were already done; jobs done / total,
    cached, failed, elapsed and ETA. On a terminal the bar redraws in place; otherwise (a log file, CI) it
    prints one line at every 10 % and at the end, so that logs stay short.

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
