"""The main job: encode SciFact once, search it with and without instructions, print the scores.

With ``--all`` or record names it instead reruns the reproduction records (``qpr_pyserini/repro_records``,
see :mod:`qpr_pyserini.records`) and prints one ``OK`` / ``FAIL`` line per score.

``python -m qpr_pyserini.repro`` reproduces all-MiniLM-L6-v2 on BEIR SciFact test (MTEB: nDCG@10 64.51) and
searches the same collection under the SciFact-stance instructions (og, changed, matching) with p-MRR.
Every artefact (index, runs, scores.json) lands under ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from .cli import add_encoder_options, run_cli
from .index import load_index
from .io.errors import InputError
from .io.qrels import read_qrels
from .io.runs import read_run
from .io.topics import read_topics
from .metrics import evaluate, pmrr
from .modeling import DenseEncoder
from .presets import DEFAULT_ENCODER, resolve_encoder
from .records import load_records, run_records
from .search import search_topics

# run name -> (topic field holding the instruction, qrels judging it; None: the run only feeds p-MRR, since
# under the changed instruction no document of the collection is relevant)
STANCE_SETTINGS = {
    "none": (None, "qrels_og.tsv"),
    "og": ("instruction_og", "qrels_og.tsv"),
    "changed": ("instruction_changed", None),
    "matching": ("instruction_matching", "qrels_matching.tsv"),
}


def default_data() -> Path:
    """``$QPR_SHARED_DATA``, else ``../shared/data`` from the working directory (the README runs from the
    checkout, next to the shared folder); never derived from where the package is installed."""
    return Path(os.environ.get("QPR_SHARED_DATA", "../shared/data"))


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _index_for(corpus: Path, out: Path, batch_size: int, device: str, model: DenseEncoder) -> Path:
    """Encode ``corpus`` unless an index of the same corpus file and encoder is already under ``out``."""
    from .encode import encode_corpus

    index = out / f"index-{_digest(corpus)[:12]}"
    if index.is_dir():
        if load_index(index).encoder == model.config:
            print(f"reusing {index}")
            return index
    encode_corpus(
        corpus, index, model.config, batch_size=batch_size, device=device, overwrite=True, model=model
    )
    return index


def run(
    data: Path, out: Path, encoder: str, batch_size: int, hits: int, device: str, backend: str = "torch"
) -> dict[str, dict[str, float]]:
    scifact, stance = data / "scifact", data / "scifact-stance" / "test"
    for needed in (scifact / "corpus.jsonl", stance / "queries.jsonl"):
        if not needed.is_file():
            raise InputError(
                str(needed), "missing: point --data at the shared data folder (scifact, scifact-stance)"
            )
    model = DenseEncoder.load(resolve_encoder(encoder), device, backend)
    runs = out / "runs"
    scores: dict[str, dict[str, float]] = {}

    index = _index_for(scifact / "corpus.jsonl", out, batch_size, device, model)
    qrels = read_qrels(scifact / "qrels" / "test.tsv")
    topics = [t for t in read_topics(scifact / "queries.jsonl") if t.qid in qrels]
    run_path = runs / "scifact-test.trec"
    search_topics(index, topics, run_path, hits=hits, batch_size=batch_size, model=model, progress=False)
    scores["scifact-test"] = evaluate(qrels, read_run(run_path), ["nDCG@10", "R@100", "RR@10"])

    index = _index_for(stance / "corpus.jsonl", out, batch_size, device, model)
    topics = read_topics(stance / "queries.jsonl")
    stance_runs = {}
    for name, (field, qrels_file) in STANCE_SETTINGS.items():
        path = runs / f"scifact-stance-{name}.trec"
        search_topics(
            index,
            topics,
            path,
            instruction_field=field,
            hits=hits,
            batch_size=batch_size,
            model=model,
            progress=False,
        )
        stance_runs[name] = read_run(path)
        if qrels_file:
            scores[f"stance-{name}"] = evaluate(
                read_qrels(stance / qrels_file), stance_runs[name], ["nDCG@10"]
            )
    result = pmrr(
        read_qrels(stance / "qrels_og.tsv"),
        read_qrels(stance / "qrels_changed.tsv"),
        stance_runs["og"],
        stance_runs["changed"],
    )
    scores["stance-pmrr"] = {"p-MRR": result.score}
    (out / "scores.json").write_text(
        json.dumps({"encoder": model.config.to_dict(), "scores": scores}, indent=2) + "\n"
    )
    return scores


def format_table(scores: dict[str, dict[str, float]]) -> str:
    lines = [f"{'setting':<24}{'measure':<10}{'x100':>8}"]
    for setting, values in scores.items():
        lines += [f"{setting:<24}{name:<10}{100 * value:>8.2f}" for name, value in values.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.repro", description=__doc__.split("\n\n")[0]
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
        )
        return f"{format_table(scores)}\nscores and runs under {args.out}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
