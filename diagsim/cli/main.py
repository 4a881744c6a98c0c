"""``diagsim`` entry point: parses the command line and dispatches to one module per subcommand.

Each subcommand module defines ``register(subparsers)`` that adds its parser and sets
``func(args) -> int``. A :class:`~diagsim.errors.DiagsimError` is printed as one line
``diagsim <cmd>: error: <message>`` and exits 2, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings

from .._version import __version__
from ..errors import DiagsimError, RunInterrupted

#: subcommand modules, in the order ``--help`` lists them
COMMANDS = ("run", "simulate", "predict", "sharpness", "verify", "sweep", "bench", "figures", "correlate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diagsim",
        description="Implicit bias of SGD, Adam and friends on diagonal linear networks: discrete "
                    "optimizers, Euler-Maruyama SDEs, slow flows and symbolic predictions.")
    parser.add_argument("--version", action="version", version=f"diagsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    prog = f"diagsim {args.command}"
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line_warning(prog)
        try:
            return int(args.func(args) or 0)
        except DiagsimError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # output piped into e.g. `head`, which closed early
            import os
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", signal.SIGINT)
            saved = getattr(exc, "checkpoint", None)
            name = signal.Signals(signum).name
            tail = f"; checkpoint written to {saved} (run the same command again, or --resume it)" if saved else ""
            print(f"{prog}: interrupted ({name}){tail}", file=sys.stderr)
            return 128 + int(signum)


def _one_line_warning(prog: str):
    """A ``warnings.showwarning`` that prints ``<prog>: warning: <message>`` (no file and line: the
    message says what happened and what to do)."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {message}", file=sys.stderr if file is None else file)
    return show


def _terminate(signum, frame):
    """SIGTERM ends a command the way Ctrl-C does (runs with a checkpoint defer it and save first). A
    second SIGTERM during the clean-up that follows is ignored, so the clean-up completes."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise RunInterrupted(signum)


def console_main() -> int:
    """The ``diagsim`` console script: ``main()`` with SIGTERM handled like Ctrl-C."""
    signal.signal(signal.SIGTERM, _terminate)
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
