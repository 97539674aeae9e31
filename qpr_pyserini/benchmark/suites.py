"""Run a benchmark the way it defines itself (``python -m qpr_pyserini.benchmark``): FollowIR, InstructIR, BEIR.

- FollowIR: rerank each query's ``top_ranked`` list (full retrieval when the set has none, as SciFact-stance)
  under the original and the changed instruction; the standard score on the og run (MAP@1000 for Robust04 and
  Core17, nDCG@5 for News21, else nDCG@10) and p-MRR.
- InstructIR: full retrieval with each instance's instruction; nDCG@10 and Robustness@10.
- BEIR: full retrieval of the judged queries; nDCG@10.

Writes the TREC runs (``runs/``), ``scores.json`` and, with ``--mteb-results``, MTEB's results layout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qpr_pyserini.encode.corpus_index import encode_or_reuse
from qpr_pyserini.eval.metrics import check_instance_ids, evaluate, pmrr, robustness
from qpr_pyserini.index.record import read_index_record, recorded_encoder
from qpr_pyserini.index.store import DenseIndex, load_index
from qpr_pyserini.io.benchmark_data import (
    CHANGED,
    FOLLOWIR_SETS,
    INSTRUCTION,
    OG,
    Benchmark,
    followir_set,
    load_benchmark,
)
from qpr_pyserini.io.errors import InputError, check_positive
from qpr_pyserini.io.runs import atomic_output, read_run
from qpr_pyserini.presets import DEFAULT_ENCODER
from qpr_pyserini.search.query_encoder import query_encoder_for
from qpr_pyserini.search.searcher import search_topics

# The cut-offs MTEB reports for retrieval tasks (AbsTaskRetrieval.k_values), for the MTEB export.
MTEB_CUTOFFS = (1, 3, 5, 10, 20, 100, 1000)
MTEB_MEASURES = [f"{m}@{k}" for m in ("nDCG", "AP", "R", "P") for k in MTEB_CUTOFFS]


def standard_measure(suite: str, dataset: str) -> str:
    """The measure a set is ranked by besides p-MRR / Robustness@10."""
    known = followir_set(dataset) if suite == "followir" else None
    return FOLLOWIR_SETS[known][1] if known else "nDCG@10"


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
    backend: str = "torch",
) -> dict[str, Any]:
    """Run ``suite`` on ``data`` and write runs and ``scores.json`` under ``output``; returns the scores record.

    ``index``: an index of the benchmark's corpus to reuse; absent, the corpus is encoded into it (default
    ``output/index``). The query encoder is ``encoder``, else the index's; ``backend`` runs both encoders (see
    qpr_pyserini.model.backends).
    """
    started = time.monotonic()
    check_positive(hits=hits, batch_size=batch_size)  # before any encoding
    out = Path(output)
    bench = load_benchmark(suite, data, out / "data", split)
    if suite == "instructir":  # Robustness@10 needs <base>_<n> ids: checked before any encoding
        try:
            check_instance_ids(bench.qrels["test"])
        except InputError as err:
            raise InputError(bench.source, err.reason) from None
    index_path = Path(index) if index is not None else out / "index"
    dense = _index_for(bench, index_path, encoder, batch_size, device, progress, backend)
    model = query_encoder_for(dense, encoder, template, device, backend=backend)
    candidates = _write_candidates(bench, out / "top_ranked.jsonl") if bench.candidates is not None else None

    runs: dict[str, str] = {}
    with _removed_on_failure(out, runs):  # a failed call leaves no runs that look like a finished benchmark's

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
        compared = None  # the queries p-MRR is over (it skips, with a warning, those it cannot compare)
        if suite == "followir":
            run_og, run_changed = search("og", OG), search("changed", CHANGED)
            following = pmrr(bench.qrels["og"], bench.qrels["changed"], run_og, run_changed)
            compared = len(following.per_query)
            main = {
                "p-MRR": following.score,
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
            **({"pmrr_queries": compared} if compared is not None else {}),
            "main": main,
            "measures": measures,
            "runs": runs,
            "evaluation_time": round(time.monotonic() - started, 1),
        }
        with atomic_output(out / "scores.json") as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
        return record


@contextmanager
def _removed_on_failure(out: Path, runs: dict[str, str]) -> Iterator[None]:
    """Remove the runs (``runs``: name -> path under ``out``) written in the block if it fails."""
    try:
        yield
    except BaseException:
        for run in runs.values():
            (out / run).unlink(missing_ok=True)
        raise


def _index_for(
    bench: Benchmark,
    path: Path,
    encoder: str | None,
    batch_size: int,
    device: str,
    progress: bool,
    backend: str,
) -> DenseIndex:
    """The index at ``path`` when it holds exactly the benchmark's corpus, encoded there if absent.

    Without ``encoder`` an existing index is taken with the encoder it records (else the default encoder).
    """
    recorded = read_index_record(path) if path.is_dir() else None
    chosen = encoder or (recorded_encoder(path) if recorded else None) or DEFAULT_ENCODER
    encode_or_reuse(
        bench.corpus, path, chosen, batch_size=batch_size, device=device, progress=progress, backend=backend
    )
    return load_index(path)


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
    compared = record.get("pmrr_queries", record["queries"])
    over = f"; p-MRR over {compared} of them" if compared != record["queries"] else ""
    lines = [f"{record['suite']} {record['dataset']} ({record['queries']} queries, {record['mode']}{over})"]
    lines += [f"  {name:<16}{100 * value:>8.2f}" for name, value in record["main"].items()]
    return "\n".join(lines)
