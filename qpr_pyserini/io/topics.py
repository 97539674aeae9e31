"""Topic (query) reader: BEIR / Pyserini / raw JSONL, ``qid<TAB>query`` TSV, and ``irds:`` ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpr_pyserini.io._read import (
    as_id,
    first_key,
    irds_id,
    iter_json_records,
    iter_lines,
    load_irds,
    looks_like_jsonl,
)
from qpr_pyserini.io.errors import InputError

_ID_KEYS = ("_id", "qid", "query_id", "id")
_QUERY_KEYS = ("query", "text", "title")
_TSV_HEADER_IDS = {"qid", "query-id", "query_id", "id", "_id"}


@dataclass(frozen=True)
class Topic:
    """One query with every other text field of its record (e.g. ``instruction_og``; numbers as written) in
    ``fields``.

    Hashing uses ``qid`` and ``query`` only (``fields`` is a dict); equality compares ``fields`` too.
    ``source`` and ``line`` say where the topic was read, for error messages; they are not compared.
    """

    qid: str
    query: str
    fields: dict[str, str] = field(default_factory=dict, hash=False)
    source: str = field(default="", compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)


def read_topics(source: str | Path) -> list[Topic]:
    """Read topics in file order; no topics, duplicate qids, missing ids and blank queries are InputErrors."""
    if irds_id(source) is not None:
        topics = _irds_topics(str(source))
    else:
        path = Path(source)
        topics = _jsonl_topics(path) if looks_like_jsonl(path) else _tsv_topics(path)
    if not topics:
        raise InputError(str(source), "no topics (only a header)")
    first_line: dict[str, int | None] = {}
    for topic in topics:
        if topic.qid in first_line:
            reason = f"duplicate qid {topic.qid!r} (first seen at line {first_line[topic.qid]})"
            raise InputError(topic.source, reason, topic.line)
        first_line[topic.qid] = topic.line
    return topics


def instruction_of(topic: Topic, instruction_field: str | None, default: str | None) -> str | None:
    """The instruction in ``topic.fields[instruction_field]``, or ``default`` when no field is named."""
    if instruction_field is None:
        return default
    if instruction_field not in topic.fields:
        has = ", ".join(sorted(topic.fields)) or "none"
        raise InputError(
            topic.source or "<topics>",
            f"qid {topic.qid!r} has no instruction field {instruction_field!r} (its fields: {has})",
            topic.line,
        )
    return topic.fields[instruction_field]


def _jsonl_topics(path: Path) -> list[Topic]:
    topics = []
    for line_no, record in iter_json_records(path):
        id_key = first_key(record, _ID_KEYS)
        if id_key is None:
            raise InputError(str(path), f"missing qid (expected one of {', '.join(_ID_KEYS)})", line_no)
        qid = as_id(record[id_key], "qid", path, line_no)
        query_key = first_key(record, _QUERY_KEYS)
        query = record[query_key] if query_key is not None else None
        fields = {
            k: text
            for k, v in record.items()
            if k not in (id_key, query_key) and (text := _text(v)) is not None
        }
        topics.append(_topic(qid, query, fields, str(path), line_no))
    return topics


def _text(value: Any) -> str | None:
    """A field's value as text: strings as they are, numbers (e.g. an instruction ``5``) as written; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _tsv_topics(path: Path) -> list[Topic]:
    topics = []
    for line_no, line in iter_lines(path):
        columns = line.split("\t")
        if len(columns) != 2:
            raise InputError(
                str(path), f"expected 2 tab-separated columns (qid, query), got {len(columns)}", line_no
            )
        if not topics and columns[0].strip().lower() in _TSV_HEADER_IDS:
            continue
        qid = as_id(columns[0].strip(), "qid", path, line_no)
        topics.append(_topic(qid, columns[1].strip(), {}, str(path), line_no))
    return topics


def _irds_topics(source: str) -> list[Topic]:
    """Topics of an ir_datasets dataset: ``text``, else ``title``, else ``default_text()``."""
    dataset = load_irds(source)
    if not dataset.has_queries():
        raise InputError(source, "dataset has no queries")
    topics = []
    for position, query in enumerate(dataset.queries_iter(), start=1):
        record: dict[str, Any] = query._asdict()
        query_key = first_key(record, ("text", "title"))
        text = record[query_key] if query_key is not None else query.default_text()
        fields = {k: v for k, v in record.items() if k not in ("query_id", query_key) and isinstance(v, str)}
        topics.append(_topic(as_id(query.query_id, "qid", source, position), text, fields, source, position))
    return topics


def _topic(qid: str, query: Any, fields: dict[str, str], source: str, line_no: int) -> Topic:
    """A Topic, or an InputError naming the qid when the query text is missing or blank."""
    if not isinstance(query, str) or not query.strip():
        reason = "has no query text" if query is None else f"has a blank or non-string query {query!r}"
        raise InputError(source, f"qid {qid!r} {reason}", line_no)
    return Topic(qid, query, fields, source, line_no)
