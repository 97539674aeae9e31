"""``python -m qpr_pyserini.repro``: the main job, or the reproduction records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qpr_pyserini.cli import add_encoder_options, run_cli
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.presets import DEFAULT_ENCODER
from qpr_pyserini.repro import main_job
from qpr_pyserini.repro.main_job import default_data, format_table, run
from qpr_pyserini.repro.records import load_records, run_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.repro", description=(main_job.__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=default_data(),
        help="shared data with scifact/ and scifact-stance/ (default $QPR_SHARED_DATA, else ../shared/data)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/repro"), help="output folder (default out/repro)"
    )
    parser.add_argument("--hits", type=int, default=1000, help="results per query (default 1000)")
    add_encoder_options(
        parser,
        encoder_help=f"encoder preset or folder (default {DEFAULT_ENCODER})",
        batch_help="texts",
    )
    records = parser.add_argument_group("reproduction records (instead of the main job)")
    records.add_argument("names", nargs="*", metavar="NAME", help="rerun these records (any needs)")
    records.add_argument("--all", action="store_true", help="rerun every record that runs here on CPU")
    records.add_argument("--include-slow", action="store_true", help="with --all: also the CPU-hours ones")
    records.add_argument("--include-gpu", action="store_true", help="with --all: also the GPU + hub ones")
    records.add_argument("--list", action="store_true", help="list the records and what each needs")
    records.add_argument(
        "--work",
        type=Path,
        default=Path("out/repro-records"),
        help="records' outputs (default out/repro-records)",
    )
    records.add_argument("--indexes", type=Path, help="indexes shared by records (default WORK/indexes)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(f"{r.name:<44}{r.needs:<11}{r.title}" for r in load_records().values()))
        return 0
    if args.all or args.names:
        passed: list[bool] = []

        def rerun() -> None:
            if args.all and args.names:
                raise InputError("--all", "give --all or record names, not both")
            passed.append(
                run_records(
                    args.names,
                    args.data,
                    args.work,
                    args.indexes,
                    include_slow=args.include_slow,
                    include_gpu=args.include_gpu,
                )
            )

        return run_cli(rerun) or (0 if all(passed) else 1)

    def action() -> str:
        scores = run(
            args.data,
            args.out,
            args.encoder or DEFAULT_ENCODER,
            args.batch_size,
            args.hits,
            args.device,
            args.backend,
            ["-m", "qpr_pyserini.repro", *(sys.argv[1:] if argv is None else argv)],
        )
        return f"{format_table(scores)}\nscores and runs under {args.out}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
