"""The error contract shared by `python -m training`, `training.predict` and `training.evaluate`.

A user mistake (a flag, a file, the data, a checkpoint, the environment) raises `UsageError`
with one line that names the thing at fault and says what to do; the entry point prints it
as `error: ...` (under torchrun tagged with the rank) and exits 2, without a traceback.
`--debug` or the environment variable TRAINING_DEBUG=1 prints the traceback as well.

Exit status, the same for every entry point:
  0    done, or stopped cleanly by SIGTERM (a checkpoint was written)
  1    training failed (non-finite losses, a crash: a traceback follows)
  2    user mistake: flags, files, data, checkpoints, environment (one `error:` line)
  130  interrupted by Ctrl-C (SIGINT; once: after writing a checkpoint)

This module imports neither torch nor numpy, so that flag mistakes are reported at once.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from collections.abc import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_STATUS_HELP = (
    "exit status: 0 done or stopped cleanly (SIGTERM, after a checkpoint); 1 training failed; "
    "2 user mistake (flags, files, data, checkpoints, environment: one 'error:' line); "
    "130 interrupted (Ctrl-C). --debug or TRAINING_DEBUG=1 adds tracebacks."
)


class UsageError(Exception):
    """A user mistake: the message is one line naming what is at fault and what to do."""


def debug_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("TRAINING_DEBUG", "") not in ("", "0")


def _tag() -> str:
    world = os.environ.get("WORLD_SIZE")
    if world and world != "1":
        return f"[rank {os.environ.get('RANK', '?')}/{world}] "
    return ""


def _say(text: str) -> None:
    """One line (or lines) on stderr in a single write, newline included: every rank writes
    to the same pipe, and print() writes the newline apart, so another rank's message could
    start on the end of this one's line."""
    sys.stderr.write(f"{_tag()}{text}\n")
    sys.stderr.flush()


def print_error(message: str) -> None:
    _say(f"error: {message}")


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """Call `main(argv)` under the contract above and return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_requested(argv)
    try:
        return main(argv)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        print_error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        _say("interrupted (Ctrl-C)")
        return EXIT_INTERRUPTED


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that name the flag and the nearest valid one."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("epilog", EXIT_STATUS_HELP)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--debug", action="store_true", help="show tracebacks (also TRAINING_DEBUG=1)"
        )

    def flags(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def nearest(self, word: str) -> str | None:
        name = word.split("=", 1)[0]
        found = difflib.get_close_matches(name, self.flags(), n=1, cutoff=0.6)
        return found[0] if found else None

    def error(self, message: str):
        if message.startswith("unrecognized arguments: "):
            words = message.split(": ", 1)[1].split()
            first = next((w for w in words if w.startswith("-")), words[0])
            near = self.nearest(first)
            hint = f"did you mean {near}? " if near else ""
            message = f"unknown argument {first} ({hint}{self.prog} --help lists the flags)"
        else:
            message = f"{message} ({self.prog} --help lists the flags)"
        print_error(message)
        sys.exit(EXIT_USAGE)


def at_least(low: float, kind: type = int) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is at least `low`."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_noun(kind)}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    convert.__name__ = f"{kind.__name__} >= {low}"
    return convert


def positive(kind: type = float) -> Callable[[str], float]:
    """An argparse type: a number of `kind` above 0 (and finite)."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_noun(kind)}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
        return value

    convert.__name__ = f"{kind.__name__} > 0"
    return convert


def in_range(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a float in [low, high]."""

    def convert(text: str):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high}], got {text}")
        return value

    convert.__name__ = f"float in [{low}, {high}]"
    return convert


def _noun(kind: type) -> str:
    return "an integer" if kind is int else "a number"
