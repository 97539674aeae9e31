"""Benchmark datasets in the layouts they are published in, read into one form for ``qpr_pyserini.benchmark``.

Layouts (each table may be JSONL[.gz], TSV with a header, parquet, a ``save_to_disk`` folder, or a folder of
parquet files as on the Hugging Face hub: ``<table>/<split>-00000-of-00001.parquet``):

- FollowIR (``jhu-clsp/{robust04,news21,core17}-instructions``; SciFact-stance): tables ``corpus``,
  ``queries`` (``instruction_og``, ``instruction_changed``), ``qrels_og``, ``qrels_changed``, optional
  ``top_ranked`` (``qid``/``pid`` or ``query-id``/``corpus-ids``).
- MTEB's copies (``mteb/Robust04InstructionRetrieval``, ...): ``corpus``, ``queries`` with ids ``<id>-og`` /
  ``<id>-changed`` (instruction in the query row or in an ``instruction`` table), ``qrels`` or ``default``
  over both kinds of ids, optional ``top_ranked``; turned into the FollowIR form.
- InstructIR (``kaist-ai/InstructIR``, ``mteb/InstructIR-mteb``): ``corpus``, ``queries`` with ids
  ``<base>_<k>`` and an ``instruction`` (a field, or an ``instruction`` / ``instructions`` table; with none,
  the query text carries it), ``qrels`` / ``default`` / ``qrels/<split>.tsv``.
- BEIR: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``; or ``irds:<id>`` (e.g. ``irds:beir/scifact/test``).

A source is a local folder, ``irds:<id>``, or a Hugging Face dataset id (loaded with ``datasets.load_dataset``,
which needs the hub or its cache).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from qpr_pyserini.io._read import HUB_ID, as_id, first_key, irds_id, iter_json_records, iter_lines
from qpr_pyserini.io.corpus import Document
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.qrels import Qrels, read_qrels
from qpr_pyserini.io.runs import atomic_output
from qpr_pyserini.io.topics import Topic, read_topics

SUITES = ("followir", "instructir", "beir")
OG, CHANGED = "instruction_og", "instruction_changed"
INSTRUCTION = "instruction"
# FollowIR's three sets by the key their dataset names contain: MTEB's name for the set, and the standard score
# FollowIR ranks it by besides p-MRR (the FollowIR paper, Table 2).
FOLLOWIR_SETS = {
    "robust04": ("Robust04", "MAP@1000"),
    "news21": ("News21", "nDCG@5"),
    "core17": ("Core17", "MAP@1000"),
}


def followir_set(dataset: str) -> str | None:
    """The FollowIR set (a key of :data:`FOLLOWIR_SETS`) whose name ``dataset`` contains, else None."""
    return next((key for key in FOLLOWIR_SETS if key in dataset.lower()), None)

_ID_KEYS = ("_id", "id", "qid", "query-id", "query_id")
_TEXT_KEYS = ("text", "query")
_QREL_QID = ("query-id", "query_id", "qid")
_QREL_DOC = ("corpus-id", "corpus_id", "docid", "doc_id", "pid")
_QREL_SCORE = ("score", "relevance", "label")
_RANKED_QID = ("qid", "query-id", "query_id")
_RANKED_DOCS = ("pid", "corpus-ids", "corpus-id", "doc_id", "docid")
_SPLIT_NAMES = ("test", "dev", "validation", "train")


@dataclass
class Benchmark:
    """A benchmark in one form: base queries, their judgements, optional per-query candidates.

    ``topics`` carry ``instruction_og`` / ``instruction_changed`` (FollowIR) or ``instruction`` (InstructIR)
    in ``fields``; ``qrels`` is ``{"og": ..., "changed": ...}`` (FollowIR) or ``{"test": ...}``;
    ``candidates`` are the ``top_ranked`` lists by base query id (None: full retrieval). ``corpus`` is what
    ``encode_corpus`` reads: a JSONL file or folder, or an ``irds:`` id.
    """

    suite: str
    name: str
    corpus: str | Path
    topics: list[Topic]
    qrels: dict[str, Qrels]
    candidates: dict[str, list[str]] | None = None
    source: str = field(default="", repr=False)


def load_benchmark(suite: str, source: str | Path, workdir: Path, split: str = "test") -> Benchmark:
    """Read ``source`` (folder, ``irds:`` id or hub id) as a ``suite`` benchmark.

    A corpus that is not JSONL already (parquet, ``save_to_disk``, hub) is written to ``workdir/corpus.jsonl``.
    """
    if suite not in SUITES:
        raise InputError("--suite", f"must be one of {', '.join(SUITES)}, not {suite!r}")
    if irds_id(source) is not None:
        if suite == "followir":
            raise InputError(str(source), "FollowIR sets are not in ir_datasets: give a folder or a hub id")
        return _irds_benchmark(suite, str(source))
    tables = Tables(source, split)
    reader = {"followir": _followir, "instructir": _instructir, "beir": _beir}[suite]
    bench = reader(tables)
    bench.corpus = tables.corpus_source(workdir)
    bench.source = str(source)
    return bench


def dataset_name(source: str | Path) -> str:
    """A short name for a source: the hub id's or folder's last part, with the parent's for split folders
    (``scifact-stance/test`` -> ``scifact-stance-test``)."""
    text = str(source).rstrip("/")
    if irds_id(text) is not None:
        return text[len("irds:") :].replace("/", "-")
    parts = Path(text).parts
    if len(parts) > 1 and parts[-1] in _SPLIT_NAMES:
        return f"{parts[-2]}-{parts[-1]}"
    return parts[-1] if parts else text


class Tables:
    """The named tables ("configs") of a dataset: a local folder's files, or a hub dataset's configs."""

    def __init__(self, source: str | Path, split: str) -> None:
        self.source = str(source)
        self.split = split
        self.folder = Path(source) if Path(source).is_dir() else None
        if self.folder is None and not HUB_ID.fullmatch(self.source):
            reason = "is not a folder" if Path(source).exists() else "no such folder"
            raise InputError(
                self.source, f"{reason} (expected a dataset folder, irds:<id> or a hub id org/name)"
            )
        self.name = dataset_name(source)

    def has(self, name: str) -> bool:
        return name in self._hub_configs if self.folder is None else self.path(name) is not None

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The rows of table ``name`` as dicts; a missing table is an InputError."""
        if self.folder is None:
            return self._hub_rows(name)
        path = self.path(name)
        if path is None:
            raise InputError(
                str(self.folder), f"has no {name!r} table ({name}.jsonl, .tsv, .parquet or {name}/)"
            )
        return list(_rows_of(path, self.split))

    def where(self, name: str) -> str:
        path = self.path(name)
        return str(path) if path is not None else f"{self.source} [{name}]"

    def corpus_source(self, workdir: Path) -> str | Path:
        """The corpus as ``encode_corpus`` reads it, written to ``workdir/corpus.jsonl`` unless already JSONL."""
        path = self.path("corpus")
        if path is not None and path.is_file() and path.name.endswith((".jsonl", ".jsonl.gz")):
            return path
        target = workdir / "corpus.jsonl"
        write_corpus(
            target, (_document(row, self.where("corpus"), n) for n, row in enumerate(self.rows("corpus"), 1))
        )
        return target

    def path(self, name: str) -> Path | None:
        """The local file or folder holding table ``name`` (None for hub datasets or an absent table)."""
        if self.folder is None:
            return None
        for candidate in (
            f"{name}.jsonl",
            f"{name}.jsonl.gz",
            f"{name}.tsv",
            f"{name}.parquet",
            name,
            f"{name}/{self.split}.tsv",  # BEIR's qrels/<split>.tsv
        ):
            path = self.folder / candidate
            if path.is_file() or (path.is_dir() and _dir_has_table(path)):
                return path
        return None

    @cached_property
    def _hub_configs(self) -> list[str]:
        from datasets import get_dataset_config_names

        try:
            return list(get_dataset_config_names(self.source))
        except Exception as exc:  # the hub's errors (offline, unknown id) are the user's to fix
            reason = f"no such local folder, and no hub dataset of that id ({exc})"
            raise InputError(self.source, " ".join(reason.split())) from None

    def _hub_rows(self, name: str) -> list[dict[str, Any]]:
        from datasets import load_dataset

        if name not in self._hub_configs:
            raise InputError(self.source, f"has no {name!r} config")
        try:
            loaded = load_dataset(self.source, name)
        except Exception as exc:
            raise InputError(self.source, f"cannot load config {name!r}: {exc}") from None
        return _pick_split(loaded, self.split, self.where(name)).to_list()


def write_corpus(path: Path, documents: Iterable[Document]) -> None:
    """Write documents as BEIR JSONL (atomically)."""
    with atomic_output(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for doc in documents:
            out.write(json.dumps({"_id": doc.docid, "title": doc.title, "text": doc.text}) + "\n")


def _dir_has_table(path: Path) -> bool:
    return (
        (path / "dataset_info.json").is_file()
        or (path / "dataset_dict.json").is_file()
        or any(path.rglob("*.parquet"))
    )


def _rows_of(path: Path, split: str) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            from datasets import load_from_disk

            yield from _pick_split(load_from_disk(str(path)), split, str(path)).to_list()
            return
        files = sorted(path.rglob("*.parquet"))
        in_split = [f for f in files if f.name.startswith(f"{split}-") or f.parent.name == split]
        for file in in_split or files:
            yield from _parquet_rows(file)
    elif path.name.endswith(".parquet"):
        yield from _parquet_rows(path)
    elif path.name.endswith(".tsv"):
        yield from _tsv_rows(path)
    else:
        for _, record in iter_json_records(path):
            yield record


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's errors for a damaged file
        raise InputError(str(path), f"cannot read parquet: {exc}") from None


def _tsv_rows(path: Path) -> Iterator[dict[str, Any]]:
    lines = [line for _, line in iter_lines(path)]
    yield from csv.DictReader(lines, delimiter="\t")


def _pick_split(loaded: Any, split: str, where: str) -> Any:
    """A Dataset from a Dataset or DatasetDict: ``split``, else its only split."""
    if not hasattr(loaded, "keys"):
        return loaded
    if split in loaded:
        return loaded[split]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise InputError(where, f"has splits {', '.join(loaded)}, none named {split!r}")


def _document(row: dict[str, Any], where: str, n: int) -> Document:
    docid = as_id(row.get(first_key(row, ("_id", "id", "docid", "doc_id")) or "_id"), "doc id", where, n)
    text, title = row.get("text"), row.get("title") or ""
    if not isinstance(text, str) or not isinstance(title, str):
        raise InputError(where, f"doc {docid!r}: 'text' and 'title' must be strings", n)
    return Document(docid, title, text)


def _queries(tables: Tables) -> list[dict[str, Any]]:
    """Query rows with ``qid``, ``text`` and every other field, instructions joined in from an
    ``instruction`` (MTEB 2's loader) or ``instructions`` table (``query-id`` and ``instruction`` or ``text``)."""
    where = tables.where("queries")
    rows = []
    for n, row in enumerate(tables.rows("queries"), start=1):
        id_key, text_key = first_key(row, _ID_KEYS), first_key(row, _TEXT_KEYS)
        if id_key is None or text_key is None:
            raise InputError(where, "query rows need an id (_id, id, ...) and a text", n)
        rest = {k: v for k, v in row.items() if k not in (id_key, text_key)}
        rows.append({**rest, "qid": as_id(row[id_key], "qid", where, n), "text": row[text_key], "line": n})
    table = next((name for name in (INSTRUCTION, "instructions") if tables.has(name)), None)
    if table is not None:
        where = tables.where(table)
        extra = {}
        for n, r in enumerate(tables.rows(table), start=1):
            id_key, text_key = first_key(r, _ID_KEYS), first_key(r, (INSTRUCTION, "text"))
            if id_key is None or text_key is None:
                raise InputError(where, "instruction rows need a query-id and an instruction (or text)", n)
            extra[as_id(r[id_key], "qid", where, n)] = r[text_key]
        for row in rows:
            row.setdefault(INSTRUCTION, extra.get(row["qid"]))
    return rows


def _topic(row: dict[str, Any], where: str, qid: str | None = None, **fields: Any) -> Topic:
    text = {k: v for k, v in row.items() if isinstance(v, str) and k not in ("qid", "text")}
    text.update({k: v for k, v in fields.items() if v is not None})
    if not isinstance(row["text"], str) or not row["text"].strip():
        raise InputError(where, f"qid {row['qid']!r} has a blank or non-string query", row["line"])
    return Topic(qid or row["qid"], row["text"], text, where, row["line"])


def _qrels(tables: Tables, name: str) -> Qrels:
    if tables.folder is not None:
        path = tables.path(name)
        if (
            path is not None
            and path.is_file()
            and not path.name.endswith((".parquet", ".jsonl", ".jsonl.gz"))
        ):
            return read_qrels(path)
    where = tables.where(name)
    qrels: Qrels = {}
    for n, row in enumerate(tables.rows(name), start=1):
        keys = first_key(row, _QREL_QID), first_key(row, _QREL_DOC), first_key(row, _QREL_SCORE)
        if None in keys:
            raise InputError(where, "qrels rows need query-id, corpus-id and score", n)
        qid, doc = as_id(row[keys[0]], "qid", where, n), as_id(row[keys[1]], "doc id", where, n)
        qrels.setdefault(qid, {})[doc] = int(row[keys[2]])
    if not qrels:
        raise InputError(where, "no judgements")
    return qrels


def _top_ranked(tables: Tables) -> dict[str, list[str]] | None:
    if not tables.has("top_ranked"):
        return None
    where = tables.where("top_ranked")
    ranked: dict[str, list[str]] = {}
    for n, row in enumerate(tables.rows("top_ranked"), start=1):
        qid_key, docs_key = first_key(row, _RANKED_QID), first_key(row, _RANKED_DOCS)
        if qid_key is None or docs_key is None:
            raise InputError(where, "top_ranked rows need a qid and doc ids (pid or corpus-ids)", n)
        docs = row[docs_key] if isinstance(row[docs_key], list) else [row[docs_key]]
        listed = ranked.setdefault(as_id(row[qid_key], "qid", where, n), [])
        listed.extend(d for d in (as_id(doc, "doc id", where, n) for doc in docs) if d not in listed)
    return ranked


def _followir(tables: Tables) -> Benchmark:
    if tables.has("qrels_og"):
        where = tables.where("queries")
        topics = [_topic(row, where) for row in _queries(tables)]
        qrels = {"og": _qrels(tables, "qrels_og"), "changed": _qrels(tables, "qrels_changed")}
        for topic in topics:
            for name in (OG, CHANGED):
                if name not in topic.fields:
                    raise InputError(where, f"qid {topic.qid!r} has no {name!r}", topic.line)
        return Benchmark("followir", tables.name, "", topics, qrels, _top_ranked(tables))
    return _followir_from_mteb(tables)


def _split_kind(qid: str) -> tuple[str, str] | None:
    for kind in ("og", "changed"):
        if qid.endswith(f"-{kind}"):
            return qid[: -len(kind) - 1], kind
    return None


def _followir_from_mteb(tables: Tables) -> Benchmark:
    """MTEB's copy: ``<id>-og`` / ``<id>-changed`` queries and qrels, folded into one topic per base id."""
    where = tables.where("queries")
    rows = _queries(tables)
    by_base: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        kind = _split_kind(row["qid"])
        if kind is None:
            raise InputError(
                where,
                f"qid {row['qid']!r}: a FollowIR set needs qrels_og/qrels_changed tables, or MTEB's "
                "<id>-og / <id>-changed query ids",
                row["line"],
            )
        by_base.setdefault(kind[0], {})[kind[1]] = row
    topics = []
    for base, kinds in by_base.items():
        if set(kinds) != {"og", "changed"}:
            raise InputError(where, f"query {base!r} lacks its -og or -changed row")
        topics.append(
            _topic(
                kinds["og"],
                where,
                base,
                **{OG: kinds["og"].get(INSTRUCTION), CHANGED: kinds["changed"].get(INSTRUCTION)},
            )
        )
    qrels: dict[str, Qrels] = {"og": {}, "changed": {}}
    name = "qrels" if tables.has("qrels") else "default"
    for qid, docs in _qrels(tables, name).items():
        kind = _split_kind(qid)
        if kind is not None:
            qrels[kind[1]][kind[0]] = docs
    ranked = _top_ranked(tables)
    candidates = None
    if ranked is not None:
        candidates = {}
        for qid, docs in ranked.items():  # og's list first, then any doc only the changed list has
            kind = _split_kind(qid)
            base = kind[0] if kind else qid
            listed = candidates.setdefault(base, [])
            listed.extend(d for d in docs if d not in listed)
    return Benchmark("followir", tables.name, "", topics, qrels, candidates)


def _instructir(tables: Tables) -> Benchmark:
    where = tables.where("queries")
    topics = [_topic(row, where) for row in _queries(tables)]
    with_instruction = [INSTRUCTION in topic.fields for topic in topics]
    if any(with_instruction) and not all(with_instruction):  # none: the query texts carry them already
        topic = topics[with_instruction.index(False)]
        raise InputError(where, f"qid {topic.qid!r} has no 'instruction' while others have one", topic.line)
    name = next((n for n in ("qrels", "default") if tables.has(n)), "qrels")
    return Benchmark("instructir", tables.name, "", topics, {"test": _qrels(tables, name)}, None)


def _beir(tables: Tables) -> Benchmark:
    path = tables.path("queries")
    if path is not None and path.name.endswith((".jsonl", ".jsonl.gz", ".tsv")):
        topics = read_topics(path)  # BEIR / Pyserini JSONL or TSV: the topic reader's own
    else:
        topics = [_topic(row, tables.where("queries")) for row in _queries(tables)]
    name = next((n for n in ("qrels", "default") if tables.has(n)), "qrels")
    qrels = _qrels(tables, name)
    judged = [t for t in topics if t.qid in qrels]
    if not judged:
        raise InputError(tables.where(name), "judges none of the queries")
    return Benchmark("beir", tables.name, "", judged, {"test": qrels}, None)


def _irds_benchmark(suite: str, source: str) -> Benchmark:
    qrels = read_qrels(source)
    topics = [t for t in read_topics(source) if t.qid in qrels]
    return Benchmark(suite, dataset_name(source), source, topics, {"test": qrels}, None, source)
