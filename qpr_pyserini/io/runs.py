"""TREC run files (``qid Q0 docid rank score tag``) and atomic file output."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from qpr_pyserini.io._read import iter_lines
from qpr_pyserini.io.errors import InputError

Run = dict[str, dict[str, float]]

_TOKEN = re.compile(r"\S+")


def read_run(source: str | Path) -> Run:
    """Read ``{qid: {docid: score}}`` from a TREC run; a (qid, docid) pair may occur only once."""
    path = Path(source)
    run: Run = {}
    for line_no, line in iter_lines(path):
        columns = line.split()
        if len(columns) != 6:
            raise InputError(
                str(path), f"expected 6 columns (qid Q0 docid rank score tag), got {len(columns)}", line_no
            )
        qid, _, docid, rank, score, _ = columns
        try:
            int(rank)
            value = float(score)
        except ValueError:
            raise InputError(
                str(path), f"rank must be an integer and score a number, got {rank!r} and {score!r}", line_no
            ) from None
        if not math.isfinite(value):
            raise InputError(str(path), f"score must be a finite number, got {score!r}", line_no)
        hits = run.setdefault(qid, {})
        if docid in hits:
            raise InputError(str(path), f"duplicate result for query {qid!r} doc {docid!r}", line_no)
        hits[docid] = value
    return run


def write_run(
    path: str | Path, results: Iterable[tuple[str, Sequence[tuple[str, float]]]], tag: str = "qpr"
) -> int:
    """Write ``(qid, [(docid, score), ...])`` results in Pyserini's TREC format; returns the line count.

    Hits are written in the order given (ranks from 1). The file appears at ``path`` only once complete.
    """
    check_token(tag, "tag")
    count = 0
    with atomic_output(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for qid, hits in results:
            check_token(qid, "qid")
            for rank, (docid, score) in enumerate(hits, start=1):
                check_token(docid, "docid")
                out.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
                count += 1
    return count


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write a file to; it replaces ``path`` only on success.

    Parent folders are created. If the block raises, the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    check_file_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_file_path(path: str | Path, option: str | None = None) -> None:
    """An InputError unless a file can be written at ``path``: not a folder, and its nearest existing folder
    writable (checked before work whose result goes there). ``option`` names the option in the message."""
    target = Path(path)
    named = f" ({option})" if option else ""
    if target.is_dir():
        raise InputError(str(target), f"is a folder; expected a file path{named}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(str(target), f"cannot be written: {folder} is not a folder{named}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(str(target), f"cannot be written: no permission to write in {folder}{named}")


def check_token(value: str, what: str) -> None:
    """Reject values that would break the whitespace-separated columns of a run file."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise InputError(what, f"must be non-empty and free of whitespace, got {value!r}")
