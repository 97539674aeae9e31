"""ANN index types against flat: recall@100, queries/s and memory (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_ann.py [--index ../out/indexes/scifact-minilm] [--data ../shared/data/scifact]
        [--synthetic 200000]
        [--queries 1000] [--hits 100] [--threads 1]

Two sets of vectors, each searched as a flat index (in memory and memory-mapped) and as the HNSW and IVF-PQ
indexes `python -m qpr_pyserini.index convert` builds from it (its defaults, plus wider search settings):

  scifact    the MiniLM SciFact index (5,183 passages, 384-d; read only, converted into a temporary folder)
             and the 300 SciFact test queries, encoded by the index's recorded encoder; also nDCG@10
  synthetic  N random-but-clustered unit vectors (384-d, N/200 Gaussian clusters) and as many queries as
             --queries drawn the same way: large enough for the ANN speed-up to show

Per index: recall@100 against the flat top 100 (mean overlap of the two top-100 sets), queries/s (faiss search
of the encoded queries in one batch, best of 3, --threads faiss threads), the index file's size, the growth of
the resident memory of a fresh process loading it and then searching the queries (memory-mapped pages count
once touched), and the build time (convert). Ratios are against flat in
memory. Writes benchmarks/results/ann.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qpr_pyserini.eval.metrics import evaluate
from qpr_pyserini.index.ann import convert_index, set_search_parameters
from qpr_pyserini.index.store import IndexWriter, load_index
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.model.encoder import DenseEncoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
RESULTS = ROOT / "benchmarks" / "results" / "ann.json"
DIMENSION = 384


def scifact_queries(index: Path, data: Path) -> tuple[np.ndarray, list[str], dict]:
    qrels = read_qrels(data / "qrels" / "test.tsv")
    topics = [t for t in read_topics(data / "queries.jsonl") if t.qid in qrels]
    model = DenseEncoder.load(load_index(index, mmap=True).encoder)
    return model.embed_queries([t.query for t in topics]), [t.qid for t in topics], qrels


def clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around count/200 random centres (the same centres for every seed's draw)."""
    centres = np.random.default_rng(0).standard_normal((max(count // 200, 1), DIMENSION)).astype(np.float32)
    rng = np.random.default_rng(seed)
    vectors = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.standard_normal(
        (count, DIMENSION), dtype=np.float32
    )
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def write_flat(folder: Path, vectors: np.ndarray) -> Path:
    with IndexWriter(folder, DIMENSION, None) as writer:
        for start in range(0, len(vectors), 65_536):
            chunk = vectors[start : start + 65_536]
            writer.add([f"s{start + i}" for i in range(len(chunk))], chunk)
    return folder


MEMORY = """
import json, sys, numpy as np, psutil
from qpr_pyserini.index import set_search_parameters
from qpr_pyserini.index import load_index
folder, mmap, queries, hits, settings = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4]), sys.argv[5]
queries = np.load(queries)
process = psutil.Process()
before = process.memory_info().rss
dense = load_index(folder, mmap=mmap)
loaded = process.memory_info().rss
set_search_parameters(dense.faiss_index, folder, **json.loads(settings))
dense.faiss_index.search(queries, hits)
print(json.dumps({"load": (loaded - before) / 2**20, "search": (process.memory_info().rss - before) / 2**20}))
"""


def memory(folder: Path, queries: Path, hits: int, mmap: bool, settings: dict[str, int]) -> dict[str, float]:
    """Resident memory growth (MiB) of a fresh process loading the index, and after searching the queries."""
    argv = [str(folder), "1" if mmap else "0", str(queries), str(hits), json.dumps(settings)]
    done = subprocess.run([sys.executable, "-c", MEMORY, *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(
    folder: Path,
    queries: np.ndarray,
    hits: int,
    workdir: Path,
    *,
    mmap: bool = False,
    settings: dict[str, int] | None = None,
) -> dict[str, Any]:
    dense = load_index(folder, mmap=mmap)
    set_search_parameters(dense.faiss_index, folder, **(settings or {}))
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        scores, rows = dense.faiss_index.search(queries, hits)
        seconds.append(time.perf_counter() - start)
    np.save(workdir / "queries.npy", queries)
    used = memory(folder, workdir / "queries.npy", hits, mmap, settings or {})
    return {
        "rows": rows,
        "scores": scores,
        "docids": dense.docids,
        "queries_per_s": len(queries) / min(seconds),
        "index_file_mib": (folder / "index").stat().st_size / 2**20,
        "load_rss_growth_mib": used["load"],
        "search_rss_growth_mib": used["search"],
    }


def compare(
    name: str,
    folder: Path,
    queries: np.ndarray,
    hits: int,
    workdir: Path,
    qrels: dict | None,
    qids: list[str] | None,
) -> list[dict[str, Any]]:
    """Flat (in memory, mmap) and the converted types with their default and wider search settings."""
    timed = {}
    for kind in ("hnsw", "ivfpq"):
        start = time.perf_counter()
        convert_index(folder, workdir / f"{name}-{kind}", kind)
        timed[kind] = time.perf_counter() - start
    ivf = faiss.extract_index_ivf(load_index(workdir / f"{name}-ivfpq", mmap=True).faiss_index)
    variants = [
        ("flat", folder, {"mmap": False}),
        ("flat --mmap", folder, {"mmap": True}),
        ("hnsw (efSearch 128)", workdir / f"{name}-hnsw", {}),
        ("hnsw (efSearch 512)", workdir / f"{name}-hnsw", {"settings": {"ef_search": 512}}),
        (f"ivfpq (nprobe {ivf.nprobe})", workdir / f"{name}-ivfpq", {}),
        (
            f"ivfpq (nprobe {4 * ivf.nprobe})",
            workdir / f"{name}-ivfpq",
            {"settings": {"nprobe": 4 * ivf.nprobe}},
        ),
    ]
    factories = {
        kind: load_index(workdir / f"{name}-{kind}", mmap=True).record["ann"]["factory"] for kind in timed
    }
    rows_out, reference = [], None
    for label, path, options in variants:
        result = measure(path, queries, hits, workdir, **options)
        if reference is None:
            reference = result
        overlap = [
            len(set(a[a >= 0]) & set(b[b >= 0])) / hits
            for a, b in zip(result["rows"], reference["rows"], strict=True)
        ]
        kind = label.split()[0]
        row = {
            "set": name,
            "index": label,
            "factory": factories.get(kind, "Flat"),
            "recall_at_100_vs_flat": float(np.mean(overlap)),
            "queries_per_s": result["queries_per_s"],
            "speedup_vs_flat": result["queries_per_s"] / reference["queries_per_s"],
            "index_file_mib": result["index_file_mib"],
            "size_vs_flat": result["index_file_mib"] / reference["index_file_mib"],
            "load_rss_growth_mib": result["load_rss_growth_mib"],
            "load_and_search_rss_growth_mib": result["search_rss_growth_mib"],
            "build_s": timed.get(kind),
        }
        if qrels is not None and qids is not None:
            run = {
                qid: {result["docids"][r]: float(s) for r, s in zip(rr, ss, strict=True) if r >= 0}
                for qid, rr, ss in zip(qids, result["rows"], result["scores"], strict=True)
            }
            row["ndcg_at_10"] = evaluate(qrels, run, ["nDCG@10"])["nDCG@10"]
        rows_out.append(row)
        print_row(row)
    return rows_out


def print_row(row: dict[str, Any]) -> None:
    build = "" if row["build_s"] is None else f"{row['build_s']:8.1f}"
    ndcg = f"{row['ndcg_at_10']:7.4f}" if "ndcg_at_10" in row else "      -"
    print(
        f"{row['set']:10} {row['index']:22} {row['recall_at_100_vs_flat']:9.4f} {row['queries_per_s']:10.1f} "
        f"{row['speedup_vs_flat']:8.2f} {row['index_file_mib']:9.1f} {row['size_vs_flat']:6.3f} "
        f"{row['load_rss_growth_mib']:9.1f} {row['load_and_search_rss_growth_mib']:9.1f} {build:>8} {ndcg}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=ROOT.parent / "out" / "indexes" / "scifact-minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SciFact in BEIR layout")
    parser.add_argument("--synthetic", type=int, default=200_000, help="synthetic vectors (0: skip)")
    parser.add_argument("--queries", type=int, default=1000, help="synthetic queries")
    parser.add_argument("--hits", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="faiss threads (build and search)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    header = (
        f"{'set':10} {'index':22} {'recall@' + str(args.hits):>9} {'queries/s':>10} {'x flat':>8} "
        f"{'file MiB':>9} {'x flat':>6} {'load MiB':>9} {'+search':>9} {'build s':>8} nDCG@10"
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ann-") as tmp:
        workdir = Path(tmp)
        print(header, flush=True)
        if (args.index / "index").is_file() and (args.data / "queries.jsonl").is_file():
            queries, qids, qrels = scifact_queries(args.index, args.data)
            rows += compare("scifact", args.index, queries, args.hits, workdir, qrels, qids)
        else:
            print(f"skipping scifact: {args.index} or {args.data} is missing", file=sys.stderr)
        if args.synthetic:
            flat = write_flat(workdir / "synthetic-flat", clustered(args.synthetic, seed=1))
            rows += compare(
                "synthetic", flat, clustered(args.queries, seed=2), args.hits, workdir, None, None
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    config = {
        "hits": args.hits,
        "threads": args.threads,
        "synthetic_vectors": args.synthetic,
        "synthetic_queries": args.queries,
        "scifact_index": str(args.index),
        "faiss": faiss.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    result = {"provenance": provenance(ROOT), "config": config, "results": rows}
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
