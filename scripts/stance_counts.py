"""The counts that docs/training-data.md gives for the SciFact-stance train split, with their provenance.

.venv/bin/python scripts/stance_counts.py ../shared/data/scifact-stance/train docs/results/training-data.json
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from qpr_pyserini.io.provenance import provenance
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.train.stance import build_stance_training_rows

ROOT = Path(__file__).resolve().parents[1]


def claim_counts(split: Path) -> dict[str, object]:
    claims = {t.qid: t for t in read_topics(split / "queries.jsonl")}
    evidence = {qid: set(docs) for qid, docs in read_qrels(split / "qrels_og.tsv").items() if docs}
    claims_of: dict[str, set[str]] = defaultdict(set)
    for qid, docs in evidence.items():
        for doc in docs:
            claims_of[doc].add(qid)
    stance = {qid: t.fields["stance"] for qid, t in claims.items()}
    shared = {doc for doc, owners in claims_of.items() if len(owners) > 1}
    opposite = {doc for doc in shared if len({stance[q] for q in claims_of[doc]}) > 1}
    partners = {qid: set().union(*(claims_of[d] for d in docs)) - {qid} for qid, docs in evidence.items()}
    texts = Counter(t.query for t in claims.values())
    neighbour_evidence = {
        qid: set().union(*(evidence[p] for p in others)) - evidence[qid] for qid, others in partners.items()
    }
    return {
        "claims": len(claims),
        "claims_with_evidence": len(evidence),
        "stances": dict(Counter(stance.values())),
        "claim_evidence_pairs": sum(map(len, evidence.values())),
        "distinct_evidence_abstracts": len(claims_of),
        "evidence_per_claim": dict(sorted(Counter(map(len, evidence.values())).items())),
        "abstracts_evidence_for_several_claims": len(shared),
        "of_them_with_opposite_labels": len(opposite),
        "claims_sharing_evidence": sum(bool(p) for p in partners.values()),
        "claims_with_an_opposite_label_partner": sum(
            any(stance[p] != stance[q] for p in ps) for q, ps in partners.items()
        ),
        "claims_with_identical_text": sorted(q for q, t in claims.items() if texts[t.query] > 1),
        "neighbour_evidence_removed_from_negatives": {
            "abstracts": sum(map(len, neighbour_evidence.values())),
            "claims": sum(bool(n) for n in neighbour_evidence.values()),
        },
    }


def row_counts(split: Path) -> dict[str, object]:
    counts: dict[str, object] = {}
    for variant in ("plain", "og", "matching", "changed"):
        counts[variant] = len(build_stance_training_rows(split, variants=[variant]))
    start = time.perf_counter()
    rows = build_stance_training_rows(split)
    counts["default_variants"] = len(rows)
    counts["default_build_seconds"] = round(time.perf_counter() - start, 1)
    counts["rows_with_instruction_negatives"] = sum(bool(r.instruction_negatives) for r in rows)
    return counts


def main(split: str, results: str) -> int:
    folder = Path(split)
    out = {"provenance": provenance(ROOT), "split": split, **claim_counts(folder), "rows": row_counts(folder)}
    Path(results).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
