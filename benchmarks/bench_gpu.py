"""GPU check for a session that has the `device` machine (one GPU, ~15 minutes, no internet): fp16/bf16
encoding against Pyserini on the same GPU, faiss-gpu search, and bf16 training-step throughput.

    .venv/bin/python benchmarks/bench_gpu.py [--docs 5183] [--batch-size 128] [--train-steps 10] [--data DIR]

Prepared, not yet run (no GPU was lent to the session that wrote it). Everything runs in this process, one
tool after another, on the same inputs; ratios are ours / peer. Parts:

1. Encoding the first --docs SciFact documents on cuda: qpr_pyserini (encode_corpus with the minilm preset at
   dtype float32, float16 and bfloat16) against Pyserini's AutoDocumentEncoder driven like its CLI (fp32, and
   its --fp16 autocast), docs/s, and each variant's minimum cosine to our fp32 vectors.
2. Search, the 300 SciFact test queries, top 1000, over our fp32 index: faiss on the CPU against faiss-gpu
   (search_topics(faiss_device="cuda")), queries/s, top-10 overlap. Needs faiss-gpu (extra qpr_pyserini[gpu]).
3. Training steps (bench_train's batches: 8 queries x 4 passages, 64/256 tokens): ours full mode, QPR off and
   on, and ST MNRL, fp32 and under torch.autocast(bfloat16); median s/step after one warm-up step.

Writes benchmarks/results/gpu.json. Budget: about 3 minutes on an H100 at the defaults.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_encode_search as es  # noqa: E402
import bench_train as bt  # noqa: E402
from sentence_transformers.losses import MultipleNegativesRankingLoss  # noqa: E402

from qpr_pyserini.encode.corpus_index import encode_corpus  # noqa: E402
from qpr_pyserini.index.store import load_index  # noqa: E402
from qpr_pyserini.model.encoder import DenseEncoder  # noqa: E402
from qpr_pyserini.presets import resolve_encoder  # noqa: E402
from qpr_pyserini.search.searcher import search_topics  # noqa: E402
from qpr_pyserini.train.trainer import GroupCollator  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gpu.json"
DEVICE = "cuda"  # --device cpu: a quick smoke test of this script without a GPU


def synced(run, arg):  # noqa: ANN001, ANN201
    """``run(arg)`` with the GPU's queue drained before and after, so wall time covers the GPU work."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    result = run(arg)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return result


def to_device(value):  # noqa: ANN001, ANN201
    """Tensors (inside dicts and lists too) moved to DEVICE."""
    if isinstance(value, dict):
        return {key: to_device(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_device(item) for item in value]
    return value.to(DEVICE) if torch.is_tensor(value) else value


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def bench_encoding(corpus: Path, warmup: Path, work: Path, batch: int) -> tuple[list[dict], Path]:
    ours = {
        dtype: DenseEncoder.load(resolve_encoder("minilm", dtype=dtype), DEVICE)
        for dtype in ("float32", "float16", "bfloat16")
    }
    pyserini = es.AutoDocumentEncoder(es.MODEL_PATH, device=DEVICE, pooling="mean", l2_norm=True)

    def run_ours(model: DenseEncoder, c: Path) -> Path:
        return encode_corpus(c, es.fresh_dir(work) / "index", batch_size=batch, progress=False, model=model)

    def run_pyserini(c: Path, fp16: bool) -> Path:
        out = es.fresh_dir(work) / "index"
        writer = es.FaissRepresentationWriter(str(out), dimension=es.DIMENSION)
        with writer:  # its __enter__ returns None
            for rows in es.JsonlCollectionIterator(str(c), ["title", "text"])(batch, 0, 1):
                rows["vector"] = pyserini.encode(
                    texts=rows["text"],
                    titles=rows["title"],
                    fp16=fp16,
                    max_length=es.MAX_LENGTH,
                    add_sep=False,
                )
                writer.write(rows, ["title", "text"])
        return out

    tools: es.Tools = {
        f"qpr_pyserini {dtype}": (
            f"encode_corpus(model=DenseEncoder(minilm, dtype={dtype}) on {DEVICE}, batch_size={batch})",
            lambda c, m=model: synced(partial(run_ours, m), c),
        )
        for dtype, model in ours.items()
    }
    tools["pyserini fp32"] = (
        "AutoDocumentEncoder, its CLI's loop",
        lambda c: synced(partial(run_pyserini, fp16=False), c),
    )
    tools["pyserini fp16"] = (
        "the same with fp16=True (its --fp16)",
        lambda c: synced(partial(run_pyserini, fp16=True), c),
    )
    timings, results = es.time_tools(tools, warmup, corpus, 1)
    reference = load_index(results["qpr_pyserini float32"])
    rows = es.rows_with_ratios(timings, "docs", len(reference.docids))
    for row in rows:
        row["min_cosine_vs_ours_fp32"] = cosine_min(
            load_index(results[row["tool"]]).vectors(), reference.vectors()
        )
    return rows, reference.path


def bench_search(index: Path, topics: list, work: Path, batch: int) -> tuple[list[dict], float]:
    """-> (rows, top-10 overlap of the faiss-gpu run with the CPU one)."""
    model = DenseEncoder.load(resolve_encoder("minilm"), DEVICE)
    dense = load_index(index)

    def run(queries: list, faiss_device: str) -> Path:
        out = es.fresh_dir(work) / "run.trec"
        search_topics(
            dense,
            queries,
            out,
            hits=es.HITS,
            batch_size=batch,
            progress=False,
            model=model,
            faiss_device=faiss_device,
        )
        return out

    tools: es.Tools = {
        f"faiss {device}": (
            f"search_topics(faiss_device={device!r}, batch_size={batch}), queries encoded on {DEVICE}",
            lambda q, d=device: synced(partial(run, faiss_device=d), q),
        )
        for device in ("cpu", "cuda")
    }
    timings, runs = es.time_tools(tools, topics[: es.WARMUP_QUERIES], topics, 1)
    return es.rows_with_ratios(timings, "queries", len(topics)), es.top10_overlap(
        runs["faiss cpu"], runs["faiss cuda"]
    )


def bench_training(data: Path, steps: int, passage_len: int) -> list[dict]:
    """Median s/step of ST MNRL and ours (QPR off/on), fp32 then bf16 autocast, one warm-up step each."""
    batches = bt.load_batches(data, steps + 1, 8, 4)
    st = bt.SentenceTransformer(bt.MODEL_PATH, device=DEVICE).train()
    mnrl = MultipleNegativesRankingLoss(st, scale=20.0)
    off, on = (bt.ours_model(64, passage_len, weight, 0.05).to(DEVICE) for weight in (0.0, 1.0))
    encoder = off.encoder
    setups = {
        "ST MNRL": (
            partial(bt.st_step, mnrl, torch.optim.AdamW(st.parameters(), lr=2e-5)),
            [to_device(bt.st_features(st, encoder, g, 64, passage_len)) for g in batches],
        ),
        "ours full, QPR off": (
            partial(bt.ours_step, off, torch.optim.AdamW(off.parameters(), lr=2e-5)),
            [to_device(GroupCollator(encoder.text, originals=False)(g)) for g in batches],
        ),
        "ours full, QPR on": (
            partial(bt.ours_step, on, torch.optim.AdamW(on.parameters(), lr=2e-5)),
            [to_device(GroupCollator(encoder.text, originals=True)(g)) for g in batches],
        ),
    }
    precisions = {"fp32": contextlib.nullcontext, "bf16": partial(torch.autocast, DEVICE, torch.bfloat16)}
    rows = []
    for precision, context in precisions.items():
        for name, (step, prepared) in setups.items():
            seconds = []
            for batch in prepared:
                with context():
                    start = time.perf_counter()
                    synced(step, batch)
                    seconds.append(time.perf_counter() - start)
            median = statistics.median(seconds[1:])
            rows.append({"tool": f"{name} {precision}", "s_per_step": median, "samples_per_s": 8 / median})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5183, help="SciFact documents to encode (default: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=10, help="timed steps per setup (0: no training)")
    parser.add_argument("--passage-max-length", type=int, default=256, help="training passage tokens")
    parser.add_argument("--data", type=Path, default=es.DEFAULT_DATA.parent, help="the shared data folder")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a smoke test")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU")
    gpu = torch.cuda.get_device_name() if DEVICE == "cuda" else "none (smoke test on the CPU)"
    result = {"gpu": gpu, "torch": torch.__version__, "docs": args.docs}
    with tempfile.TemporaryDirectory(prefix="qpr-bench-gpu-") as tmp:
        work = Path(tmp)
        corpus, warmup, topics = es.load_data(args.data / "scifact", args.docs, work)
        result["encoding"], index = bench_encoding(corpus, warmup, work, args.batch_size)
        es.print_table("Encoding on the GPU", result["encoding"], "docs")
        try:
            result["search"], result["search_top10_overlap"] = bench_search(
                index, topics, work, args.batch_size
            )
            es.print_table("Search: faiss CPU vs faiss-gpu", result["search"], "queries")
        except ValueError as err:  # no faiss-gpu: InputError naming the extra
            result["search"] = str(err)
            print(f"search skipped: {err}")
    if args.train_steps:
        train_data = args.data / "scifact-stance" / "train"
        result["training"] = bench_training(train_data, args.train_steps, args.passage_max_length)
    for row in result.get("training", []):
        print(f"{row['tool']:<28} {row['s_per_step']:.3f} s/step  {row['samples_per_s']:.1f} samples/s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
