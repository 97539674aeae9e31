"""``python -m qpr_pyserini.train.stance``: training rows from the SciFact-stance train split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qpr_pyserini.cli import run_cli
from qpr_pyserini.io.candidates import read_candidates
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.training_data import write_training_data
from qpr_pyserini.train.stance import DEFAULT_VARIANTS, VARIANTS, build_stance_training_rows


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input)."""
    args = _parser().parse_args(argv)

    def action() -> None:
        negatives = read_candidates(args.negatives) if args.negatives else None
        try:
            rows = build_stance_training_rows(
                args.stance_dir, args.corpus, hard_negatives=negatives, variants=args.variants
            )
        except InputError as err:
            if err.path != "--negatives":
                raise
            raise InputError(args.negatives, err.reason) from None
        count = write_training_data(args.output, rows)
        per_variant = {v: sum(row.query_id.endswith(f"-{v}") for row in rows) for v in args.variants}
        summary = ", ".join(f"{v} {n}" for v, n in per_variant.items())
        print(f"wrote {count} rows to {args.output} ({summary})", file=sys.stderr)
        if not any(row.negatives for row in rows):
            print("note: the rows have no hard negatives; mine them before training", file=sys.stderr)

    return run_cli(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.train.stance",
        description="Build Promptriever-schema training JSONL from a SciFact-stance split "
        "(see docs/training-data.md).",
    )
    parser.add_argument(
        "--stance-dir", type=Path, required=True, help="queries.jsonl, qrels_{og,matching,changed}.tsv"
    )
    parser.add_argument("--output", type=Path, required=True, help="training JSONL to write (.gz: gzipped)")
    parser.add_argument("--corpus", type=Path, help="corpus JSONL (default: STANCE_DIR/corpus.jsonl)")
    parser.add_argument(
        "--negatives",
        help="mined hard negatives: a TREC run, 'qid docid' lines or JSONL, keyed by row id "
        "(<qid>-<variant>) or claim id, best first",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(DEFAULT_VARIANTS),
        help=f"rows to build (default: {' '.join(DEFAULT_VARIANTS)})",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
