"""What an opt-in lower precision costs in retrieval quality: SciFact test nDCG@10 / R@100 of each backend against
fp32 torch, the whole corpus encoded and searched by qpr_pyserini's own API.

    .venv/bin/python benchmarks/precision_quality.py [--backends openvino-bf16,onnx-int8] [--data DIR] \
        [--reference-index DIR] [--work DIR] [--output benchmarks/results/precision_quality.json]

For each backend B: the 5,183 abstracts encoded with ``--backend B`` (minilm preset), then the 300 test queries
searched twice over that index, with queries encoded on B and on torch (fp32). The reference is the fp32 index
that ``--backend torch`` writes (built here unless --reference-index names one) searched with torch queries.
Also: the cosine of each passage vector with its fp32 counterpart. The issue's budget: nDCG@10 within 0.5 points
of fp32.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.eval.metrics import evaluate
from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.search.searcher import search_topics

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
RESULTS = ROOT / "benchmarks" / "results" / "precision_quality.json"
MEASURES = ["nDCG@10", "R@100"]
BUDGET_POINTS = 0.5


def test_topics(data: Path, work: Path) -> Path:
    """The queries judged in qrels/test.tsv as qid<TAB>query."""
    judged = {line.split("\t")[0] for line in (data / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    records = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines() if line.strip()]
    topics = work / "topics.tsv"
    topics.write_text("".join(f"{r['_id']}\t{' '.join(r['text'].split())}\n" for r in records if r["_id"] in judged))
    return topics


def scores(index: Path, topics: Path, qrels: dict, backend: str, run: Path) -> dict[str, float]:
    search_topics(index, topics, run, backend=backend, progress=False)
    return {name: round(100 * value, 2) for name, value in evaluate(qrels, read_run(run), MEASURES).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="openvino-bf16,onnx-int8", help="lower-precision backends")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"SciFact folder (default {DEFAULT_DATA})")
    parser.add_argument("--reference-index", type=Path, help="an fp32 minilm index of the corpus (torch)")
    parser.add_argument("--work", type=Path, help="keep the indexes and runs here (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"SciFact not found at {args.data} (pass --data)")
    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="qpr-precision-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        topics, qrels = test_topics(args.data, work), read_qrels(args.data / "qrels" / "test.tsv")
        corpus = args.data / "corpus.jsonl"
        reference = args.reference_index or encode_corpus(corpus, work / "index-torch", "minilm", progress=False)
        fp32 = load_index(reference)
        results = {"fp32 (torch passages, torch queries)": scores(reference, topics, qrels, "torch", work / "fp32.trec")}
        cosines = {}
        for backend in [b for b in args.backends.split(",") if b]:
            index = encode_corpus(corpus, work / f"index-{backend}", "minilm", backend=backend, progress=False)
            low = load_index(index)
            if low.docids != fp32.docids:
                sys.exit(f"{backend} wrote the documents in another order")
            cosine = (low.vectors() * fp32.vectors()).sum(1)  # both L2-normalised
            cosines[backend] = {
                "mean": round(float(cosine.mean()), 6),
                "min": round(float(cosine.min()), 6),
                "percentile_1": round(float(np.percentile(cosine, 1)), 6),
            }
            results[f"{backend} passages, {backend} queries"] = scores(
                index, topics, qrels, backend, work / f"{backend}.trec"
            )
            results[f"{backend} passages, torch queries"] = scores(
                index, topics, qrels, "torch", work / f"{backend}-torch-queries.trec"
            )
    reference_ndcg = next(iter(results.values()))["nDCG@10"]
    changes = {
        name: round(row["nDCG@10"] - reference_ndcg, 2) for name, row in list(results.items())[1:]
    }
    result = {
        "provenance": provenance(ROOT),
        "what": "SciFact test (300 queries), all-MiniLM-L6-v2 (minilm preset), x100; every index of the whole "
        "corpus (5,183 abstracts) written by qpr_pyserini.encode_corpus with the backend named",
        "command": "python benchmarks/precision_quality.py " + " ".join(sys.argv[1:]),
        "results": results,
        "ndcg10_change_points": changes,
        "within_budget": {name: abs(change) <= BUDGET_POINTS for name, change in changes.items()},
        "passage_vector_cosine_vs_fp32": cosines,
        "taken": f"{started}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["results"], indent=1))
    print("nDCG@10 change (points):", changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
