"""Counts of a built SciFact attribute set that its manifest does not hold, added to the docs' results file.

    .venv/bin/python scripts/instruction_data_counts.py out/instruction-data docs/results/instruction-data.json

Adds ``counts_from_output`` (relevant documents per query under og and changed, positives and instruction
negatives per training row) with the commit, command and time that produced them.
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels

ROOT = Path(__file__).resolve().parents[1]


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 2),
        "max": max(values),
    }


def relevant_per_query(path: Path) -> dict[str, float]:
    qrels = read_qrels(path)
    return spread([sum(1 for grade in docs.values() if grade > 0) for docs in qrels.values()])


def row_counts(train: Path) -> dict[str, dict[str, float]]:
    sizes: dict[str, list[int]] = {"positives (plain rows)": [], "positives (instruction rows)": []}
    sizes["instruction negatives (instruction rows)"] = []
    kinds: Counter[str] = Counter()
    with gzip.open(train, "rt") as rows:
        for line in rows:
            row = json.loads(line)
            kind = "instruction rows" if row["has_instruction"] else "plain rows"
            kinds[kind] += 1
            sizes[f"positives ({kind})"].append(len(row["positive_passages"]))
            if row["has_instruction"]:
                sizes["instruction negatives (instruction rows)"].append(len(row["new_negatives"]))
    return {name: spread(values) for name, values in sizes.items()}


def main(folder: str, results: str) -> int:
    data = Path(folder)
    counts = {
        "relevant_per_query_og": {s: relevant_per_query(data / s / "qrels_og.tsv") for s in ("dev", "test")},
        "relevant_per_query_changed": {
            s: relevant_per_query(data / s / "qrels_changed.tsv") for s in ("dev", "test")
        },
        "train_rows": row_counts(data / "train.jsonl.gz"),
    }
    path = Path(results)
    stored = json.loads(path.read_text())
    stored["counts_from_output"] = {"provenance": provenance(ROOT), **counts}
    path.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
