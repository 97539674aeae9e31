"""Topics (+ per-query instructions) -> TREC run over a Pyserini FAISS index (``python -m qpr_pyserini.search``).

Full retrieval searches the faiss index exactly as Pyserini's ``FaissSearcher.batch_search`` does (same
``index.search`` call, so the same ranking), without starting a JVM. Rerank mode scores only each query's
given candidates (FollowIR's ``top_ranked`` layout, or a TREC run) with the stored passage vectors.
Several index folders (or a folder of them) are searched as shards of one index (:mod:`qpr_pyserini.search.shards`);
``--mmap`` maps flat vectors from disk; HNSW / IVF-PQ indexes (:mod:`qpr_pyserini.index.ann`) take ``--ef-search``
/ ``--nprobe``.
The Python entry point is :func:`search_topics` (also ``qpr_pyserini.search_topics``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.ann import set_search_parameters
from qpr_pyserini.index.store import DenseIndex
from qpr_pyserini.io.candidates import read_candidates
from qpr_pyserini.io.errors import InputError, check_positive
from qpr_pyserini.io.runs import check_file_path, check_token, write_run
from qpr_pyserini.io.topics import Topic, instruction_of, read_topics
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.search.query_encoder import (
    Searchable,
    check_compatible,
    query_encoder_for,
    refuse_with_model,
)
from qpr_pyserini.search.shards import Hits, IndexArgument, open_index

log = logging.getLogger(__name__)

BATCHES_PER_ENCODE = 8  # query batches encoded per call of embed_queries (see encode_topics)


@contextmanager
def faiss_threads(threads: int | None) -> Iterator[None]:
    """Run faiss with ``threads`` OpenMP threads (None: as set), restoring the process-wide setting after."""
    if threads is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def retrieve(index: DenseIndex, queries: np.ndarray, hits: int, threads: int | None = None) -> list[Hits]:
    """Exhaustive inner-product search, as Pyserini's FaissSearcher does it (``threads``: see faiss_threads)."""
    with faiss_threads(threads):
        scores, rows = index.faiss_index.search(np.ascontiguousarray(queries, dtype=np.float32), hits)
    return [
        [(index.docids[r], float(s)) for s, r in zip(row_scores, row_ids, strict=True) if r != -1]
        for row_scores, row_ids in zip(scores, rows, strict=True)
    ]


def rerank(index: DenseIndex, query: np.ndarray, candidates: Sequence[str]) -> Hits:
    """Score only ``candidates`` (doc ids in the index) against the stored vectors, score descending.

    Ties keep the candidate order.
    """
    scores = index.vectors(index.rows_of(candidates)) @ query
    order = np.argsort(-scores, kind="stable")
    return [(candidates[i], float(scores[i])) for i in order]


def check_candidates(
    index: Searchable, pool: dict[str, list[str]], topics: Sequence[Topic], source: str
) -> None:
    """Every candidate of a searched query must be in the index (checked before any query is encoded)."""
    for topic in topics:
        for docid in pool.get(topic.qid, []):
            if not index.contains(docid):
                raise InputError(
                    source,
                    f"candidate doc id {docid!r} of qid {topic.qid!r} is not in the index {index.path}",
                )


def _check_candidate_qids(pool: dict[str, list[str]], topics: Sequence[Topic], source: str) -> None:
    """Candidates for none of the topics would write an empty run: an InputError; for only some, a warning
    (the others get no results)."""
    without = [t.qid for t in topics if not pool.get(t.qid)]
    if len(without) == len(topics):
        first = f" (its first: {next(iter(pool))!r}; the topics' first: {topics[0].qid!r})" if pool else ""
        raise InputError(source, f"has candidates for none of the {len(topics)} topics' query ids{first}")
    if without:
        log.warning(
            "%s: %d of %d topics have no candidates and get no results (first: %s)",
            source,
            len(without),
            len(topics),
            without[0],
        )


def encode_topics(
    model: DenseEncoder,
    topics: Sequence[Topic],
    instructions: Sequence[str | None] | None,
    batch_size: int,
    *,
    progress: bool = False,
) -> Iterator[tuple[list[Topic], np.ndarray]]:
    """The query vectors of ``topics`` (with their ``instructions``), chunk by chunk: (topics, vectors [n, d]).

    Queries are encoded BATCHES_PER_ENCODE batches per call: ``embed`` batches what it is given by token count,
    so a larger chunk pads less (on SciFact's 300 test queries, a third less model time).
    """
    bar = tqdm(total=len(topics), desc="searching", unit="query", disable=not progress)
    step = batch_size * BATCHES_PER_ENCODE
    for start in range(0, len(topics), step):
        chunk = list(topics[start : start + step])
        texts = [t.query for t in chunk]
        wanted = None if instructions is None else instructions[start : start + step]
        yield chunk, model.embed_queries(texts, wanted, batch_size)
        bar.update(len(chunk))
    bar.close()


def search_topics(
    index: IndexArgument,
    topics: str | Path | Sequence[Topic],
    output: str | Path,
    *,
    encoder: str | EncoderConfig | None = None,
    instruction: str | None = None,
    instruction_field: str | None = None,
    template: str | None = None,
    hits: int = 1000,
    batch_size: int = 32,
    candidates: str | Path | None = None,
    device: str = "cpu",
    faiss_device: str = "cpu",
    threads: int | None = None,
    force: bool = False,
    tag: str = "qpr",
    progress: bool = True,
    model: DenseEncoder | None = None,
    mmap: bool = False,
    ef_search: int | None = None,
    nprobe: int | None = None,
    backend: str = "torch",
    allow_partial: bool = False,
) -> int:
    """Search ``topics`` (a file, ``irds:`` id, or Topic list) and write a TREC run; returns the line count.

    ``index`` is an index folder, a loaded index, or shards: several folders, or one folder whose subfolders
    are indexes (searched one at a time, as one index; see :mod:`qpr_pyserini.search.shards`). ``mmap`` maps the
    vectors from disk instead of reading them (for an index larger than RAM). ``ef_search`` / ``nprobe``
    override an HNSW / IVF index's stored search settings. Some shards of a split (``encode --shard-num``)
    without the rest are refused unless ``allow_partial``.
    The query encoder is ``model`` if given (then ``encoder`` must be None), else ``encoder`` (a preset,
    folder or configuration), else the one the index records; ``template`` overrides its template in every
    case; ``backend`` (see qpr_pyserini.model.backends) applies to a model loaded here. ``threads`` sets faiss's OpenMP threads for the search only (None: leave faiss's setting).
    Inputs are checked before the model is loaded; the run file appears only when complete.
    """
    check_positive(hits=hits, batch_size=batch_size, threads=threads, ef_search=ef_search, nprobe=nprobe)
    check_token(tag, "tag")
    check_file_path(output, "--output")
    if model is not None:
        refuse_with_model(encoder=encoder)

    def prepare(loaded: DenseIndex) -> None:
        set_search_parameters(loaded.faiss_index, loaded.path, ef_search=ef_search, nprobe=nprobe)
        if faiss_device != "cpu":
            loaded.faiss_index = _to_gpu(loaded.faiss_index, faiss_device)

    dense = open_index(index, mmap=mmap, prepare=prepare, allow_partial=allow_partial)
    count = dense.faiss_index.ntotal if isinstance(dense, DenseIndex) else dense.documents
    if count == 0:
        raise InputError(str(dense.path), "index holds no vectors")
    topic_list = list(topics) if not isinstance(topics, str | Path) else read_topics(topics)
    if not topic_list:
        raise InputError(str(topics) if isinstance(topics, str | Path) else "topics", "no topics")
    instructions = [instruction_of(t, instruction_field, instruction) for t in topic_list]
    pool = read_candidates(candidates) if candidates is not None else None
    if pool is not None:
        check_candidates(dense, pool, topic_list, str(candidates))
        _check_candidate_qids(pool, topic_list, str(candidates))
    query_model = query_encoder_for(dense, encoder, template, device, model, backend)
    if not force:
        check_compatible(dense, query_model.config, query_model.dimension)

    def batches() -> Iterator[tuple[list[Topic], np.ndarray]]:
        return encode_topics(query_model, topic_list, instructions, batch_size, progress=progress)

    def results() -> Iterator[tuple[str, Hits]]:
        if isinstance(dense, DenseIndex):
            for chunk, vectors in batches():
                yield from zip((t.qid for t in chunk), rank(dense, chunk, vectors), strict=True)
            return
        # shards: every query is encoded first, so that each shard is loaded once
        encoded = list(batches())
        chunk = [t for part, _ in encoded for t in part]
        vectors = np.concatenate([v for _, v in encoded])
        if pool is None:
            with faiss_threads(threads):
                ranked = dense.search(vectors, hits, batch_size)
        else:
            ranked = rank(dense.subset(d for t in chunk for d in pool.get(t.qid, [])), chunk, vectors)
        yield from zip((t.qid for t in chunk), ranked, strict=True)

    def rank(searched: DenseIndex, chunk: list[Topic], vectors: np.ndarray) -> list[Hits]:
        if pool is None:
            return retrieve(searched, vectors, hits, threads)
        return [rerank(searched, v, pool.get(t.qid, []))[:hits] for t, v in zip(chunk, vectors, strict=True)]

    return write_run(output, results(), tag=tag)


def _to_gpu(index: faiss.Index, device: str) -> faiss.Index:
    if not hasattr(faiss, "StandardGpuResources"):
        raise InputError("--faiss-device", f"{device} needs faiss-gpu (pip install 'qpr_pyserini[gpu]')")
    gpu = int(device.split(":", 1)[1]) if ":" in device else 0
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
