"""Progress bars on stderr, drawn by tqdm: :class:`RunProgress` for the steps of a run and
:class:`SweepProgress` for the jobs of a sweep.

Both keep diagsim's rules about where progress goes:

* a run's bar is shown only when asked: ``enabled=None`` means "if the stream is a terminal" (so it is
  off in pipes, log files and tests), ``False`` (``--quiet``) never, ``True`` always;
* a sweep's bar redraws in place on a terminal; on anything else (a log file, CI) it prints one line at
  every 10 % of the jobs and at the end, so that logs stay short; ``enabled=False`` (``--no-progress``)
  silences it.

tqdm draws the bar and computes rates and times; these classes decide when a line is written and what it
says (the units, the cached and failed job counts).
"""
from __future__ import annotations

import sys

from tqdm import tqdm

_NEVER = float("inf")  # tqdm's ``delay``: never draw on its own (the sweep's log mode writes the lines)


class _Bar(tqdm):
    """tqdm with one more field for ``bar_format``: ``{rate_si}``, the rate with an SI prefix (``2.49M``)
    while the counts stay exact."""

    @property
    def format_dict(self):
        d = super().format_dict
        rate = d["rate"]
        if rate is None and d["elapsed"]:
            rate = (d["n"] - d["initial"]) / d["elapsed"]
        d["rate_si"] = tqdm.format_sizeof(rate) if rate else "?"
        return d


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class RunProgress:
    """The steps of a run: steps done of the total, rate, elapsed time and time left.

    Parameters
    ----------
    total : int
        Steps of the whole run.
    desc : str
        Printed before the bar (the driver passes the model and the optimizer).
    unit : str
        What is counted.
    enabled : bool or None
        None: only when ``stream`` is a terminal; False: never; True: always.
    stream : file-like, optional
        Where to draw (default ``sys.stderr``).
    min_interval : float
        Seconds between two redraws at least (the last count is always drawn).
    initial : int
        Steps already done (a resumed run), not counted in the rate.

    Notes
    -----
    ``update(done)`` takes the absolute count of steps done, ``close()`` ends the line; the object is also
    a context manager.
    """

    BAR_FORMAT = "{desc} |{bar:24}| {percentage:5.1f}% {n}/{total} {unit} [{elapsed}<{remaining}, {rate_si} {unit}/s]"

    def __init__(self, total: int, *, desc: str = "simulate", unit: str = "steps", enabled: bool | None = None,
                 stream=None, min_interval: float = 0.2, initial: int = 0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else bool(enabled)
        self.total = max(int(total), 0)
        self.done = int(initial)
        self._bar = _Bar(total=self.total, initial=self.done, desc=desc, unit=unit, file=self.stream,
                         disable=not self.enabled, mininterval=float(min_interval), miniters=1, smoothing=0,
                         bar_format=self.BAR_FORMAT, dynamic_ncols=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, done: int) -> None:
        """Set the count of steps done to ``done`` (absolute) and redraw if it is time to."""
        done = int(done)
        if self.enabled and done != self.done:
            self._bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        """Draw the last count and end the line."""
        self._bar.close()


class SweepProgress:
    """The jobs of a sweep: ``total`` jobs of which ``cached`` were already done; jobs done of the total,
    cached and failed counts, elapsed time and time left (from the rate of the jobs computed here).

    Parameters
    ----------
    total, cached : int
        Job counts.
    label : str
        Printed first (the sweep's name).
    enabled : bool
        False silences it.
    stream : file-like, optional
        Where to write (default ``sys.stderr``). A terminal gets a bar redrawn in place, anything else one
        line at every 10 % and one at the end.
    """

    BAR_FORMAT = "{desc} |{bar:24}| {n_fmt}/{total_fmt} jobs{postfix}  [{elapsed} elapsed, {remaining} left]"

    def __init__(self, total: int, cached: int = 0, *, label: str = "sweep", enabled: bool = True, stream=None):
        self.total, self.cached, self.label = int(total), int(cached), label
        self.done = self.cached
        self.failed = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled) and self.total > 0
        self.tty = _is_terminal(self.stream)
        self._last_decile = -1
        # on a terminal tqdm draws (at most every 0.1 s); in log mode it only formats, and draw() writes
        self._bar = tqdm(total=self.total, initial=self.cached, desc=label, file=self.stream,
                         disable=not self.enabled, mininterval=0.1, miniters=1, smoothing=0,
                         delay=0 if self.tty else _NEVER, bar_format=self.BAR_FORMAT, ascii=not self.tty,
                         dynamic_ncols=True)
        self._set_postfix()
        self.draw()

    def _set_postfix(self) -> None:
        if not self.enabled:
            return
        extra = [f"{self.cached} cached"] if self.cached else []
        if self.failed:
            extra.append(f"{self.failed} failed")
        self._bar.set_postfix_str(", ".join(extra), refresh=False)

    def line(self) -> str:
        """The text of the bar for the current counts (empty when disabled)."""
        return str(self._bar) if self.enabled else ""

    def draw(self, final: bool = False) -> None:
        """In log mode, write a line if a new tenth of the jobs is done (on a terminal tqdm redraws the
        bar itself as the counts change, and :meth:`close` draws the last count)."""
        if not self.enabled:
            return
        if self.tty:
            return
        decile = int(10 * self.done / self.total)
        if decile > self._last_decile:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_decile = decile

    def note(self, text: str) -> None:
        """Print one line of news (on a terminal, above the bar, which is then drawn again)."""
        if not self.enabled:
            return
        if self.tty:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def update(self, n: int = 1, *, failed: bool = False) -> None:
        """``n`` more jobs done (``failed``: they failed)."""
        self.done += n
        if failed:
            self.failed += n
        if self.enabled:
            self._set_postfix()
            self._bar.update(n)
        self.draw()

    def close(self) -> None:
        """The last line (in log mode only if the count moved since the last one), then end the bar."""
        self.draw(final=True)
        self._bar.close()
