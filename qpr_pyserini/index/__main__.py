"""``python -m qpr_pyserini.index``: merge shard folders, print a record, convert to HNSW / IVF-PQ."""

from __future__ import annotations

import argparse
import json
import sys

from qpr_pyserini.cli import run_cli
from qpr_pyserini.index.merge import merge_indexes
from qpr_pyserini.index.store import load_index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.index",
        description="Pyserini FAISS index utilities. 'merge' joins shard folders written by "
        "'python -m qpr_pyserini.encode --shard-id I --shard-num N' into one index, in the order given; "
        "'convert' builds an HNSW or IVF-PQ index from a flat one.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge shard index folders into one")
    merge.add_argument("--shards", nargs="+", required=True, help="shard folders, in shard order")
    merge.add_argument("--index", required=True, help="output index folder")
    merge.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    merge.add_argument(
        "--allow-partial",
        action="store_true",
        help="merge some shards of a split without the others (the record lists those it holds)",
    )
    info = sub.add_parser("info", help="print an index folder's record (encoder, dimension, size)")
    info.add_argument("index")
    convert = sub.add_parser(
        "convert",
        help="build an HNSW or IVF-PQ index folder from a flat one (readable by Pyserini's FaissSearcher)",
    )
    convert.add_argument("--index", required=True, help="flat index folder (read memory-mapped)")
    convert.add_argument("--output", required=True, help="index folder to write")
    convert.add_argument("--type", required=True, choices=("hnsw", "ivfpq"), help="index type")
    convert.add_argument(
        "--factory",
        help="faiss index factory string (default: HNSW32, or IVF<nlist>,PQ<d/4>x8np sized to the index)",
    )
    convert.add_argument("--ef-search", type=int, help="HNSW search depth stored in the index (default 128)")
    convert.add_argument(
        "--nprobe", type=int, help="IVF lists searched, stored in the index (default nlist/32)"
    )
    convert.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)

    def action() -> str:
        if args.command == "merge":
            out = merge_indexes(
                args.shards, args.index, overwrite=args.overwrite, allow_partial=args.allow_partial
            )
            return (
                f"merged {len(args.shards)} shards into {out} ({load_index(out).faiss_index.ntotal} vectors)"
            )
        if args.command == "convert":
            from qpr_pyserini.index.ann import convert_index  # ann builds on this module

            out = convert_index(
                args.index,
                args.output,
                args.type,
                factory=args.factory,
                ef_search=args.ef_search,
                nprobe=args.nprobe,
                overwrite=args.overwrite,
            )
            return f"wrote {out} ({load_index(out).record['ann']['factory']}, {args.type})"
        loaded = load_index(args.index)
        summary = loaded.record or {"dimension": loaded.dimension, "documents": len(loaded.docids)}
        return json.dumps(summary, indent=2)

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
