"""``python -m qpr_pyserini.mteb_export``: benchmark scores.json files -> MTEB's results layout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qpr_pyserini.cli import run_cli
from qpr_pyserini.mteb_export import NO_REVISION, export_results, read_scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.mteb_export",
        description="Write benchmark scores.json files (one model) in MTEB's results layout.",
    )
    parser.add_argument("--scores", nargs="+", required=True, type=Path, help="scores.json of benchmark runs")
    parser.add_argument("--output", required=True, type=Path, help="results folder (MTEB's results/ layout)")
    parser.add_argument("--model-name", help="org/name (default: from the encoder record)")
    parser.add_argument("--model-revision", help=f"model revision (default {NO_REVISION})")
    args = parser.parse_args(argv)

    def action() -> str:
        records = [read_scores(path) for path in args.scores]
        sources = [str(path) for path in args.scores]
        written = export_results(records, args.output, args.model_name, args.model_revision, sources)
        return "\n".join(f"wrote {path}" for path in written)

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
