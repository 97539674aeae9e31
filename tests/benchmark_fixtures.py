"""Hand-made benchmark sets in each published layout, small enough to work the scores out by hand.

The trick that makes runs predictable with a random-weight encoder: a document whose text is exactly the
encoded query text ("{query} {instruction}", the ``concat`` template) has cosine 1 with it, so it ranks first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = [
    {"_id": "dA", "title": "", "text": "apple pie red"},
    {"_id": "dB", "title": "", "text": "apple pie green"},
    {"_id": "dC", "title": "", "text": "kiwi tart"},
    {"_id": "dD", "title": "", "text": "plum jam"},
    {"_id": "dE", "title": "", "text": "fig roll yellow"},
]
# FollowIR: q1 "apple pie": og instruction "red" (dA first), changed "green" (dB first); dA relevant under og
# only. q2 "fig roll": og "yellow" (dE first), changed "blue"; dD relevant under both (no change), so in rerank
# mode (two candidates each) the og run has dA at 1 for q1 and dD at 2 for q2.
QUERIES = [
    {"_id": "q1", "text": "apple pie", "instruction_og": "red", "instruction_changed": "green"},
    {"_id": "q2", "text": "fig roll", "instruction_og": "yellow", "instruction_changed": "blue"},
]
QRELS_OG = [("q1", "dA", 1), ("q1", "dB", 0), ("q2", "dD", 1), ("q2", "dE", 0)]
QRELS_CHANGED = [("q1", "dA", 0), ("q1", "dB", 0), ("q2", "dD", 1), ("q2", "dE", 0)]
TOP_RANKED = {"q1": ["dA", "dB"], "q2": ["dE", "dD"]}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_qrels_tsv(path: Path, qrels: list[tuple[str, str, int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
    return path


def _qrel_rows(qrels: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    return [{"query-id": q, "corpus-id": d, "score": s} for q, d, s in qrels]


def followir_tables() -> dict[str, list[dict[str, Any]]]:
    return {
        "corpus": CORPUS,
        "queries": QUERIES,
        "qrels_og": _qrel_rows(QRELS_OG),
        "qrels_changed": _qrel_rows(QRELS_CHANGED),
        "top_ranked": [{"qid": q, "pid": docs} for q, docs in TOP_RANKED.items()],
    }


def write_tables(folder: Path, tables: dict[str, list[dict[str, Any]]], layout: str) -> Path:
    """Each table as ``<name>.jsonl``, ``<name>.parquet``, a ``save_to_disk`` folder, or the hub's
    ``<name>/test-00000-of-00001.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        if layout == "jsonl":
            write_jsonl(folder / f"{name}.jsonl", rows)
        elif layout == "parquet":
            pq.write_table(pa.Table.from_pylist(rows), folder / f"{name}.parquet")
        elif layout == "hub":
            (folder / name).mkdir()
            pq.write_table(pa.Table.from_pylist(rows), folder / name / "test-00000-of-00001.parquet")
        elif layout == "save_to_disk":
            from datasets import Dataset

            Dataset.from_list(rows).save_to_disk(str(folder / name))
        else:
            raise AssertionError(layout)
    return folder


def write_followir(folder: Path, layout: str = "jsonl", top_ranked: bool = True) -> Path:
    tables = followir_tables()
    if not top_ranked:
        del tables["top_ranked"]
    if layout == "tsv":  # SciFact-stance's own layout: JSONL corpus and queries, TSV qrels
        write_jsonl(folder / "corpus.jsonl", CORPUS)
        write_jsonl(folder / "queries.jsonl", QUERIES)
        write_qrels_tsv(folder / "qrels_og.tsv", QRELS_OG)
        write_qrels_tsv(folder / "qrels_changed.tsv", QRELS_CHANGED)
        if top_ranked:
            write_jsonl(folder / "top_ranked.jsonl", tables["top_ranked"])
        return folder
    return write_tables(folder, tables, layout)


def write_mteb_followir(folder: Path, layout: str = "jsonl") -> Path:
    """MTEB's copy: ``<id>-og`` / ``<id>-changed`` queries, instructions in their own table, one qrels table."""
    queries, instructions, qrels, ranked = [], [], [], []
    for query in QUERIES:
        for kind in ("og", "changed"):
            qid = f"{query['_id']}-{kind}"
            queries.append({"_id": qid, "text": query["text"]})
            instructions.append({"query-id": qid, "instruction": query[f"instruction_{kind}"]})
            ranked.append({"query-id": qid, "corpus-ids": TOP_RANKED[query["_id"]]})
    qrels += [{"query-id": f"{q}-og", "corpus-id": d, "score": s} for q, d, s in QRELS_OG]
    qrels += [{"query-id": f"{q}-changed", "corpus-id": d, "score": s} for q, d, s in QRELS_CHANGED]
    tables = {"corpus": CORPUS, "queries": queries, "instruction": instructions, "default": qrels}
    return write_tables(folder, {**tables, "top_ranked": ranked}, layout)


# InstructIR: base "a" has two instances: a_1 ("red": dA first, dA relevant -> nDCG@10 1) and a_2 (relevant doc
# dZ is not in the corpus -> 0); base "b" one instance b_1 ("yellow": dE first and relevant -> 1).
INSTRUCTIR_QUERIES = [
    {"_id": "a_1", "text": "apple pie", "instruction": "red"},
    {"_id": "a_2", "text": "apple pie", "instruction": "green"},
    {"_id": "b_1", "text": "fig roll", "instruction": "yellow"},
]
INSTRUCTIR_QRELS = [("a_1", "dA", 1), ("a_2", "dZ", 1), ("b_1", "dE", 1)]


def write_instructir(folder: Path, layout: str = "jsonl") -> Path:
    tables = {"corpus": CORPUS, "queries": INSTRUCTIR_QUERIES, "qrels": _qrel_rows(INSTRUCTIR_QRELS)}
    return write_tables(folder, tables, layout)


# BEIR: "apple pie red" finds dA (relevant: nDCG@10 1); "plum jam" judges only dY, absent (0); q9 is unjudged.
BEIR_QUERIES = [
    {"_id": "q1", "text": "apple pie red"},
    {"_id": "q2", "text": "plum jam"},
    {"_id": "q9", "text": "kiwi"},
]
BEIR_QRELS = [("q1", "dA", 1), ("q2", "dY", 1)]


def write_beir(folder: Path) -> Path:
    write_jsonl(folder / "corpus.jsonl", CORPUS)
    write_jsonl(folder / "queries.jsonl", BEIR_QUERIES)
    write_qrels_tsv(folder / "qrels" / "test.tsv", BEIR_QRELS)
    return folder
