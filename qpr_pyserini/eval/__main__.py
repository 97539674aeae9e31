"""``python -m qpr_pyserini.eval``: evaluate TREC runs (standard measures, p-MRR, Robustness@10).

Run as ``python -m qpr_pyserini.eval`` (or ``qpr-eval``); ``--help`` explains the three modes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager

from qpr_pyserini.cli import run_cli
from qpr_pyserini.eval import metrics
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.runs import read_run

DEFAULT_MEASURES = "nDCG@10 MAP@1000 RR@10 R@100"

DESCRIPTION = """\
Evaluate TREC runs against qrels (BEIR TSV with header, TREC qrels, or irds:<dataset-id>).

modes:
  standard (default)  --qrels Q --run R [--measures M] [--missing error|zero|skip]
      Mean of each measure over the judged queries, computed by ir_measures (trec_eval
      semantics). Measures use ir_measures names (nDCG@10, AP@1000, RR@10, R@100, P@5, ...);
      MAP@k is accepted as AP@k. --missing says what to do with judged queries that have no
      results in the run: error (default), zero (count them as 0, like trec_eval -c) or skip.
  --pmrr  --qrels-og Q1 --qrels-changed Q2 --run-og R1 --run-changed R2
      FollowIR's p-MRR: how the documents whose judgement changed between Q1 and Q2 move
      between the run with the original instruction (R1) and the run with the changed one
      (R2). -1..1 (x100 in the table): positive when they move the way the change asks.
  --robustness  --qrels Q --run R [--missing ...]
      InstructIR's Robustness@10: query ids are <base>_<n> (one per instruction); the worst
      nDCG@10 of each base query, averaged over base queries, next to plain nDCG@10.

Prints an aligned table (values x100), or with --json one JSON object: measure -> raw value."""


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input)."""
    args = _parser().parse_args(argv)

    def action() -> str:
        scores = _scores(args)
        return json.dumps(scores) if args.json else _table(scores)

    return run_cli(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.eval",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--pmrr", action="store_true", help="p-MRR mode (FollowIR)")
    mode.add_argument("--robustness", action="store_true", help="Robustness@10 mode (InstructIR)")
    parser.add_argument("--qrels", help="qrels (standard and --robustness modes)")
    parser.add_argument("--run", help="TREC run (standard and --robustness modes)")
    parser.add_argument("--measures", default=DEFAULT_MEASURES, help=f'default: "{DEFAULT_MEASURES}"')
    parser.add_argument("--missing", choices=metrics.MISSING_MODES, default="error")
    parser.add_argument("--qrels-og", help="qrels for the original instruction (--pmrr)")
    parser.add_argument("--qrels-changed", help="qrels for the changed instruction (--pmrr)")
    parser.add_argument("--run-og", help="run with the original instruction (--pmrr)")
    parser.add_argument("--run-changed", help="run with the changed instruction (--pmrr)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def _scores(args: argparse.Namespace) -> dict[str, float]:
    if args.pmrr:
        paths = _required(args, "qrels_og", "qrels_changed", "run_og", "run_changed")
        qrels_og, qrels_changed = read_qrels(paths[0]), read_qrels(paths[1])
        run_og, run_changed = read_run(paths[2]), read_run(paths[3])
        with _naming_files(qrels_changed=paths[1], runs=f"{paths[2]}, {paths[3]}"):
            return {"p-MRR": metrics.pmrr(qrels_og, qrels_changed, run_og, run_changed).score}
    qrels_path, run_path = _required(args, "qrels", "run")
    with _naming_files(measures="--measures"):
        if not args.robustness:
            metrics.parse_measures(args.measures)  # a bad name is reported before any file is read
    qrels, run = read_qrels(qrels_path), read_run(run_path)
    with _naming_files(run=run_path, qrels=qrels_path):
        if args.robustness:
            return metrics.robustness(qrels, run, missing=args.missing)
        return metrics.evaluate(qrels, run, args.measures, missing=args.missing)


@contextmanager
def _naming_files(**where: str) -> Iterator[None]:
    """Re-raise the metrics' InputErrors (about "run", "qrels", ...) naming the files or options instead."""
    try:
        yield
    except InputError as exc:
        if exc.path not in where:
            raise
        raise InputError(where[exc.path], exc.reason) from exc


def _required(args: argparse.Namespace, *names: str) -> list[str]:
    absent = ["--" + name.replace("_", "-") for name in names if getattr(args, name) is None]
    if absent:
        raise InputError(absent[0], f"this mode needs {', '.join(absent)}")
    return [getattr(args, name) for name in names]


def _table(scores: dict[str, float]) -> str:
    width = max(len("measure"), *(len(name) for name in scores))
    lines = [f"{'measure':<{width}}  {'x100':>7}"]
    lines += [f"{name:<{width}}  {100 * value:>7.2f}" for name, value in scores.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
