"""``python -m qpr_pyserini.benchmark``: run a benchmark suite as it defines itself."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qpr_pyserini.benchmark import suites
from qpr_pyserini.benchmark.plot import check_plottable, plot_scores
from qpr_pyserini.benchmark.suites import format_scores, run_benchmark
from qpr_pyserini.cli import add_encoder_options, add_output_options, run_cli
from qpr_pyserini.io.benchmark_data import SUITES
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import check_file_path
from qpr_pyserini.mteb_export import check_model_name, export_results, read_scores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.benchmark",
        description=(suites.__doc__ or "").split("\n\n")[0],
        epilog="--data: a local folder (JSONL/TSV, parquet or save_to_disk tables), a Hugging Face id "
        "(jhu-clsp/robust04-instructions, mteb/News21InstructionRetrieval, kaist-ai/InstructIR, ...) or irds:<id>.",
    )
    parser.add_argument("--suite", required=True, choices=SUITES, help="the benchmark's protocol")
    parser.add_argument("--data", required=True, help="the dataset: folder, hub id or irds:<id>")
    parser.add_argument("--output", required=True, type=Path, help="folder for runs and scores.json")
    parser.add_argument(
        "--index", help="index of the corpus to reuse; encoded there first if absent (default OUTPUT/index)"
    )
    parser.add_argument("--template", help="instruction template (default: the encoder's)")
    parser.add_argument("--hits", type=int, default=1000, help="results per query (default 1000)")
    parser.add_argument("--split", default="test", help="split of the qrels and tables (default test)")
    parser.add_argument(
        "--mteb-results", type=Path, help="also write MTEB's results layout under this folder"
    )
    parser.add_argument("--model-name", help="org/name for the MTEB export (default: from the encoder)")
    parser.add_argument("--model-revision", help="model revision for the MTEB export")
    parser.add_argument("--plot", type=Path, help="write a PNG of p-MRR against the standard score")
    parser.add_argument(
        "--compare", type=Path, nargs="*", default=[], help="other models' scores.json files for --plot"
    )
    add_encoder_options(
        parser,
        encoder_help="encoder preset or folder (default: the index's, else minilm)",
        batch_help="texts",
    )
    add_output_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> str:
        compared = _check_options(args)  # every option, before any encoding or search
        record = run_benchmark(
            args.suite,
            args.data,
            args.output,
            encoder=args.encoder,
            index=args.index,
            template=args.template,
            hits=args.hits,
            batch_size=args.batch_size,
            device=args.device,
            split=args.split,
            progress=not args.quiet,
            backend=args.backend,
        )
        message = [format_scores(record), f"runs and scores.json under {args.output}"]
        if args.mteb_results is not None:
            written = export_results([record], args.mteb_results, args.model_name, args.model_revision)
            message.append(f"MTEB results: {', '.join(str(p) for p in written)}")
        if args.plot is not None:
            plot_scores([record, *compared], args.plot)
            message.append(f"plot: {args.plot}")
        return "\n".join(message)

    return run_cli(action)


def _check_options(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Check the options used only after the benchmark has run (so that a mistake costs no encoding); returns
    the --compare records."""
    if args.compare and args.plot is None:
        raise InputError("--compare", "adds other models to --plot; give --plot too")
    compared = [read_scores(path) for path in args.compare]
    if args.plot is not None:
        check_file_path(args.plot, "--plot")
        if args.suite == "beir":
            raise InputError(
                "--plot", "draws p-MRR or Robustness@10 against the standard score; beir has neither"
            )
        for path, record in zip(args.compare, compared, strict=True):
            check_plottable(record, str(path))
    if args.mteb_results is not None:
        if args.mteb_results.exists() and not args.mteb_results.is_dir():
            raise InputError(str(args.mteb_results), "is not a folder (--mteb-results)")
        if args.model_name is not None:
            check_model_name(args.model_name)
    return compared


if __name__ == "__main__":
    sys.exit(main())
