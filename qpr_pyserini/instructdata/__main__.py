"""Build the SciFact attribute-instruction set (docs/instruction-data.md).

    python -m qpr_pyserini.instructdata --scifact ../shared/data/scifact --output DIR [--seed S] [--overwrite]

writes DIR/train.jsonl.gz (Promptriever rows), DIR/{dev,test}/ (FollowIR layout: queries.jsonl,
qrels_og.tsv, qrels_changed.tsv, qrels_topic.tsv, corpus.jsonl -> the SciFact corpus), DIR/labels.tsv (the
attribute labels) and DIR/manifest.json (counts). The same seed gives the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qpr_pyserini.cli import run_cli
from qpr_pyserini.instructdata.build import build


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m qpr_pyserini.instructdata", description=__doc__)
    parser.add_argument("--scifact", type=Path, required=True, help="SciFact folder with corpus.jsonl")
    parser.add_argument("--output", type=Path, required=True, help="folder to write (must be absent or empty)")
    parser.add_argument("--seed", type=int, default=0, help="topic split and wording draws (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)

    def action() -> str:
        manifest = build(args.scifact, args.output, seed=args.seed, overwrite=args.overwrite)
        return json.dumps({k: manifest[k] for k in ("topics", "pairs", "train_rows", "eval_queries")})

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
