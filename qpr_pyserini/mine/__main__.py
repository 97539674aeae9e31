"""``python -m qpr_pyserini.mine``: hard negatives for training rows, mined from a dense index."""

from __future__ import annotations

import argparse
import sys

from qpr_pyserini.cli import add_encoder_options, run_cli
from qpr_pyserini.io.runs import check_file_path
from qpr_pyserini.io.training_data import read_training_data, write_training_data
from qpr_pyserini.mine import __doc__ as DESCRIPTION
from qpr_pyserini.mine import mine_negatives


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qpr_pyserini.mine", description=DESCRIPTION.split("\n\n")[0])
    parser.add_argument(
        "--train-data", required=True, help="training rows (Tevatron/Promptriever JSONL[.gz])"
    )
    parser.add_argument("--index", required=True, help="index folder to search")
    parser.add_argument(
        "--corpus", required=True, help="the corpus the index was built from (for passage texts)"
    )
    parser.add_argument(
        "--output", required=True, help="training JSONL to write, with mined negative_passages"
    )
    parser.add_argument("--depth", type=int, default=100, help="hits searched per query (default 100)")
    parser.add_argument("--skip", type=int, default=0, help="top hits to skip as likely false negatives")
    parser.add_argument("--keep", type=int, default=30, help="negatives kept per row (default 30)")
    add_encoder_options(
        parser,
        encoder_help="query encoder (default: the index's recorded encoder)",
        batch_help="queries",
        batch_size=64,
    )
    args = parser.parse_args(argv)

    def action() -> str:
        check_file_path(args.output, "--output")  # before the model and index are loaded
        examples = read_training_data(args.train_data)
        mined = mine_negatives(
            examples,
            args.index,
            args.corpus,
            encoder=args.encoder,
            depth=args.depth,
            skip=args.skip,
            keep=args.keep,
            batch_size=args.batch_size,
            device=args.device,
            backend=args.backend,
        )
        return f"wrote {write_training_data(args.output, mined)} rows with mined negatives to {args.output}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
