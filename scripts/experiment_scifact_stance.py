"""SciFact-stance experiment: does the query-preserving regularizer help all-MiniLM-L6-v2 follow instructions?

Three arms, each fine-tuned from all-MiniLM-L6-v2 on the SciFact-stance train split:
  plain        claims only (no instruction rows)
  promptriever claims + instruction rows (og and matching instructions; see docs/training-data.md)
  qpr          promptriever + the query-preserving regularizer (--qpr-weight)
scored on SciFact-stance test (p-MRR og vs changed; nDCG@10 under og, matching, no instruction) and on SciFact
test (nDCG@10), next to the untrained model. Every step is resumable: finished models and scores are reused.

    .venv/bin/python scripts/experiment_scifact_stance.py --mode query-side --seeds 1 2 3
    .venv/bin/python scripts/experiment_scifact_stance.py --mode full --seeds 1

Query-side mode trains only the query encoder against the fixed MiniLM index; full mode trains the shared
encoder (passages re-encoded in training) and re-indexes the corpus with each trained model to evaluate it.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
from pathlib import Path

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.eval.metrics import evaluate, pmrr
from qpr_pyserini.index.store import DenseIndex, load_index
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.io.training_data import write_training_data
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.search.searcher import search_topics
from qpr_pyserini.train.stance import build_stance_training_rows

ROOT = Path(__file__).resolve().parents[1]
ARMS = {"plain": ("plain",), "promptriever": ("plain", "og", "matching"), "qpr": ("plain", "og", "matching")}
COLUMNS = ["p-MRR", "nDCG@10 og", "nDCG@10 matching", "nDCG@10 none", "SciFact nDCG@10"]


def ensure_index(
    corpus: Path, folder: Path, encoder: str | EncoderConfig, max_length: int | None = None
) -> DenseIndex:
    config = resolve_encoder(encoder, passage_max_length=max_length)
    if folder.is_dir() and load_index(folder).encoder == config:
        return load_index(folder)
    return load_index(encode_corpus(corpus, folder, config, overwrite=True))


def build_rows(data: Path, index: DenseIndex, work: Path, depth: int) -> dict[str, Path]:
    """Mine hard negatives for the train claims with the untrained model, then write each arm's rows."""
    stance = data / "scifact-stance" / "train"
    mined = work / "mined-train.trec"
    if not mined.is_file():
        search_topics(index, stance / "queries.jsonl", mined, hits=depth, progress=False)
    negatives = {qid: sorted(hits, key=hits.get, reverse=True) for qid, hits in read_run(mined).items()}
    paths = {}
    for variants in set(ARMS.values()):
        path = work / f"rows-{'-'.join(variants)}.jsonl"
        if not path.is_file():
            write_training_data(
                path, build_stance_training_rows(stance, hard_negatives=negatives, variants=variants)
            )
        paths["-".join(variants)] = path
    return {arm: paths["-".join(variants)] for arm, variants in ARMS.items()}


def logged_strength(log: Path) -> list[dict[str, float]]:
    """The loss terms, gradient norm and the regularizer's strength at each logging step of a train.log."""
    keys = ("contrastive", "regularizer", "grad_norm", "qpr_cross_entropy", "qpr_uniform", "qpr_grad_share")
    steps = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        if line.startswith("{'loss'"):
            entry = ast.literal_eval(line)
            steps.append({k: float(entry[k]) for k in keys if k in entry})
    return steps


def logged_runtime(log: Path) -> float | None:
    """The Trainer's ``train_runtime`` (seconds) at the end of a train.log, None when it is not there."""
    for line in log.read_text().splitlines() if log.is_file() else []:
        if line.startswith("{'train_runtime'"):
            return float(ast.literal_eval(line)["train_runtime"])
    return None


def run_logged(command: list[str], log: Path) -> None:
    """Run a training command from the checkout with its output in ``log`` (read by ``logged_*``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        subprocess.run(command, check=True, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def train(arm: str, seed: int, rows: Path, out: Path, args: argparse.Namespace, index: Path) -> Path:
    if (out / "qpr_encoder.json").is_file():
        return out
    command = [
        sys.executable,
        "-m",
        "qpr_pyserini.train",
        "--encoder",
        "minilm",
        "--train-data",
        str(rows),
        "--output-dir",
        str(out),
        "--mode",
        args.mode,
        "--seed",
        str(seed),
        "--data-seed",
        str(seed),
        "--group-size",
        str(args.group_size),
        "--per-device-train-batch-size",
        str(args.batch_size),
        "--learning-rate",
        str(args.lr),
        "--num-train-epochs",
        str(args.epochs),
        "--warmup-steps",
        "0.1",
        "--temperature",
        str(args.temperature),
        "--qpr-weight",
        str(args.qpr_weight if arm == "qpr" else 0.0),
        "--save-strategy",
        "no",
        "--logging-steps",
        "10",
        "--report-to",
        "none",
    ]
    if args.mode == "query-side":
        command += ["--index", str(index)]
    else:
        command += ["--passage-max-length", str(args.passage_max_length)]
    run_logged(command, out.parent / "train.log")
    return out


def score(data: Path, encoder: DenseEncoder, index: DenseIndex, runs: Path) -> dict[str, float]:
    """The five numbers of one model: stance p-MRR and nDCG@10s, SciFact test nDCG@10."""
    stance = data / "scifact-stance" / "test"
    topics = read_topics(stance / "queries.jsonl")
    run = {}
    for name, field in [
        ("none", None),
        ("og", "instruction_og"),
        ("changed", "instruction_changed"),
        ("matching", "instruction_matching"),
    ]:
        search_topics(
            index,
            topics,
            runs / f"stance-{name}.trec",
            instruction_field=field,
            model=encoder,
            progress=False,
        )
        run[name] = read_run(runs / f"stance-{name}.trec")
    og, matching = read_qrels(stance / "qrels_og.tsv"), read_qrels(stance / "qrels_matching.tsv")
    scifact_qrels = read_qrels(data / "scifact" / "qrels" / "test.tsv")
    scifact_topics = [t for t in read_topics(data / "scifact" / "queries.jsonl") if t.qid in scifact_qrels]
    search_topics(index, scifact_topics, runs / "scifact-test.trec", model=encoder, progress=False)
    return {
        "p-MRR": pmrr(og, read_qrels(stance / "qrels_changed.tsv"), run["og"], run["changed"]).score,
        "nDCG@10 og": evaluate(og, run["og"], ["nDCG@10"])["nDCG@10"],
        "nDCG@10 matching": evaluate(matching, run["matching"], ["nDCG@10"])["nDCG@10"],
        "nDCG@10 none": evaluate(og, run["none"], ["nDCG@10"])["nDCG@10"],
        "SciFact nDCG@10": evaluate(scifact_qrels, read_run(runs / "scifact-test.trec"), ["nDCG@10"])[
            "nDCG@10"
        ],
    }


def scored(folder: Path, compute) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Cached scores of one model (``scores.json`` in its folder)."""
    path = folder / "scores.json"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(compute(), indent=2) + "\n")
    return json.loads(path.read_text())


def summary_table(results: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| arm | runs | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for arm, runs in results.items():
        cells = []
        for column in COLUMNS:
            values = [100 * r[column] for r in runs]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.fmean(values):.2f}{spread}")
        lines.append(f"| {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "experiment-scifact-stance")
    parser.add_argument("--mode", choices=["query-side", "full"], default="query-side")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument(
        "--temperature", type=float, default=0.05, help="MiniLM was trained at scale 20 = 1/0.05"
    )
    parser.add_argument("--qpr-weight", type=float, default=1.0)
    parser.add_argument("--passage-max-length", type=int, default=128, help="full mode: passage tokens")
    parser.add_argument("--mine-depth", type=int, default=50)
    args = parser.parse_args(argv)

    corpus = args.data / "scifact" / "corpus.jsonl"
    base_index = ensure_index(corpus, args.work / "index-minilm", "minilm")
    rows = build_rows(args.data, base_index, args.work, args.mine_depth)
    base = DenseEncoder.load(resolve_encoder("minilm"))
    results = {
        "untrained": [
            scored(
                args.work / "untrained", lambda: score(args.data, base, base_index, args.work / "untrained")
            )
        ]
    }
    if args.mode == "full":  # full-mode models index passages at --passage-max-length: compare like with like
        short = args.work / "full" / f"untrained-p{args.passage_max_length}"

        def untrained_short() -> dict[str, float]:
            index = ensure_index(corpus, short / "index", "minilm", args.passage_max_length)
            return score(args.data, base, index, short)

        results[f"untrained (passages {args.passage_max_length} tokens)"] = [scored(short, untrained_short)]
    for arm in args.arms:
        results[arm] = []
        for seed in args.seeds:
            folder = args.work / args.mode / f"{arm}-seed{seed}"
            model_dir = train(arm, seed, rows[arm], folder / "model", args, base_index.path)

            def compute(model_dir: Path = model_dir, folder: Path = folder) -> dict[str, float]:
                encoder = DenseEncoder.load(resolve_encoder(str(model_dir)))
                index = base_index
                if args.mode == "full":  # the passages changed too: index the corpus with the trained model
                    index = ensure_index(corpus, folder / "index", encoder.config)
                return score(args.data, encoder, index, folder)

            log = folder / "train.log"
            results[arm].append(
                {
                    **scored(folder, compute),
                    "logged": logged_strength(log),
                    "train_runtime": logged_runtime(log),
                }
            )
    table = summary_table(results)
    record = {"provenance": provenance(ROOT, [Path(__file__).name, *(argv or sys.argv[1:])]), "arms": results}
    (args.work / f"results-{args.mode}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.work / f"results-{args.mode}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
