"""Search as a service: each index and its query encoder loaded once, queries micro-batched, answers in the
shape of Anserini's v1 API. The REST routes and the MCP tools both call this, so they answer alike.

A served query is searched as ``python -m qpr_pyserini.search`` searches it: the same encoder (the one the
index records unless another is named, refused if its passage side differs), the same template and query
formatting, the same ``embed`` and faiss calls (shards: the same exact merge), scores rounded to the 6
decimals that the TREC run prints (as Pyserini's server rounds them). Only the company a query is padded in
differs, which moves a score by float rounding at most.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qpr_pyserini.index import DenseIndex, set_search_parameters
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model import DenseEncoder
from qpr_pyserini.search import check_compatible, query_encoder_for, retrieve
from qpr_pyserini.search.shards import Hits, ShardedIndex, index_folders, open_index
from qpr_pyserini.serve.batching import MicroBatcher, length_passes
from qpr_pyserini.serve.documents import Documents
from qpr_pyserini.serve.errors import ApiError
from qpr_pyserini.serve.settings import IndexSpec, Limits

log = logging.getLogger(__name__)

SCORE_DECIMALS = 6
# A character that is not white space, spelled so that Python's re and JSON Schema's (ECMA-262) regular
# expressions read it alike: the OpenAPI document's "pattern" of a query is exactly what the server accepts.
_SPACE = r"\t\n\v\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK = f"[^{_SPACE}]"


@dataclass(frozen=True)
class QueryItem:
    """One query with its optional instruction (blank: none, as the templates treat it)."""

    query: str
    instruction: str | None = None


class ResidentShards(ShardedIndex):
    """Shards searched as one index (exactly as search does), each loaded once and kept for every request."""

    def __init__(self, folders: Sequence[Path], **options: Any) -> None:
        super().__init__(folders, **options)
        self.shards = [super(ResidentShards, self).load(n) for n in range(len(self.folders))]

    def load(self, number: int) -> DenseIndex:
        return self.shards[number]


class ServedIndex:
    """A loaded index with its query encoder, micro-batcher and (optional) documents."""

    def __init__(
        self,
        name: str,
        searchable: DenseIndex | ResidentShards,
        model: DenseEncoder,
        batcher: MicroBatcher,
        documents: Documents | None,
        batch_size: int,
    ) -> None:
        self.name = name
        self.searchable = searchable
        self.model = model
        self.batcher = batcher
        self.documents = documents
        self.batch_size = batch_size

    def search(self, vectors: np.ndarray, hits: int) -> list[Hits]:
        """Top ``hits`` for each query vector, by the calls ``qpr_pyserini.search`` makes."""
        if isinstance(self.searchable, DenseIndex):
            return retrieve(self.searchable, vectors, hits)
        return self.searchable.search(vectors, hits, self.batch_size)

    def contains(self, docid: str) -> bool:
        return docid in self.documents if self.documents is not None else self.searchable.contains(docid)

    def candidates(self, hits: Hits, parse: bool, max_doc_length: int | None) -> list[dict[str, Any]]:
        return [
            {
                "docid": docid,
                "score": round(score, SCORE_DECIMALS),
                "rank": rank,
                "doc": None
                if self.documents is None
                else self.documents.payload(docid, parse=parse, max_length=max_doc_length),
            }
            for rank, (docid, score) in enumerate(hits, start=1)
        ]

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        if isinstance(self.searchable, DenseIndex):
            documents, shards = int(self.searchable.faiss_index.ntotal), 1
            kind = type(faiss.downcast_index(self.searchable.faiss_index)).__name__
        else:
            shards = len(self.searchable.shards)
            documents = sum(int(s.faiss_index.ntotal) for s in self.searchable.shards)
            kind = type(faiss.downcast_index(self.searchable.shards[0].faiss_index)).__name__
        return {
            "name": self.name,
            "documents": documents,
            "dimension": self.searchable.dimension,
            "faiss_index": kind,
            "shards": shards,
            "encoder": config.name or config.model,
            "template": config.template,
            "corpus": self.documents is not None,
        }


class SearchService:
    """The served indexes by name, with the request checks and limits both surfaces share."""

    def __init__(self, indexes: dict[str, ServedIndex], limits: Limits) -> None:
        self.indexes = indexes
        self.limits = limits
        self._in_flight = 0

    def index(self, name: str) -> ServedIndex:
        served = self.indexes.get(name)
        if served is None:
            raise ApiError(404, f"Index not found: {name} (served: {', '.join(self.indexes)})")
        return served

    def check_hits(self, hits: int) -> None:
        if hits < 1:
            raise ApiError(400, "Parameter 'hits' must be positive")
        if hits > self.limits.hits:
            raise ApiError(400, f"Parameter 'hits' must be at most {self.limits.hits}")

    def check_query(self, item: QueryItem, where: str = "") -> None:
        if not re.search(NOT_BLANK, item.query):
            raise ApiError(400, f"Parameter '{where}query' is required")
        for name, value, limit in (
            ("query", item.query, self.limits.query_chars),
            ("instruction", item.instruction, self.limits.instruction_chars),
        ):
            if value is not None and len(value) > limit:
                raise ApiError(400, f"Parameter '{where}{name}' is longer than {limit} characters")
            if value is not None and not value.isascii() and not _encodable(value):
                raise ApiError(400, f"Parameter '{where}{name}' is not valid Unicode (a lone surrogate)")

    async def search(
        self,
        name: str,
        items: Sequence[QueryItem],
        hits: int,
        *,
        parse: bool = True,
        max_doc_length: int | None = None,
    ) -> list[dict[str, Any]]:
        """``{"query": ..., "candidates": [...]}`` for each item, in order (checked first: ApiError)."""
        served = self.index(name)
        self.check_hits(hits)
        if len(items) > self.limits.batch_queries:
            raise ApiError(400, f"at most {self.limits.batch_queries} queries per request, got {len(items)}")
        for number, item in enumerate(items):
            self.check_query(item, f"queries[{number}]." if len(items) > 1 else "")
        with self._admitted(len(items)):
            ranked = await asyncio.gather(
                *(served.batcher.submit(i.query, i.instruction, (served, hits)) for i in items)
            )
        return [
            {
                "query": {"text": item.query, "instruction": item.instruction},
                "candidates": served.candidates(found, parse, max_doc_length),
            }
            for item, found in zip(items, ranked, strict=True)
        ]

    def document(
        self, name: str, docid: str, *, parse: bool = True, max_doc_length: int | None = None
    ) -> Any:
        """The document's payload (None when no corpus is served with the index); ApiError 404 if unknown."""
        served = self.index(name)
        if not served.contains(docid):
            raise ApiError(404, f"Document not found: {docid}")
        if served.documents is None:
            return None
        return served.documents.payload(docid, parse=parse, max_length=max_doc_length)

    def describe(self) -> list[dict[str, Any]]:
        return [served.describe() for served in self.indexes.values()]

    async def close(self) -> None:
        for batcher in {id(s.batcher): s.batcher for s in self.indexes.values()}.values():
            await batcher.close()

    @contextmanager
    def _admitted(self, queries: int) -> Iterator[None]:
        """Hold ``queries`` of the concurrent-work budget, or shed the request (429 + Retry-After)."""
        if self._in_flight + queries > self.limits.concurrent:
            raise ApiError(
                429,
                f"Server busy ({self._in_flight} queries in progress, limit {self.limits.concurrent}); "
                f"retry after {self.limits.retry_after_s}s",
                {"Retry-After": str(self.limits.retry_after_s)},
            )
        self._in_flight += queries
        try:
            yield
        finally:
            self._in_flight -= queries


def load_service(
    specs: Sequence[IndexSpec],
    *,
    device: str = "cpu",
    backend: str = "torch",
    batch_size: int = 32,
    batch_wait_s: float = 0.002,
    mmap: bool = False,
    limits: Limits | None = None,
) -> SearchService:
    """Load every index, its query encoder (indexes with the same encoder share one model and one
    micro-batcher) and its corpus; bad input (a folder, an encoder mismatch, a corpus) is an InputError."""
    models: dict[str, tuple[DenseEncoder, MicroBatcher]] = {}
    corpora: dict[Path, Documents] = {}
    served: dict[str, ServedIndex] = {}
    for spec in specs:
        searchable = _open(spec, mmap)
        recorded = searchable.encoder
        key = json.dumps([spec.encoder, recorded and recorded.to_dict(), spec.template], sort_keys=True)
        if key not in models:
            model = query_encoder_for(searchable, spec.encoder, spec.template, device, backend=backend)
            models[key] = (
                model,
                MicroBatcher(
                    _encoder(model, batch_size), _search, max_batch=batch_size, max_wait_s=batch_wait_s
                ),
            )
        model, batcher = models[key]
        check_compatible(searchable, model.config, model.dimension)
        documents = None
        if spec.corpus is not None:
            if spec.corpus not in corpora:
                corpora[spec.corpus] = Documents(spec.corpus)
            documents = corpora[spec.corpus]
        served[spec.name] = ServedIndex(spec.name, searchable, model, batcher, documents, batch_size)
        log.info("loaded %s", json.dumps(served[spec.name].describe()))
    return SearchService(served, limits or Limits())


def _open(spec: IndexSpec, mmap: bool) -> DenseIndex | ResidentShards:
    """The index (or shards) of ``spec``, with its search settings, as search_topics prepares it."""

    def prepare(loaded: DenseIndex) -> None:
        set_search_parameters(loaded.faiss_index, loaded.path, ef_search=spec.ef_search, nprobe=spec.nprobe)

    folders = index_folders(list(spec.paths))
    if len(folders) > 1:
        return ResidentShards(folders, mmap=mmap, prepare=prepare)
    dense = open_index(folders[0], mmap=mmap, prepare=prepare)
    assert isinstance(dense, DenseIndex)
    if dense.faiss_index.ntotal == 0:
        raise InputError(str(dense.path), "index holds no vectors")
    return dense


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encoder(model: DenseEncoder, batch_size: int) -> Any:
    """What ``embed_queries`` does, in forward passes of similar length (see batching.length_passes)."""

    def encode(queries: list[str], instructions: list[str | None]) -> np.ndarray:
        texts = [formatted.text for formatted in model.format_queries(queries, instructions)]
        max_length = model.config.query_max_length
        ids, _ = model.text.token_rows(texts, max_length)
        vectors = np.empty((len(texts), model.dimension), dtype=np.float32)
        for rows in length_passes([len(row) for row in ids], batch_size):
            vectors[rows] = model.embed([texts[r] for r in rows], max_length, batch_size)
        return vectors

    return encode


def _search(target: tuple[ServedIndex, int], vectors: np.ndarray) -> list[Hits]:
    served, hits = target
    return served.search(vectors, hits)
