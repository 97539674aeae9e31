"""``python -m qpr_pyserini.search``: search an index with instruction-aware queries into a TREC run."""

from __future__ import annotations

import argparse
import sys

from qpr_pyserini.cli import add_encoder_options, add_output_options, run_cli
from qpr_pyserini.search.searcher import search_topics


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
        "--allow-partial",
        action="store_true",
        help="search some shards of a split (encode --shard-num N) without the others",
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
            allow_partial=args.allow_partial,
        )
        return f"wrote {lines} lines to {args.output}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
