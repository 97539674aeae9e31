"""One exception type for bad input, always naming the file and, where known, the line, and the option checks
that raise it."""

from __future__ import annotations

import math


class InputError(ValueError):
    """Bad user input: the message names the file (and line) so the user can fix it.

    CLIs catch this, print ``error: <message>`` on one line and exit with status 2.
    """

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None]]:
        """Pickle by the constructor's arguments, so the error crosses process boundaries (Ray, DataLoader)."""
        return type(self), (self.path, self.reason, self.line)


def check_positive(**options: int | None) -> None:
    """Counts given as ``--option`` values (keyword names with underscores) must be at least 1; None is unset."""
    for name, value in options.items():
        if value is not None and value < 1:
            raise InputError("--" + name.replace("_", "-"), f"must be at least 1, got {value}")


def check_finite(**options: float | None) -> None:
    """Numbers given as ``--option`` values (keyword names with underscores) must be finite: NaN or infinity
    as a weight, temperature or rate trains nothing sensible. None is unset."""
    for name, value in options.items():
        if value is not None and not math.isfinite(value):
            raise InputError("--" + name.replace("_", "-"), f"must be a finite number, got {value}")
