"""Streaming corpus reader: BEIR / Pyserini JSONL (optionally gzipped), folders of them, and ``irds:`` ids.

One way down: a source is resolved once, into its files or its ``irds:`` id; the low-level readers of
``_read`` (which never call back up here) turn those into numbered JSON records; this module makes each
record a Document and checks ids are unique.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qpr_pyserini.io._read import (
    as_id,
    count_nonblank_lines,
    first_key,
    irds_id,
    iter_json_records,
    load_irds,
)
from qpr_pyserini.io.errors import InputError

_ID_KEYS = ("_id", "id", "docid")
_TEXT_KEYS = ("text", "contents")
_FILE_PATTERNS = ("*.jsonl", "*.jsonl.gz")
_BEIR_CORPUS = ("corpus.jsonl", "corpus.jsonl.gz")


@dataclass(frozen=True)
class Document:
    """One corpus document; ``title`` is empty when the source has none."""

    docid: str
    title: str
    text: str

    def joined(self, sep: str = " ") -> str:
        """Title and text as one string (the BEIR / MTEB convention), or just the text without a title."""
        return f"{self.title}{sep}{self.text}" if self.title else self.text


class CorpusFingerprint:
    """A content fingerprint of documents in order: SHA-256 over each one's id, title and text.

    Two sources with the same fingerprint hold the same documents in the same order, whatever their paths,
    formats or compression; an index records the fingerprint of what it encoded.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, document: Document) -> None:
        for part in (document.docid, document.title, document.text):
            data = part.encode("utf-8")
            self._digest.update(len(data).to_bytes(8, "little") + data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def corpus_fingerprint(source: str | Path, shard_id: int = 0, shard_num: int = 1) -> str:
    """The :class:`CorpusFingerprint` of shard ``shard_id`` of ``shard_num`` of a corpus (all of it by default)."""
    fingerprint = CorpusFingerprint()
    for document in iter_corpus_shard(source, shard_id, shard_num):
        fingerprint.add(document)
    return fingerprint.hexdigest()


def iter_corpus(source: str | Path) -> Iterator[Document]:
    """Stream the documents of a corpus file, a folder of ``*.jsonl[.gz]`` files (of a BEIR dataset folder:
    its ``corpus.jsonl[.gz]`` only), or ``irds:<dataset-id>``.

    Only the set of ids seen so far is kept, to reject duplicate doc ids.
    """
    yield from _unique_documents(_resolve(source))


def count_documents(source: str | Path) -> int | None:
    """A cheap document count for progress bars: non-blank lines of the files, or the irds count if known."""
    return _count(_resolve(source))


def iter_corpus_shard(source: str | Path, shard_id: int, shard_num: int) -> Iterator[Document]:
    """Documents of shard ``shard_id`` (see :func:`shard_rows`); an InputError if that shard would be empty.

    The same split as Pyserini's encoder (``JsonlCollectionIterator``), so shards line up with Pyserini's.
    Concatenating shards ``0 .. shard_num - 1`` gives the whole corpus in order.
    """
    if shard_num < 1 or not 0 <= shard_id < shard_num:
        raise InputError(
            "--shard-num" if shard_num < 1 else "--shard-id",
            f"need 0 <= shard_id < shard_num, got shard_id={shard_id}, shard_num={shard_num}",
        )
    resolved = _resolve(source)
    total = _count(resolved)
    if total is None:
        total = sum(1 for _ in _unique_documents(resolved))
    if total == 0:
        raise InputError(str(source), "no documents")
    rows = shard_rows(total, shard_id, shard_num)
    if not rows:
        raise InputError(
            "--shard-num",
            f"shard {shard_id} of {shard_num} would hold no documents "
            f"(the corpus has {total}; use at most {total} shards)",
        )
    return itertools.islice(_unique_documents(resolved), rows.start, rows.stop)


def shard_rows(total: int, shard_id: int, shard_num: int) -> range:
    """Rows of shard ``shard_id`` of ``total`` documents: blocks of ``total // shard_num``, the last the rest."""
    size = total // shard_num
    return range(shard_id * size, total if shard_id == shard_num - 1 else (shard_id + 1) * size)


def _resolve(source: str | Path) -> str | list[Path]:
    """An ``irds:`` source as it is, else the corpus files that ``source`` names."""
    return str(source) if irds_id(source) is not None else _corpus_files(Path(source))


def _count(resolved: str | list[Path]) -> int | None:
    if isinstance(resolved, str):
        return load_irds(resolved).docs_count()
    return sum(count_nonblank_lines(path) for path in resolved)


def _unique_documents(resolved: str | list[Path]) -> Iterator[Document]:
    seen: set[str] = set()
    for where, line_no, doc in _located_documents(resolved):
        if doc.docid in seen:
            first = _first_seen(resolved, doc.docid, where)
            raise InputError(where, f"duplicate doc id {doc.docid!r} (first seen at {first})", line_no)
        seen.add(doc.docid)
        yield doc


def _located_documents(resolved: str | list[Path]) -> Iterator[tuple[str, int, Document]]:
    """Yield ``(file, line_number, document)``; for irds sources: the source and the document's position."""
    if isinstance(resolved, str):
        yield from _irds_documents(resolved)
        return
    for path in resolved:
        for line_no, record in iter_json_records(path):
            yield str(path), line_no, _document(record, path, line_no)


def _first_seen(resolved: str | list[Path], docid: str, where: str) -> str:
    """Where ``docid`` first occurs, found by a second pass so the first pass keeps only a set of ids."""
    for first_where, first_line, doc in _located_documents(resolved):
        if doc.docid == docid:
            return f"line {first_line}" if first_where == where else f"{first_where}:{first_line}"
    raise AssertionError(f"{docid!r} was seen but cannot be found again")


def _corpus_files(path: Path) -> list[Path]:
    """The file itself; for a folder: its ``corpus.jsonl[.gz]`` if it has one (a BEIR dataset, whose other
    files are queries), else its sorted ``*.jsonl`` / ``*.jsonl.gz`` files (not recursive)."""
    if path.is_dir():
        beir = [path / name for name in _BEIR_CORPUS if (path / name).is_file()]
        if beir:
            return beir
        files = sorted({file for pattern in _FILE_PATTERNS for file in path.glob(pattern) if file.is_file()})
        if not files:
            raise InputError(str(path), "folder has no *.jsonl or *.jsonl.gz files")
        return files
    if not path.exists():
        raise InputError(str(path), "no such file or folder")
    return [path]


def _document(record: dict[str, Any], path: Path, line_no: int) -> Document:
    """A Document from a BEIR (``_id``, ``title``, ``text``) or Pyserini (``id``, ``contents``) record."""
    id_key = first_key(record, _ID_KEYS)
    if id_key is None:
        raise InputError(str(path), "missing doc id (expected one of '_id', 'id', 'docid')", line_no)
    docid = as_id(record[id_key], "doc id", path, line_no)
    text_key = first_key(record, _TEXT_KEYS)
    if text_key is None:
        raise InputError(str(path), f"doc {docid!r} has no text (expected 'text' or 'contents')", line_no)
    text, title = record[text_key], record.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise InputError(str(path), f"doc {docid!r}: {text_key!r} and 'title' must be strings", line_no)
    return Document(docid, title, text)


def _irds_documents(source: str) -> Iterator[tuple[str, int, Document]]:
    """Documents of an ir_datasets dataset: ``text``, else ``body``, else ``default_text()``.

    ``default_text()`` already includes the title, so the title is left empty in that case.
    """
    dataset = load_irds(source)
    if not dataset.has_docs():
        raise InputError(source, "dataset has no documents")
    for position, doc in enumerate(dataset.docs_iter(), start=1):
        text_field = first_key(doc._asdict(), ("text", "body"))
        if text_field is None:
            title, text = "", doc.default_text()
        else:
            title, text = getattr(doc, "title", None) or "", getattr(doc, text_field)
        yield source, position, Document(as_id(doc.doc_id, "doc id", source, position), str(title), str(text))
