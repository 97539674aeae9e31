"""sentence-transformers as a peer process for bench_whole_process.py: export a backend's model, or encode.

    python benchmarks/st_encode.py export --model PATH --backend onnx-O3 --folder DIR
    python benchmarks/st_encode.py encode --folder DIR --backend onnx-O3 --corpus C --batch-size 32 --output V.npy

Backends: ``torch``, ``onnx`` (ST's ONNX export through Optimum), ``onnx-O3`` (the same, then
``export_optimized_onnx_model(model, "O3")``: ONNX Runtime's transformer fusions, ST's fastest documented ONNX
form for a CPU), ``openvino`` (OpenVINO at its default precision, which is bf16 on CPUs with bf16 units) and
``openvino-f32`` (the same model with ``ov_config={"INFERENCE_PRECISION_HINT": "f32"}``: fp32, as ours pins it). ``export`` saves the model in the form ``encode`` loads, so that the timed
``encode`` process does no export (as our own backends' exports are cached before timing). ONNX and OpenVINO
need Optimum, whose exporters pin transformers < 4.58: run this with PYTHONPATH at a folder holding those
(benchmarks/README.md says how to make one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

MAX_LENGTH = 256
O3_FILE = "model_O3.onnx"


def st_backend(backend: str) -> str:
    return backend.split("-")[0]


def export(model: str, backend: str, folder: Path) -> None:
    st = SentenceTransformer(model, device="cpu", backend=st_backend(backend))
    st.save_pretrained(str(folder))
    if backend == "onnx-O3":
        from sentence_transformers import export_optimized_onnx_model

        export_optimized_onnx_model(st, "O3", str(folder))


def encode(folder: Path, backend: str, corpus: Path, batch_size: int, output: Path) -> None:
    kwargs = {}
    if backend == "onnx-O3":
        kwargs = {"model_kwargs": {"file_name": f"onnx/{O3_FILE}"}}
    elif backend == "openvino-f32":
        kwargs = {"model_kwargs": {"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}}}
    st = SentenceTransformer(str(folder), device="cpu", backend=st_backend(backend), **kwargs)
    st.max_seq_length = MAX_LENGTH
    records = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    texts = [f"{r['title']} {r['text']}" for r in records]
    vectors = st.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    np.save(output, np.asarray(vectors, dtype=np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["export", "encode"])
    parser.add_argument("--model", help="model folder to export (export)")
    parser.add_argument("--backend", required=True, choices=["torch", "onnx", "onnx-O3", "openvino", "openvino-f32"])
    parser.add_argument("--folder", type=Path, required=True, help="the exported model folder")
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        export(args.model, args.backend, args.folder)
    else:
        encode(args.folder, args.backend, args.corpus, args.batch_size, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
