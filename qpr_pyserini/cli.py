"""What every command-line tool shares: bad input becomes one ``error: ...`` line and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .io.errors import InputError


def one_line(exc: BaseException) -> str:
    """An exception as one line (file errors name the file)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def run_cli(action: Callable[[], str | None]) -> int:
    """Run a CLI's work; print its message and return 0, or report bad input on one line and return 2.

    ``InputError`` (the file or setting at fault, and the line) and ``OSError`` (missing or unreadable files)
    are the user's to fix: no traceback. Anything else, ``ValueError`` included, is a bug and keeps its
    traceback.
    """
    try:
        message = action()
    except (InputError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    if message:
        print(message)
    return 0
