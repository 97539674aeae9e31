"""The main job: encode SciFact once, search it with and without instructions, print the scores.

With ``--all`` or record names it instead reruns the reproduction records (``qpr_pyserini/repro/yaml``,
see :mod:`qpr_pyserini.repro.records`) and prints one ``OK`` / ``FAIL`` line per score.

``python -m qpr_pyserini.repro`` reproduces all-MiniLM-L6-v2 on BEIR SciFact test (MTEB: nDCG@10 64.51) and
searches the same collection under the SciFact-stance instructions (og, changed, matching) with p-MRR.
Every artefact (index, runs, scores.json) lands under ``--out``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qpr_pyserini.encode.corpus_index import encode_or_reuse
from qpr_pyserini.eval.metrics import evaluate, pmrr
from qpr_pyserini.io.corpus import corpus_fingerprint
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.search.searcher import search_topics

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


def _index_for(corpus: Path, out: Path, model: DenseEncoder, batch_size: int) -> Path:
    """The index of ``corpus`` under ``out``, named by its content: SciFact-stance's corpus is SciFact's, so both
    settings search one index, encoded once."""
    folder = out / f"index-{corpus_fingerprint(corpus)[:12]}"
    return encode_or_reuse(corpus, folder, model=model, replace=True, batch_size=batch_size)


def run(
    data: Path,
    out: Path,
    encoder: str,
    batch_size: int,
    hits: int,
    device: str,
    backend: str = "torch",
    command: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Encode, search and score; ``command`` (the arguments as typed) goes into scores.json's provenance."""
    scifact, stance = data / "scifact", data / "scifact-stance" / "test"
    for needed in (scifact / "corpus.jsonl", stance / "queries.jsonl"):
        if not needed.is_file():
            raise InputError(
                str(needed), "missing: point --data at the shared data folder (scifact, scifact-stance)"
            )
    model = DenseEncoder.load(resolve_encoder(encoder), device, backend)
    runs = out / "runs"
    scores: dict[str, dict[str, float]] = {}

    index = _index_for(scifact / "corpus.jsonl", out, model, batch_size)
    qrels = read_qrels(scifact / "qrels" / "test.tsv")
    topics = [t for t in read_topics(scifact / "queries.jsonl") if t.qid in qrels]
    run_path = runs / "scifact-test.trec"
    search_topics(index, topics, run_path, hits=hits, batch_size=batch_size, model=model, progress=False)
    scores["scifact-test"] = evaluate(qrels, read_run(run_path), ["nDCG@10", "R@100", "RR@10"])

    index = _index_for(stance / "corpus.jsonl", out, model, batch_size)
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
        json.dumps(
            {
                "provenance": provenance(Path(__file__).resolve().parents[2], command),
                "encoder": model.config.to_dict(),
                "scores": scores,
            },
            indent=2,
        )
        + "\n"
    )
    return scores


def format_table(scores: dict[str, dict[str, float]]) -> str:
    lines = [f"{'setting':<24}{'measure':<10}{'x100':>8}"]
    for setting, values in scores.items():
        lines += [f"{setting:<24}{name:<10}{100 * value:>8.2f}" for name, value in values.items()]
    return "\n".join(lines)
