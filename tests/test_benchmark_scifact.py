"""The benchmark command with the real all-MiniLM-L6-v2 on SciFact-stance (the issue's "done when"): FollowIR
protocol reproduces the README's p-MRR +1.02 and nDCG@10 77.23, and its MTEB export loads in mteb.

Reuses the MiniLM index of SciFact that the main job's end-to-end test built (``minilm_repro`` in conftest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qpr_pyserini.benchmark import __main__ as benchmark_cli

pytestmark = pytest.mark.slow


def test_followir_protocol_reproduces_the_reference_on_scifact_stance(
    shared_data: Path, minilm_repro: Path, tmp_path: Path
) -> None:
    mteb = pytest.importorskip("mteb")
    (index,) = minilm_repro.glob("index-*")
    argv = [
        "--suite",
        "followir",
        "--data",
        str(shared_data / "scifact-stance" / "test"),
        "--index",
        str(index),
    ]
    argv += ["--output", str(tmp_path / "out"), "--mteb-results", str(tmp_path / "mt"), "--quiet"]
    assert benchmark_cli.main(argv) == 0
    (task_file,) = (tmp_path / "mt" / "sentence-transformers__all-MiniLM-L6-v2").glob(
        "*/*InstructionRetrieval.json"
    )
    result = mteb.TaskResult.from_disk(task_file)
    assert 100 * result.get_score() == pytest.approx(1.02, abs=0.005)  # p-MRR, runs/minilm/scores.json
    assert 100 * result.scores["test"][0]["og"]["ndcg_at_10"] == pytest.approx(77.23, abs=0.005)
