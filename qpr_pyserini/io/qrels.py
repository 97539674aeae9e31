"""Relevance judgements: BEIR TSV (with or without header), TREC qrels, and ``irds:`` ids."""

from __future__ import annotations

from pathlib import Path

from qpr_pyserini.io._read import irds_id, iter_columns, load_irds
from qpr_pyserini.io.errors import InputError

Qrels = dict[str, dict[str, int]]

# Column layout by column count: (qid, docid, relevance) positions.
_LAYOUTS = {3: (0, 1, 2), 4: (0, 2, 3)}


def read_qrels(source: str | Path) -> Qrels:
    """Read ``{qid: {docid: relevance}}``.

    Files are split on whitespace: 3 columns are BEIR ``query-id corpus-id score`` (a header line is
    skipped), 4 columns are TREC ``qid iter docid rel``. Every line must have the first line's column count.
    A pair judged twice must carry the same relevance.
    """
    if irds_id(source) is not None:
        return _irds_qrels(str(source))
    path = Path(source)
    qrels: Qrels = {}
    widths = {3: "query-id corpus-id score", 4: "qid iter docid rel"}
    for line_no, columns in iter_columns(path, widths, "judgements"):
        q, d, r = _LAYOUTS[len(columns)]
        try:
            relevance = int(columns[r])
        except ValueError:
            raise InputError(
                str(path), f"relevance must be an integer, got {columns[r]!r}", line_no
            ) from None
        _judge(qrels, columns[q], columns[d], relevance, str(path), line_no)
    return qrels


def _irds_qrels(source: str) -> Qrels:
    dataset = load_irds(source)
    if not dataset.has_qrels():
        raise InputError(source, "dataset has no qrels")
    qrels: Qrels = {}
    for position, qrel in enumerate(dataset.qrels_iter(), start=1):
        _judge(qrels, str(qrel.query_id), str(qrel.doc_id), int(qrel.relevance), source, position)
    if not qrels:
        raise InputError(source, "dataset has no judgements")
    return qrels


def _judge(qrels: Qrels, qid: str, docid: str, relevance: int, source: str, line_no: int) -> None:
    """Record one judgement; judging a pair again with a different relevance is an InputError."""
    judged = qrels.setdefault(qid, {})
    if judged.get(docid, relevance) != relevance:
        raise InputError(
            source, f"query {qid!r} doc {docid!r} judged {judged[docid]} earlier, now {relevance}", line_no
        )
    judged[docid] = relevance
