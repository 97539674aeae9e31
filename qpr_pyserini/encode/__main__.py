"""``python -m qpr_pyserini.encode``: a corpus into a Pyserini FAISS index, here or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys

from qpr_pyserini.cli import add_encoder_options, add_output_options, run_cli
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.encode.ray import encode_with_ray
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.presets import DEFAULT_ENCODER, available_presets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.encode",
        description="Encode a corpus into a Pyserini FAISS index folder (index + docid + qpr_index.json). "
        "Pyserini's FaissSearcher loads the result; qpr_pyserini.search reads the recorded encoder.",
    )
    parser.add_argument(
        "--corpus",
        required=True,
        help="BEIR corpus.jsonl (_id,title,text), Pyserini JSONL (id,contents), a BEIR dataset folder "
        "(only its corpus.jsonl[.gz] is read), another folder (all its .jsonl[.gz] files, in name order), "
        "or irds:<ir_datasets id>",
    )
    parser.add_argument("--index", required=True, help="output index folder (written atomically)")
    parser.add_argument("--max-length", type=int, help="passage max tokens (default: the encoder's)")
    parser.add_argument(
        "--shard-id", type=int, default=0, help="which shard of the corpus to encode (0-based)"
    )
    parser.add_argument(
        "--shard-num",
        type=int,
        default=1,
        help="number of shards; merge them with 'python -m qpr_pyserini.index merge'",
    )
    add_encoder_options(
        parser,
        encoder_help=f"preset name, preset JSON, encoder or model folder (default: {DEFAULT_ENCODER}; "
        f"presets: {', '.join(available_presets())})",
        batch_help="passages",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a run of the same settings that was killed or interrupted, after its last complete "
        "chunk (16 x --batch-size documents); without one, start afresh; an index already complete is kept",
    )
    ray = parser.add_argument_group("ray (see docs/scale-encoding.md)")
    ray.add_argument(
        "--ray-workers",
        type=int,
        help="encode on a Ray cluster with N workers (one per GPU with --device cuda, else one per CPU): "
        "--index becomes a folder of N shard indexes shard-I-of-N, to search as shards or merge",
    )
    ray.add_argument(
        "--ray-address",
        help="address of a running Ray cluster (default: $RAY_ADDRESS, else a local Ray on this machine)",
    )
    add_output_options(parser, overwrite="replace an existing index folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> str:
        options = {
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "device": args.device,
            "overwrite": args.overwrite,
            "resume": args.resume,
            "progress": not args.quiet,
            "backend": args.backend,
        }
        if args.ray_workers is not None:
            if args.shard_num != 1 or args.shard_id != 0:
                raise InputError(
                    "--ray-workers", "splits the corpus itself: leave out --shard-id/--shard-num"
                )
            shards = encode_with_ray(
                args.corpus,
                args.index,
                args.encoder or DEFAULT_ENCODER,
                workers=args.ray_workers,
                address=args.ray_address,
                **options,
            )
            return f"wrote {len(shards)} shards to {args.index}"
        out = encode_corpus(
            args.corpus,
            args.index,
            args.encoder or DEFAULT_ENCODER,
            shard_id=args.shard_id,
            shard_num=args.shard_num,
            **options,
        )
        return f"wrote {out}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
