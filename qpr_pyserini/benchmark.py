"""Run a benchmark the way it defines itself (``python -m qpr_pyserini.benchmark``): FollowIR, InstructIR, BEIR.

- FollowIR: rerank each query's ``top_ranked`` list (full retrieval when the set has none, as SciFact-stance)
  under the original and the changed instruction; the standard score on the og run (MAP@1000 for Robust04 and
  Core17, nDCG@5 for News21, else nDCG@10) and p-MRR.
- InstructIR: full retrieval with each instance's instruction; nDCG@10 and Robustness@10.
- BEIR: full retrieval of the judged queries; nDCG@10.

Writes the TREC runs (``runs/``), ``scores.json`` and, with ``--mteb-results``, MTEB's results layout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .cli import add_encoder_options, add_output_options, run_cli
from .encode import encode_corpus
from .index import INDEX_FILE, DenseIndex, load_index
from .io.benchmarks import CHANGED, INSTRUCTION, OG, SUITES, Benchmark, load_benchmark
from .io.corpus import iter_corpus
from .io.errors import InputError
from .io.runs import atomic_output, read_run
from .metrics import evaluate, pmrr, robustness
from .presets import DEFAULT_ENCODER
from .search import check_positive, query_encoder_for, search_topics

# FollowIR's standard score per set (the FollowIR paper, Table 2); every other set reports nDCG@10.
STANDARD_MEASURES = {"robust04": "MAP@1000", "core17": "MAP@1000", "news21": "nDCG@5"}
# The cut-offs MTEB reports for retrieval tasks (AbsTaskRetrieval.k_values), for the MTEB export.
MTEB_CUTOFFS = (1, 3, 5, 10, 20, 100, 1000)
MTEB_MEASURES = [f"{m}@{k}" for m in ("nDCG", "AP", "R", "P") for k in MTEB_CUTOFFS]


def standard_measure(suite: str, dataset: str) -> str:
    """The measure a set is ranked by besides p-MRR / Robustness@10."""
    if suite == "followir":
        return next((m for key, m in STANDARD_MEASURES.items() if key in dataset.lower()), "nDCG@10")
    return "nDCG@10"


def run_benchmark(
    suite: str,
    data: str | Path,
    output: str | Path,
    *,
    encoder: str | None = None,
    index: str | Path | None = None,
    template: str | None = None,
    hits: int = 1000,
    batch_size: int = 32,
    device: str = "cpu",
    split: str = "test",
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``suite`` on ``data`` and write runs and ``scores.json`` under ``output``; returns the scores record.

    ``index``: an index of the benchmark's corpus to reuse; absent, the corpus is encoded into it (default
    ``output/index``). The query encoder is ``encoder``, else the index's.
    """
    started = time.monotonic()
    check_positive(hits=hits, batch_size=batch_size)  # before any encoding
    out = Path(output)
    bench = load_benchmark(suite, data, out / "data", split)
    index_path = Path(index) if index is not None else out / "index"
    dense = _index_for(bench, index_path, encoder, batch_size, device, progress)
    model = query_encoder_for(dense, encoder, template, device)
    candidates = _write_candidates(bench, out / "top_ranked.jsonl") if bench.candidates is not None else None

    runs: dict[str, str] = {}

    def search(kind: str, field: str | None) -> dict[str, dict[str, float]]:
        path = out / "runs" / f"{bench.name}-{kind}.trec"
        search_topics(
            dense,
            bench.topics,
            path,
            instruction_field=field,
            hits=hits,
            batch_size=batch_size,
            candidates=candidates,
            progress=progress,
            model=model,
        )
        runs[kind] = str(path.relative_to(out))
        return read_run(path)

    measure = standard_measure(suite, bench.name)
    if suite == "followir":
        run_og, run_changed = search("og", OG), search("changed", CHANGED)
        main = {
            "p-MRR": pmrr(bench.qrels["og"], bench.qrels["changed"], run_og, run_changed).score,
            measure: evaluate(bench.qrels["og"], run_og, [measure], missing="skip")[measure],
        }
        measures = {
            "og": _mteb_measures(bench.qrels["og"], run_og),
            "changed": _mteb_measures(bench.qrels["changed"], run_changed),
            "all": _mteb_measures(
                _suffixed({"og": bench.qrels["og"], "changed": bench.qrels["changed"]}),
                _suffixed({"og": run_og, "changed": run_changed}),
            ),
        }
    else:
        with_instruction = suite == "instructir" and INSTRUCTION in bench.topics[0].fields
        run = search("test", INSTRUCTION if with_instruction else None)
        main = (
            robustness(bench.qrels["test"], run, missing="skip")
            if suite == "instructir"
            else {measure: evaluate(bench.qrels["test"], run, [measure], missing="skip")[measure]}
        )
        measures = {"all": _mteb_measures(bench.qrels["test"], run)}
    record = {
        "suite": suite,
        "dataset": bench.name,
        "source": bench.source,
        "split": split,
        "encoder": model.config.to_dict(),
        "dimension": model.dimension,
        "index": str(index_path),
        "hits": hits,
        "mode": "rerank top_ranked" if candidates is not None else "full retrieval",
        "queries": len(bench.topics),
        "main": main,
        "measures": measures,
        "runs": runs,
        "evaluation_time": round(time.monotonic() - started, 1),
    }
    with atomic_output(out / "scores.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _index_for(
    bench: Benchmark, path: Path, encoder: str | None, batch_size: int, device: str, progress: bool
) -> DenseIndex:
    """The index at ``path``, checked to hold exactly the benchmark's corpus; encoded there if absent."""
    if not (path / INDEX_FILE).is_file():
        encode_corpus(
            bench.corpus,
            path,
            encoder or DEFAULT_ENCODER,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
    dense = load_index(path)
    corpus_ids = {doc.docid for doc in iter_corpus(bench.corpus)}
    if corpus_ids != set(dense.docids):
        missing = len(corpus_ids - set(dense.docids))
        raise InputError(
            str(path),
            f"is not an index of {bench.corpus} ({len(dense.docids)} docs indexed, {len(corpus_ids)} in the "
            f"corpus, {missing} of them not indexed)",
        )
    return dense


def _write_candidates(bench: Benchmark, path: Path) -> Path:
    """The ``top_ranked`` lists as FollowIR JSONL for rerank mode; every query must have one."""
    assert bench.candidates is not None
    absent = [t.qid for t in bench.topics if not bench.candidates.get(t.qid)]
    if absent:
        raise InputError(bench.source, f"{len(absent)} queries have no top_ranked list (first: {absent[0]})")
    with atomic_output(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        for topic in bench.topics:
            out.write(json.dumps({"qid": topic.qid, "pid": bench.candidates[topic.qid]}) + "\n")
    return path


def _mteb_measures(qrels: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, float]:
    return evaluate(qrels, run, MTEB_MEASURES, missing="skip")


def _suffixed(by_kind: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """MTEB's union of FollowIR's two query sets: ids ``<id>-og`` and ``<id>-changed``."""
    return {f"{qid}-{kind}": value for kind, items in by_kind.items() for qid, value in items.items()}


def format_scores(record: Mapping[str, Any]) -> str:
    lines = [f"{record['suite']} {record['dataset']} ({record['queries']} queries, {record['mode']})"]
    lines += [f"  {name:<16}{100 * value:>8.2f}" for name, value in record["main"].items()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.benchmark",
        description=__doc__.split("\n\n")[0],
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
        )
        message = [format_scores(record), f"runs and scores.json under {args.output}"]
        if args.mteb_results is not None:
            from .mteb_export import export_results

            written = export_results([record], args.mteb_results, args.model_name, args.model_revision)
            message.append(f"MTEB results: {', '.join(str(p) for p in written)}")
        if args.plot is not None:
            from .score_plot import plot_scores

            records = [record, *(json.loads(path.read_text()) for path in args.compare)]
            plot_scores(records, args.plot)
            message.append(f"plot: {args.plot}")
        return "\n".join(message)

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
