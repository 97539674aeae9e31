#!/usr/bin/env bash
# sentence-transformers' own ONNX and OpenVINO backends need Optimum, whose exporters pin transformers < 4.58
# (and so huggingface_hub < 1, and a datasets/httpx that work with it), while pyserini 2.4 needs transformers 5.
# This puts that older stack in a folder of its own, without touching .venv: bench_whole_process.py runs ST's
# onnx/openvino peers with PYTHONPATH at it (torch, onnxruntime, openvino and ST itself come from .venv).
#   bash benchmarks/setup_st_peers.sh [DIR]     (default benchmarks/.st-peers; then --st-path DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-benchmarks/.st-peers}"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$target" \
  optimum==2.1.0 optimum-onnx==0.1.0 optimum-intel==1.27.0 transformers==4.57.6 huggingface_hub==0.36.2 \
  tokenizers==0.22.2 datasets==4.3.0 httpx==0.28.1 httpcore==1.0.9
echo "$target"
