"""Topics (+ per-query instructions) -> TREC run over a Pyserini FAISS index (``python -m qpr_pyserini.search``).

Full retrieval searches the faiss index exactly as Pyserini's ``FaissSearcher.batch_search`` does (same
``index.search`` call, so the same ranking), without starting a JVM. Rerank mode scores only each query's
given candidates (FollowIR's ``top_ranked`` layout, or a TREC run) with the stored passage vectors.
Several index folders (or a folder of them) are searched as shards of one index (:mod:`qpr_pyserini.shards`);
``--mmap`` maps flat vectors from disk; HNSW / IVF-PQ indexes (:mod:`qpr_pyserini.ann`) take ``--ef-search``
/ ``--nprobe``.
The Python entry point is :func:`search_topics` (also ``qpr_pyserini.search_topics``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from .ann import set_search_parameters
from .cli import add_encoder_options, add_output_options, run_cli
from .config import EncoderConfig
from .index import DenseIndex
from .io.candidates import read_candidates
from .io.errors import InputError
from .io.runs import check_token, write_run
from .io.topics import Topic, instruction_of, read_topics
from .modeling import DenseEncoder
from .presets import resolve_encoder
from .shards import Hits, IndexArgument, ShardedIndex, open_index

BATCHES_PER_ENCODE = 8  # query batches encoded per call of embed_queries (see search_topics)

Searchable = DenseIndex | ShardedIndex


def check_compatible(index: Searchable, config: EncoderConfig, dimension: int) -> None:
    """Refuse a query encoder whose passage-side settings or dimension differ from the index's encoder."""
    if dimension != index.dimension:
        raise InputError(
            str(index.path), f"index dimension {index.dimension} != query encoder dimension {dimension}"
        )
    recorded = index.encoder
    if recorded is not None:
        mismatch = recorded.passage_side_mismatch(config)
        if mismatch and config.passage_encoder is not None:
            # A query-side model (qpr_pyserini.train --mode query-side) records the passage encoder it was
            # trained against: it belongs with indexes built by that encoder.
            trained_against = EncoderConfig.from_dict(config.passage_encoder, "passage_encoder")
            mismatch = recorded.passage_side_mismatch(trained_against)
        if mismatch:
            raise InputError(
                str(index.path),
                "index was built by a different encoder ("
                + "; ".join(mismatch)
                + "); pass --force to search anyway",
            )


def refuse_with_model(**names: object) -> None:
    """One source of truth: with a model object passed, an argument naming another encoder is an InputError."""
    given = [name for name, value in names.items() if value is not None]
    if given:
        raise InputError(given[0], "names an encoder, but a model object is passed too: pass one of them")


def with_settings(model: DenseEncoder, **overrides: object) -> DenseEncoder:
    """``model`` with the non-None ``overrides`` applied to its configuration (same weights and tokenizer).

    A passed model is thus configured exactly as the encoder it was loaded from would be with the same
    overrides; ``model`` itself is left unchanged.
    """
    config = resolve_encoder(model.config, **overrides)
    if config == model.config:
        return model
    return model.reconfigured(config)


def query_encoder_for(
    index: Searchable,
    encoder: str | EncoderConfig | None,
    template: str | None,
    device: str,
    model: DenseEncoder | None = None,
    backend: str = "torch",
) -> DenseEncoder:
    """The query-side model: ``model``, else the named encoder, else the one the index records.

    ``template`` overrides the encoder's template in every case; ``encoder`` together with ``model`` is an
    InputError.
    """
    if model is not None:
        refuse_with_model(encoder=encoder)
        return with_settings(model, template=template)
    if encoder is None and index.encoder is None:
        raise InputError(
            str(index.path), "index has no qpr_index.json encoder record (Pyserini-built?): pass --encoder"
        )
    return DenseEncoder.load(resolve_encoder(encoder or index.encoder, template=template), device, backend)


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


def check_positive(**options: int | None) -> None:
    """Counts given as ``--option`` values must be at least 1."""
    for name, value in options.items():
        if value is not None and value < 1:
            raise InputError("--" + name.replace("_", "-"), f"must be at least 1, got {value}")


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
) -> int:
    """Search ``topics`` (a file, ``irds:`` id, or Topic list) and write a TREC run; returns the line count.

    ``index`` is an index folder, a loaded index, or shards: several folders, or one folder whose subfolders
    are indexes (searched one at a time, as one index; see :mod:`qpr_pyserini.shards`). ``mmap`` maps the
    vectors from disk instead of reading them (for an index larger than RAM). ``ef_search`` / ``nprobe``
    override an HNSW / IVF index's stored search settings.
    The query encoder is ``model`` if given (then ``encoder`` must be None), else ``encoder`` (a preset,
    folder or configuration), else the one the index records; ``template`` overrides its template in every
    case; ``backend`` (see qpr_pyserini.backends) applies to a model loaded here. ``threads`` sets faiss's OpenMP threads for the search only (None: leave faiss's setting).
    Inputs are checked before the model is loaded; the run file appears only when complete.
    """
    check_positive(hits=hits, batch_size=batch_size, threads=threads, ef_search=ef_search, nprobe=nprobe)
    check_token(tag, "tag")
    if Path(output).is_dir():
        raise InputError(str(output), "is a folder, expected a run file path")
    if model is not None:
        refuse_with_model(encoder=encoder)

    def prepare(loaded: DenseIndex) -> None:
        set_search_parameters(loaded.faiss_index, loaded.path, ef_search=ef_search, nprobe=nprobe)
        if faiss_device != "cpu":
            loaded.faiss_index = _to_gpu(loaded.faiss_index, faiss_device)

    dense = open_index(index, mmap=mmap, prepare=prepare)
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
    query_model = query_encoder_for(dense, encoder, template, device, model, backend)
    if not force:
        check_compatible(dense, query_model.config, query_model.dimension)

    def batches() -> Iterator[tuple[list[Topic], np.ndarray]]:
        bar = tqdm(total=len(topic_list), desc="searching", unit="query", disable=not progress)
        # Queries are encoded BATCHES_PER_ENCODE batches at a time: embed batches what it is given by token
        # count, so a larger chunk pads less (on SciFact's 300 test queries, a third less model time).
        step = batch_size * BATCHES_PER_ENCODE
        for start in range(0, len(topic_list), step):
            chunk = topic_list[start : start + step]
            yield (
                chunk,
                query_model.embed_queries(
                    [t.query for t in chunk], instructions[start : start + step], batch_size
                ),
            )
            bar.update(len(chunk))
        bar.close()

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.search",
        description="Search a Pyserini FAISS index with instruction-aware queries and write a TREC run "
        "(qid Q0 docid rank score tag). With --candidates, rerank each query's given candidates instead.",
    )
    parser.add_argument(
        "--index",
        required=True,
        nargs="+",
        help="index folder (ours, or one written by pyserini.encode); several folders, or a folder of index "
        "folders, are searched as shards of one index, loaded one at a time",
    )
    parser.add_argument(
        "--mmap", action="store_true", help="map flat vectors from disk instead of reading them into memory"
    )
    parser.add_argument("--ef-search", type=int, help="HNSW indexes: search depth (default: the stored one)")
    parser.add_argument("--nprobe", type=int, help="IVF indexes: lists searched (default: the stored one)")
    parser.add_argument(
        "--topics",
        required=True,
        help="BEIR queries.jsonl (extra fields usable by "
        "--instruction-field), TSV qid<TAB>query, Pyserini JSONL, or irds:<id>",
    )
    parser.add_argument("--output", required=True, help="TREC run file to write (atomically)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--instruction", help="one instruction for every query")
    group.add_argument(
        "--instruction-field", help="topic field holding each query's instruction, e.g. instruction_og"
    )
    parser.add_argument(
        "--template",
        help="instruction template: promptriever, instruction-first, instructir, "
        "concat, or a format string with {query} and {instruction} (default: the encoder's)",
    )
    parser.add_argument("--hits", type=int, default=1000, help="results per query (default 1000)")
    parser.add_argument(
        "--candidates", help="rerank mode: FollowIR top_ranked JSONL, qid<TAB>docid TSV or a TREC run"
    )
    parser.add_argument("--faiss-device", default="cpu", help="cpu, or cuda[:N] with faiss-gpu")
    parser.add_argument(
        "--threads", type=int, help="faiss search threads (default: faiss's own setting, OMP_NUM_THREADS)"
    )
    parser.add_argument(
        "--force", action="store_true", help="search even if the encoder differs from the index's"
    )
    parser.add_argument("--tag", default="qpr", help="run tag (last column)")
    add_encoder_options(
        parser,
        encoder_help="query encoder: preset, folder, or model (default: the index's record)",
        batch_help="queries",
    )
    add_output_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> str:
        lines = search_topics(
            args.index,
            args.topics,
            args.output,
            encoder=args.encoder,
            instruction=args.instruction,
            instruction_field=args.instruction_field,
            template=args.template,
            hits=args.hits,
            batch_size=args.batch_size,
            candidates=args.candidates,
            device=args.device,
            faiss_device=args.faiss_device,
            threads=args.threads,
            force=args.force,
            tag=args.tag,
            progress=not args.quiet,
            mmap=args.mmap,
            ef_search=args.ef_search,
            nprobe=args.nprobe,
            backend=args.backend,
        )
        return f"wrote {lines} lines to {args.output}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
