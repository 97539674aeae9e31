"""The committed reference runs still score what their records say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qpr_pyserini.eval.metrics import evaluate
from qpr_pyserini.io.qrels import read_qrels
from qpr_pyserini.io.runs import read_run

RUNS = Path(__file__).resolve().parents[1] / "runs" / "minilm"


@pytest.mark.parametrize(
    ("run", "qrels", "key"),
    [
        ("scifact-test", "scifact/qrels/test.tsv", "scifact-test"),
        ("scifact-stance-none", "scifact-stance/test/qrels_og.tsv", "stance-none"),
        ("scifact-stance-og", "scifact-stance/test/qrels_og.tsv", "stance-og"),
        ("scifact-stance-matching", "scifact-stance/test/qrels_matching.tsv", "stance-matching"),
    ],
)
def test_reference_run_scores(shared_data: Path, run: str, qrels: str, key: str) -> None:
    recorded = json.loads((RUNS / "scores.json").read_text())["scores"][key]["nDCG@10"]
    scores = evaluate(read_qrels(shared_data / qrels), read_run(RUNS / f"{run}.trec.top100.gz"), ["nDCG@10"])
    assert scores["nDCG@10"] == pytest.approx(recorded, abs=1e-6)
