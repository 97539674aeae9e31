"""SciFact-attributes experiment: does QPR help where instructions change relevance (MiniLM, smollm2-135m)?

all-MiniLM-L6-v2 fine-tuned on the instruction set built from SciFact (docs/instruction-data.md: topic
queries, study-design instructions such as "only animal studies" / "exclude animal studies"), five arms:
  untrained      the model as shipped
  plain          the plain rows only (topic word, no instruction)
  promptriever   plain + instruction rows, the first 3 instruction negatives (``new_negatives``) per group
  qpr-reference  promptriever + the regularizer with the loss choices of ``--qpr-preset reference``
  qpr-dev        qpr-reference with the weight and temperature that the dev split prefers (GRID, one seed)
  qpr-null       a control: qpr-reference at weight 1e-6 (the same computation, next to no gradient)
  qpr-acting     qpr-reference at the QPR temperature (weight 1) that the dev split prefers among ACTING_GRID,
                 temperatures at which the term carries a real share of the gradient (logged qpr_grad_share)
Every trained arm uses the same text (the minilm preset's ``"{query} {instruction}"``) and the same
negatives, so the QPR arms differ from the recipe in the loss alone. Each model is scored on the set's test
split (p-MRR og vs changed, nDCG@10 under og, on-topic documents in the top 10), on SciFact test (nDCG@10) and
on SciFact-stance test (p-MRR). Every step is cached under --work, so re-running resumes.

    .venv/bin/python scripts/experiment_scifact_attributes.py --mode query-side --seeds 1 2 3
    .venv/bin/python scripts/experiment_scifact_attributes.py --mode full --seeds 1 --passage-max-length 64
    .venv/bin/python scripts/experiment_scifact_attributes.py --summarize docs/results/scifact-attributes

The causal decoder (``--encoder smollm2-135m``, query-side mode, the query before the instruction in every arm:
Promptriever's ``"query:  {q}{?} {i}"``, InfoNCE temperature 0.01 as the authors): against a smollm2 index of
SciFact with passages cut to 128 tokens (built once, ``--index``), arms untrained, promptriever,
qpr-reference, qpr-null and qpr-acting:

    .venv/bin/python scripts/experiment_scifact_attributes.py --encoder smollm2-135m --seeds 1 2 3 \
        --arms promptriever qpr-reference qpr-null qpr-acting
    .venv/bin/python scripts/experiment_scifact_attributes.py --encoder smollm2-135m --summarize \
        docs/results/scifact-attributes-smollm2

Query-side mode trains only the query encoder against the fixed MiniLM index; full mode trains the shared
encoder and re-indexes the corpus with each trained model (passages cut to --passage-max-length in training
and in the index).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
from pathlib import Path

from experiment_scifact_stance import (
    ensure_index,
    logged_runtime,
    logged_strength,
    run_logged,
    score,
    scored,
)

from qpr_pyserini.eval.metrics import evaluate, per_query, pmrr
from qpr_pyserini.index.store import DenseIndex, load_index
from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.search.searcher import search_topics

ROOT = Path(__file__).resolve().parents[1]
TRAINED_ARMS = ("plain", "promptriever", "qpr-reference", "qpr-dev", "qpr-null", "qpr-acting")
# Promptriever's recipe: the first n instruction negatives of each row in stored order (n = 3, our default).
RECIPE = ["--negatives-order", "promptriever", "--instruction-negatives", "3"]
# The reference's loss choices on MiniLM's own text: the preset would also switch to Promptriever's
# "query:  {q}{?} {i}" text, which the index, the recipe arm and MiniLM's training never saw.
REFERENCE_LOSS = ["--qpr-preset", "reference", "--template", "concat", "--query-prefix", ""]
GRID = [(weight, temperature) for weight in (1.0, 10.0) for temperature in (0.05, 1.0)]
ACTING_GRID = [(1.0, temperature) for temperature in (0.05, 0.1)]  # qpr-acting: weight 1, a sharper softmax
SAME_AS_ARM = {"promptriever": "promptriever", "w1-t1": "qpr-reference"}  # the preset's weight 1, raw cosines
# Per backbone: the query text every arm uses, the passage length of the fixed index, the training settings.
BACKBONES = {
    "minilm": {
        "text": [],
        "train": [],
        "index": "out/indexes/scifact-minilm",
        "passages": None,
        "temperature": 0.05,
        "lr": 5e-5,
    },
    "smollm2-135m": {  # LoRA as the authors (r 16, alpha 64): adapters of a few MB per arm, lr 1e-4
        "text": ["--template", "promptriever", "--query-prefix", "query:  "],
        "train": ["--lora", "true", "--lora-r", "16"],
        "index": "out/indexes/scifact-smollm2-135m-p128",
        "passages": 128,
        "temperature": 0.01,
        "lr": 1e-4,
    },
}
COLUMNS = {
    "p-MRR": "p-MRR",
    "p-MRR only": "p-MRR, only X",
    "p-MRR exclude": "p-MRR, exclude X",
    "p-MRR unseen": "p-MRR, unseen attribute",
    "nDCG@10 og": "nDCG@10 og",
    "on-topic@10 og": "on topic in top 10, og",
    "on-topic@10 changed": "on topic in top 10, changed",
    "SciFact nDCG@10": "SciFact nDCG@10",
    "stance p-MRR": "SciFact-stance p-MRR",
}


def plain_rows(train: Path, out: Path) -> Path:
    """The training rows without an instruction (the plain arm's data)."""
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(train, "rt") as source:
            rows = [line for line in source if not json.loads(line)["has_instruction"]]
        out.write_text("".join(rows))
    return out


def arm_options(arm: str, choice: tuple[float, float] | None, backbone: str = "minilm") -> list[str]:
    """The options that make an arm, on top of the shared training settings (and the backbone's text)."""
    text = BACKBONES[backbone]["text"]
    reference = REFERENCE_LOSS if not text else ["--qpr-preset", "reference", *text]
    if arm in ("plain", "promptriever"):
        return RECIPE + text
    if arm == "qpr-reference":
        return RECIPE + reference
    if arm == "qpr-null":  # a control: the regularizer's extra passes (and dropout draws), not its gradient
        return RECIPE + reference + ["--qpr-weight", "1e-6"]
    assert choice is not None, f"{arm} needs the dev split's choice"
    weight, temperature = choice
    return RECIPE + reference + ["--qpr-weight", str(weight), "--qpr-temperature", str(temperature)]


def train(rows: Path, out: Path, seed: int, mode: str, options: list[str], args: argparse.Namespace) -> Path:
    """Fine-tune MiniLM once (skipped when ``out`` already holds a trained encoder)."""
    if (out / "qpr_encoder.json").is_file():
        return out
    command = [sys.executable, "-m", "qpr_pyserini.train", "--encoder", args.encoder]
    command += ["--train-data", str(rows), "--output-dir", str(out), "--mode", mode]
    command += ["--seed", str(seed), "--data-seed", str(seed), "--group-size", str(args.group_size)]
    command += ["--per-device-train-batch-size", str(args.batch_size), "--learning-rate", str(args.lr)]
    command += ["--num-train-epochs", str(args.epochs), "--warmup-steps", "0.1"]
    command += ["--temperature", str(args.temperature), "--save-strategy", "no", "--logging-steps", "10"]
    command += ["--report-to", "none", "--disable-tqdm", "true", *BACKBONES[args.encoder]["train"], *options]
    if mode == "query-side":
        command += ["--index", str(args.index), "--qpr-log-gradients", "true"]
    else:
        command += ["--passage-max-length", str(args.passage_max_length)]
    run_logged(command, out.parent / "train.log")
    return out


def score_split(split: Path, encoder: DenseEncoder, index: DenseIndex, runs: Path) -> dict[str, float]:
    """p-MRR (all queries, unseen attribute), nDCG@10 under og, on-topic documents in the top 10."""
    topics = read_topics(split / "queries.jsonl")
    run = {}
    for name, field in [("og", "instruction_og"), ("changed", "instruction_changed")]:
        path = runs / f"{split.name}-{name}.trec"
        search_topics(index, topics, path, instruction_field=field, model=encoder, progress=False)
        run[name] = read_run(path)
    og, topic = read_qrels(split / "qrels_og.tsv"), read_qrels(split / "qrels_topic.tsv")
    following = pmrr(og, read_qrels(split / "qrels_changed.tsv"), run["og"], run["changed"])
    unseen = [following.per_query[t.qid] for t in topics if t.fields.get("attribute_seen") == "no"]
    return {
        "p-MRR": following.score,
        "p-MRR unseen": statistics.fmean(unseen),
        "nDCG@10 og": evaluate(og, run["og"], ["nDCG@10"])["nDCG@10"],
        "on-topic@10 og": 10 * statistics.fmean(per_query(topic, run["og"], "P@10").values()),
        "on-topic@10 changed": 10 * statistics.fmean(per_query(topic, run["changed"], "P@10").values()),
    }


def pmrr_by_polarity(split: Path, runs: Path) -> dict[str, float]:
    """p-MRR of the "only X" and the "exclude X" queries apart, from the runs ``score_split`` left in RUNS."""
    following = pmrr(
        read_qrels(split / "qrels_og.tsv"),
        read_qrels(split / "qrels_changed.tsv"),
        read_run(runs / f"{split.name}-og.trec"),
        read_run(runs / f"{split.name}-changed.trec"),
    ).per_query
    polarity = {t.qid: t.fields["polarity"] for t in read_topics(split / "queries.jsonl")}
    return {
        f"p-MRR {side}": statistics.fmean(v for qid, v in following.items() if polarity[qid] == side)
        for side in ("only", "exclude")
    }


def score_model(args: argparse.Namespace, encoder: DenseEncoder, index: DenseIndex, runs: Path) -> dict:
    """Every test number of one model."""
    runs.mkdir(parents=True, exist_ok=True)
    stance = score(args.data, encoder, index, runs)
    return {
        **score_split(args.instruction_data / "test", encoder, index, runs),
        "SciFact nDCG@10": stance["SciFact nDCG@10"],
        "stance p-MRR": stance["p-MRR"],
    }


def dev_objective(scores: dict[str, float]) -> float:
    """What the dev split prefers: instruction following and on-topic quality at equal weight."""
    return scores["p-MRR"] + scores["nDCG@10 og"]


def choose_on_dev(
    args: argparse.Namespace, rows: Path, base: DenseIndex, candidates: list[tuple[float, float]] = GRID
) -> tuple[tuple[float, float], list]:
    """Train the candidates in query-side mode (seed --dev-seed) and pick the best (weight, temperature) on
    dev; each grid entry also records the logged qpr_grad_share (mean over logging steps)."""
    grid = []
    for weight, temperature in [(0.0, None), *candidates]:
        name = "promptriever" if weight == 0 else f"w{weight:g}-t{temperature:g}"
        folder = args.work / "dev-grid" / f"{name}-seed{args.dev_seed}"
        model = folder / "model"
        if name in SAME_AS_ARM:  # the same training as a query-side arm's: share the model
            model = args.work / "query-side" / f"{SAME_AS_ARM[name]}-seed{args.dev_seed}" / "model"
        options = arm_options(
            "promptriever" if weight == 0 else "qpr-dev", (weight, temperature), args.encoder
        )
        model = train(rows, model, args.dev_seed, "query-side", options, args)

        def compute(model: Path = model, folder: Path = folder) -> dict[str, float]:
            encoder = DenseEncoder.load(resolve_encoder(str(model)))
            return score_split(args.instruction_data / "dev", encoder, base, folder)

        grid.append({"weight": weight, "temperature": temperature, "seed": args.dev_seed})
        grid[-1].update(scored(folder, compute))
        shares = [
            s["qpr_grad_share"] for s in logged_strength(model.parent / "train.log") if "qpr_grad_share" in s
        ]
        if shares:
            grid[-1]["qpr_grad_share_mean"] = statistics.fmean(shares)
    best = max((g for g in grid if g["weight"] > 0), key=dev_objective)
    return (best["weight"], best["temperature"]), grid


def run_mode(args: argparse.Namespace) -> dict:
    """Train and score every arm and seed of one mode; returns the per-seed scores."""
    corpus = args.data / "scifact" / "corpus.jsonl"
    base = load_index(args.index)
    rows = {"plain": plain_rows(args.instruction_data / "train.jsonl.gz", args.work / "rows-plain.jsonl")}
    all_rows = args.instruction_data / "train.jsonl.gz"
    untrained = DenseEncoder.load(resolve_encoder(args.encoder, **text_overrides(args.encoder)))
    result: dict = {"arms": {}}
    folder = args.work / "untrained"
    test = args.instruction_data / "test"
    untrained_scores = scored(folder, lambda: score_model(args, untrained, base, folder))
    result["arms"]["untrained"] = [{**untrained_scores, **pmrr_by_polarity(test, folder)}]
    if args.mode == "full":  # full-mode models index passages at --passage-max-length: compare like with like
        short = args.work / "full" / f"untrained-p{args.passage_max_length}"

        def untrained_short() -> dict[str, float]:
            index = ensure_index(corpus, short / "index", "minilm", args.passage_max_length)
            return score_model(args, untrained, index, short)

        result["arms"][f"untrained (passages {args.passage_max_length} tokens)"] = [
            {**scored(short, untrained_short), **pmrr_by_polarity(test, short)}
        ]
    choice = {}
    if "qpr-dev" in args.arms:
        choice["qpr-dev"], result["dev_grid"] = choose_on_dev(args, all_rows, base)
        result["dev_choice"] = dict(zip(("weight", "temperature"), choice["qpr-dev"], strict=True))
    if "qpr-acting" in args.arms:
        choice["qpr-acting"], result["acting_grid"] = choose_on_dev(args, all_rows, base, ACTING_GRID)
        result["acting_choice"] = dict(zip(("weight", "temperature"), choice["qpr-acting"], strict=True))
    for arm in args.arms:
        result["arms"][arm] = []
        for seed in args.seeds:
            folder = args.work / args.mode / f"{arm}-seed{seed}"
            options = arm_options(arm, choice.get(arm), args.encoder)
            model = train(rows.get(arm, all_rows), folder / "model", seed, args.mode, options, args)

            def compute(model: Path = model, folder: Path = folder) -> dict[str, float]:
                encoder = DenseEncoder.load(resolve_encoder(str(model)))
                index = base
                if args.mode == "full":  # the passages changed too: index the corpus with the trained model
                    index = ensure_index(corpus, folder / "index", encoder.config)
                return score_model(args, encoder, index, folder)

            scores = {"seed": seed, **scored(folder, compute), **pmrr_by_polarity(test, folder)}
            strength = logged_strength(folder / "train.log")
            if strength:
                scores["logged"] = strength
            scores["train_runtime"] = logged_runtime(folder / "train.log")
            result["arms"][arm].append(scores)
    return result


def text_overrides(backbone: str) -> dict[str, str]:
    """The backbone's query-text options as resolve_encoder overrides (the untrained arm's text)."""
    text = BACKBONES[backbone]["text"]
    return {text[i].removeprefix("--").replace("-", "_"): text[i + 1] for i in range(0, len(text), 2)}


def summary_table(arms: dict[str, list[dict[str, float]]]) -> str:
    """Mean ± sample sd (x100; on-topic counts out of 10 as they are) per arm."""
    lines = ["| arm | runs | " + " | ".join(COLUMNS.values()) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for arm, runs in arms.items():
        cells = []
        for column in COLUMNS:
            scale = 1 if column.startswith("on-topic") else 100
            values = [scale * r[column] for r in runs]
            spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.fmean(values):.2f}{spread}")
        lines.append(f"| {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(arms: dict[str, list[dict[str, float]]], baseline: str = "promptriever") -> str:
    """Each trained arm minus the recipe, seed by seed (same seed, same data order): mean ± sample sd."""
    base = {r["seed"]: r for r in arms.get(baseline, [])}
    measures = ["p-MRR", "p-MRR unseen", "nDCG@10 og", "SciFact nDCG@10"]
    header = f"| arm - {baseline} (x100) | seeds | " + " | ".join(measures) + " |"
    lines = [header, "|---" * (len(measures) + 2) + "|"]
    for arm, runs in arms.items():
        paired = [r for r in runs if r.get("seed") in base and arm != baseline]
        if len(paired) < 2:
            continue
        cells = []
        for measure in measures:
            diffs = [100 * (r[measure] - base[r["seed"]][measure]) for r in paired]
            cells.append(f"{statistics.fmean(diffs):+.2f} ± {statistics.stdev(diffs):.2f}")
        lines.append(f"| {arm} | {len(paired)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else "(one seed: no paired spread)"


def plot(results: dict[str, dict], out: Path) -> None:
    """p-MRR against nDCG@10 under og, one point per arm and seed, one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [mode for mode in ("query-side", "full") if mode in results]
    figure, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    colours: dict[str, str] = {}
    for axis, mode in zip(axes[0], modes, strict=True):
        for arm, runs in results[mode]["arms"].items():
            colour = colours.setdefault(arm, f"C{len(colours)}")
            xs = [100 * r["nDCG@10 og"] for r in runs]
            ys = [100 * r["p-MRR"] for r in runs]
            axis.scatter(xs, ys, label=arm, color=colour, alpha=0.8)
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.set(title=f"{mode} mode, test split", xlabel="nDCG@10 under og (x100)", ylabel="p-MRR (x100)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def summarize(work: Path, stem: Path) -> None:
    """Merge the modes' results into STEM.json, draw STEM.png and print the tables."""
    results = {}
    for mode in ("query-side", "full"):
        path = work / f"results-{mode}.json"
        if path.is_file():
            results[mode] = json.loads(path.read_text())
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, stem.with_suffix(".png"))
    strength = {
        arm: [
            (
                r["seed"],
                [round(step["qpr_grad_share"], 4) for step in r["logged"] if "qpr_grad_share" in step],
            )
            for r in runs
            if "logged" in r
        ]
        for result in results.values()
        for arm, runs in result["arms"].items()
    }
    for mode, result in results.items():
        print(f"\n{mode}\n" + summary_table(result["arms"]) + "\n\n" + paired_table(result["arms"]))
        if "qpr-null" in result["arms"]:
            print("\n" + paired_table(result["arms"], "qpr-null"))
        for grid in ("dev_grid", "acting_grid"):
            for row in result.get(grid, []):
                print(grid, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    for arm, runs in strength.items():
        if any(shares for _, shares in runs):
            print(f"logged qpr_grad_share, {arm}: {runs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--instruction-data", type=Path, default=Path("out/instruction-data"))
    parser.add_argument("--encoder", choices=sorted(BACKBONES), default="minilm")
    parser.add_argument(
        "--index", type=Path, help="the fixed index (default per --encoder, built if missing)"
    )
    parser.add_argument("--work", type=Path, help="default out/experiment-scifact-attributes[-<encoder>]")
    parser.add_argument("--mode", choices=["query-side", "full"], default="query-side")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--arms", nargs="+", choices=TRAINED_ARMS, default=list(TRAINED_ARMS))
    parser.add_argument("--dev-seed", type=int, default=1)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--lr", type=float, help="AdamW learning rate (default: MiniLM 5e-5, smollm2 1e-4)")
    parser.add_argument("--temperature", type=float, help="InfoNCE (default: MiniLM's 0.05, smollm2's 0.01)")
    parser.add_argument("--passage-max-length", type=int, default=64, help="full mode: passage tokens")
    parser.add_argument("--summarize", type=Path, metavar="STEM", help="write STEM.json and STEM.png, print")
    args = parser.parse_args(argv)
    backbone = BACKBONES[args.encoder]
    suffix = "" if args.encoder == "minilm" else f"-{args.encoder}"
    args.work = args.work or Path(f"out/experiment-scifact-attributes{suffix}")
    args.index = args.index or Path(backbone["index"])
    args.temperature = args.temperature or backbone["temperature"]
    args.lr = args.lr or backbone["lr"]
    if args.summarize:
        summarize(args.work, args.summarize)
        return 0
    if backbone["passages"] is not None:  # the decoder's fixed index, built once
        ensure_index(args.data / "scifact" / "corpus.jsonl", args.index, args.encoder, backbone["passages"])
    result = {
        "provenance": provenance(ROOT, [Path(__file__).name, *(argv or sys.argv[1:])]),
        **run_mode(args),
    }
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / f"results-{args.mode}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(summary_table(result["arms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
