"""Progress bars (diagsim.engine.progress, drawn by tqdm): when they are shown, what a line says, one line
per tenth of a sweep in logs, and that ``--quiet`` / ``progress=False`` silence them end to end."""
from __future__ import annotations

import io
import re

import pytest

import diagsim
from diagsim.engine.progress import RunProgress, SweepProgress
from diagsim.optimizers import SGD


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _frames(text: str) -> list[str]:
    """The successive drawings of a bar redrawn in place (carriage returns), without empty ones."""
    return [f.strip() for f in re.split(r"[\r\n]", text) if f.strip()]


# --------------------------------------------------------------------------- runs
def test_run_bar_text_counts_and_final_newline():
    buf = io.StringIO()
    bar = RunProgress(200_000, desc="discrete sgd", enabled=True, stream=buf, min_interval=0.0)
    bar.update(60_000)
    bar.update(100_000)                           # absolute counts, not increments
    bar.close()
    text = buf.getvalue()
    last = _frames(text)[-1]
    assert last.startswith("discrete sgd") and "100000/200000 steps" in last and "50.0%" in last
    assert re.search(r"[0-9.]+[kMG]? steps/s\]$", last) and text.endswith("\n")
    assert "60000/200000 steps" in text


def test_run_bar_counts_a_resumed_run_from_its_start_step():
    buf = io.StringIO()
    bar = RunProgress(100, enabled=True, stream=buf, min_interval=0.0, initial=40)
    bar.update(100)
    bar.close()
    assert "100/100 steps" in _frames(buf.getvalue())[-1]


@pytest.mark.parametrize("stream, enabled, shown", [
    (io.StringIO, None, False),      # not a terminal: off unless asked
    (Terminal, None, True),          # a terminal: on
    (io.StringIO, True, True),       # asked for
    (Terminal, False, False),        # --quiet
])
def test_run_bar_is_shown_only_on_a_terminal_or_when_asked(stream, enabled, shown):
    buf = stream()
    with RunProgress(10, enabled=enabled, stream=buf, min_interval=0.0) as bar:
        bar.update(5)
    assert bool(buf.getvalue()) is shown
    assert ("5/10 steps" in buf.getvalue()) is shown


def test_simulate_draws_on_stderr_only_when_asked(capsys):
    problem = diagsim.make_problem(6, 10, 2, seed=0)
    diagsim.simulate(problem, SGD(lr=0.05), steps=50, n_paths=2, progress=True)
    err = capsys.readouterr().err
    assert "50/50 steps" in _frames(err)[-1] and _frames(err)[-1].startswith("discrete sgd")
    diagsim.simulate(problem, SGD(lr=0.05), steps=50, n_paths=2)            # stderr is not a terminal here
    diagsim.simulate(problem, SGD(lr=0.05), steps=50, n_paths=2, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_cli_quiet_turns_the_bar_off_on_a_terminal(monkeypatch, capsys, quiet):
    from diagsim.cli.main import main
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    argv = ["simulate", "--n", "6", "--d", "10", "--k", "2", "--optimizer", "sgd", "--lr", "0.05",
            "--steps", "40", "--paths", "2"] + (["--quiet"] if quiet else [])
    assert main(argv) == 0
    capsys.readouterr()
    assert ("40/40 steps" in term.getvalue()) is not quiet


# --------------------------------------------------------------------------- sweeps
def test_sweep_log_mode_writes_one_line_per_tenth():
    buf = io.StringIO()
    bar = SweepProgress(20, cached=3, label="demo", stream=buf)
    for i in range(17):
        bar.update(failed=(i == 5))
    bar.close()
    lines = buf.getvalue().splitlines()
    # 3/20 is in the first tenth; then one line each time a new tenth is reached: 4/20 ... 20/20
    assert [int(re.search(r" (\d+)/20 jobs", ln).group(1)) for ln in lines] == [3, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert all(ln.startswith("demo |") and "\r" not in ln for ln in lines)
    assert "3 cached" in lines[0] and "failed" not in lines[0]
    assert "3 cached, 1 failed" in lines[-1] and "elapsed" in lines[-1]


def test_sweep_log_mode_interrupted_sweep_ends_without_a_repeated_line():
    buf = io.StringIO()
    bar = SweepProgress(10, label="demo", stream=buf)
    bar.update()
    bar.close()                                   # stopped after 1 of 10: no extra line for the same tenth
    assert [ln.split(" jobs")[0][-4:] for ln in buf.getvalue().splitlines()] == ["0/10", "1/10"]


def test_sweep_notes_and_silence():
    buf = io.StringIO()
    bar = SweepProgress(4, label="demo", stream=buf)
    bar.note("waiting for 1 job being computed by pid 7 on host")
    assert buf.getvalue().splitlines()[-1] == "waiting for 1 job being computed by pid 7 on host"
    quiet = Terminal()
    bar = SweepProgress(4, label="demo", stream=quiet, enabled=False)
    bar.note("x")
    bar.update(4)
    bar.close()
    assert quiet.getvalue() == ""


def test_sweep_terminal_mode_redraws_in_place():
    term = Terminal()
    bar = SweepProgress(5, label="demo", stream=term)
    for _ in range(5):
        bar.update()
    bar.note("a note")
    bar.close()
    text = term.getvalue()
    assert "\r" in text and "a note" in text
    assert "5/5 jobs" in _frames(text)[-1] and text.endswith("\n")
