"""Shared low-level reading: numbered lines of plain or gzipped text, JSONL records, ``irds:`` sources."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from qpr_pyserini.io.errors import InputError

IRDS_PREFIX = "irds:"
_WHITESPACE = re.compile(r"\s")
# A Hugging Face hub repository id, "owner/name" (models, benchmark datasets, MTEB model names).
HUB_ID = re.compile(r"[A-Za-z0-9][\w-]*/[\w.-]+")
# A hub dataset id as ``datasets.load_dataset`` takes it: "owner/name", or a canonical "name" alone.
HUB_DATASET_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
# First-column names that mark a header line in qrels and candidate files.
QID_HEADERS = frozenset({"qid", "query-id", "query_id"})


def irds_id(source: str | Path) -> str | None:
    """The dataset id of an ``irds:<id>`` source, or None for a path."""
    text = str(source)
    return text[len(IRDS_PREFIX) :] if text.startswith(IRDS_PREFIX) else None


def load_irds(source: str) -> Any:
    """``ir_datasets.load`` for an ``irds:<id>`` source; an unknown id is an InputError."""
    import ir_datasets  # imported lazily: it is slow to import and only irds: sources need it

    try:
        return ir_datasets.load(source[len(IRDS_PREFIX) :])
    except KeyError as exc:
        raise InputError(source, f"unknown ir_datasets id ({exc})") from None


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing ``*.gz``; a missing file is an InputError."""
    try:
        return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
    except FileNotFoundError:
        raise InputError(str(path), "no such file") from None
    except IsADirectoryError:
        raise InputError(str(path), "is a directory, expected a file") from None


def count_nonblank_lines(path: Path) -> int:
    """Non-blank lines of a plain or gzipped file, read as bytes (no decoding: this is only a count)."""
    with open_binary(path) as handle:
        try:
            return sum(1 for line in handle if line.strip())
        except (OSError, EOFError) as exc:  # corrupt or truncated gzip stream
            raise InputError(str(path), f"cannot read: {exc}") from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for the non-blank lines of a UTF-8 file, line endings stripped.

    Lines are decoded one by one (not by a text wrapper, which decodes in chunks) so that an undecodable
    byte is reported at its own line. Raises InputError for that, for a corrupt gzip stream and, once the
    file is exhausted, for a file with no non-blank line.
    """
    line_no = 0
    found = False
    with open_binary(path) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(str(path), f"not UTF-8 text ({exc.reason})", line_no) from None
                if line.strip():
                    found = True
                    yield line_no, line.rstrip("\r\n")
        except (OSError, EOFError) as exc:  # corrupt or truncated gzip stream
            raise InputError(str(path), f"cannot read: {exc}", line_no + 1) from None
    if not found:
        raise InputError(str(path), "empty file")


def iter_columns(path: Path, widths: Mapping[int, str], what: str) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, columns)`` of a whitespace-separated file, every line as wide as the first.

    A first line whose first column is a qid name (:data:`QID_HEADERS`) is a header and skipped. ``widths``
    maps each allowed column count to what it means ("qid docid"), for the error a wrong first line gets.
    A file with nothing but a header is an InputError: it has no ``what``.
    """
    width = None
    for line_no, line in iter_lines(path):
        columns = line.split()
        if width is None:
            if columns[0].lower() in QID_HEADERS:
                continue
            width = len(columns)
            if width not in widths:
                allowed = " or ".join(f"{n} ({meaning})" for n, meaning in widths.items())
                raise InputError(str(path), f"expected {allowed} columns, got {width}", line_no)
        if len(columns) != width:
            raise InputError(
                str(path), f"expected {width} columns like the first line, got {len(columns)}", line_no
            )
        yield line_no, columns
    if width is None:
        raise InputError(str(path), f"no {what} (only a header)")


def looks_like_jsonl(path: Path) -> bool:
    """Whether the first non-blank line of a file starts a JSON object (else: whitespace-separated)."""
    lines = iter_lines(path)
    try:
        _, line = next(lines)
    finally:
        lines.close()
    return line.lstrip().startswith("{")


def iter_json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each JSON object of a JSONL file (blank lines skipped)."""
    for line_no, line in iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                str(path), f"malformed JSON ({exc.msg} at column {exc.colno})", line_no
            ) from None
        if not isinstance(record, dict):
            raise InputError(str(path), f"expected a JSON object, got {type(record).__name__}", line_no)
        yield line_no, record


def read_json_file(path: Path) -> Any:
    """The JSON value in a whole file (configurations, records); bad JSON or bad UTF-8 is an InputError naming
    the file (and the line)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(str(path), f"not valid JSON ({err.msg})", err.lineno) from None
    except UnicodeDecodeError as err:
        raise InputError(str(path), f"not UTF-8 text ({err.reason})") from None


def first_key(record: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """The first of ``keys`` present (and not null) in ``record``, or None."""
    return next((key for key in keys if record.get(key) is not None), None)


def as_id(value: Any, what: str, path: Path | str, line_no: int) -> str:
    """A string id from a JSON value (ints are converted), else an InputError.

    Ids must be non-empty and free of whitespace, since TREC runs and qrels separate columns by whitespace.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value and not _WHITESPACE.search(value):
        return value
    raise InputError(
        str(path), f"{what} must be a non-empty string without whitespace, got {value!r}", line_no
    )
