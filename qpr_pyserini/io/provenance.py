"""Where a results file comes from: the commit, whether the tree had changes, the command and the time."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def provenance(root: str | Path, argv: list[str] | None = None) -> dict[str, Any]:
    """``commit`` (HEAD of the checkout at ``root``, None outside git), ``dirty`` (uncommitted changes to
    tracked files), ``command`` (the script and its arguments, as typed) and ``time`` (UTC, ISO 8601)."""
    root = Path(root)
    argv = sys.argv if argv is None else argv
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": _git(root, "rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "command": shlex.join([Path(sys.executable).name, *argv]),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
