"""Per-query candidates for rerank mode: FollowIR ``top_ranked`` JSONL, ``qid docid`` TSV, TREC runs."""

from __future__ import annotations

from pathlib import Path

from qpr_pyserini.io._read import as_id, first_key, iter_columns, iter_json_records, looks_like_jsonl
from qpr_pyserini.io.errors import InputError

_QID_KEYS = ("qid", "query-id", "query_id")
_DOC_KEYS = ("pid", "corpus-id", "corpus-ids", "doc_id")


def read_candidates(source: str | Path) -> dict[str, list[str]]:
    """Read ``{qid: [docid, ...]}`` in first-seen order, dropping repeated (qid, docid) pairs.

    JSONL rows hold one qid and a doc id or a list of them; otherwise lines are split on whitespace and
    must all have 2 columns (``qid docid``, optional header) or all 6 (a TREC run, kept in file order).
    """
    path = Path(source)
    pairs = _jsonl_pairs(path) if looks_like_jsonl(path) else _column_pairs(path)
    candidates: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for qid, docid in pairs:
        docs = candidates.setdefault(qid, [])
        if (qid, docid) not in seen:
            seen.add((qid, docid))
            docs.append(docid)
    return candidates


def _jsonl_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for line_no, record in iter_json_records(path):
        qid_key, doc_key = first_key(record, _QID_KEYS), first_key(record, _DOC_KEYS)
        if qid_key is None or doc_key is None:
            raise InputError(
                str(path),
                f"expected a qid ({', '.join(_QID_KEYS)}) and doc ids ({', '.join(_DOC_KEYS)})",
                line_no,
            )
        qid = as_id(record[qid_key], "qid", path, line_no)
        docs = record[doc_key] if isinstance(record[doc_key], list) else [record[doc_key]]
        pairs.extend((qid, as_id(doc, "doc id", path, line_no)) for doc in docs)
    return pairs


def _column_pairs(path: Path) -> list[tuple[str, str]]:
    return [
        (columns[0], columns[1 if len(columns) == 2 else 2])
        for _, columns in iter_columns(path, {2: "qid docid", 6: "a TREC run"}, "candidates")
    ]
