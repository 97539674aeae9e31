"""Two-process training (torchrun, gloo, CPU): cross-rank negatives and the single-process loss and gradient."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import tiny_bert, write_rows

WORKER = Path(__file__).with_name("train_dist_worker.py")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    root = tmp_path_factory.mktemp("train_dist")
    encoder = tiny_bert(root / "bert")
    data = write_rows(root / "train.jsonl")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *(str(WORKER), encoder.model, str(data), str(root)),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return [json.loads((root / f"rank{r}.json").read_text()) for r in range(2)]


def test_each_rank_trains_on_its_half(ranks: list[dict]) -> None:
    assert [r["world_size"] for r in ranks] == [2, 2]
    halves = [r["local_queries"] for r in ranks]
    assert all(len(h) == 2 for h in halves)
    assert sorted(halves[0] + halves[1]) == sorted(ranks[0]["ref_queries"])


def test_logits_span_both_ranks_passages(ranks: list[dict]) -> None:
    for result in ranks:
        # 2 local rows x 3 passages each, gathered over 2 ranks: every row scores all 12 passages.
        assert (result["rows"], result["passages"]) == (4, 12)
        assert result["targets"] == [0, 3, 6, 9]


def test_first_step_loss_equals_one_process_whole_batch(ranks: list[dict]) -> None:
    for result in ranks:
        assert result["loss"] == pytest.approx(result["ref_loss"], abs=1e-5)
        assert result["logged_loss"] == pytest.approx(result["ref_loss"], abs=1e-3)  # the Trainer rounds logs


def test_first_step_gradient_equals_one_process_whole_batch(ranks: list[dict]) -> None:
    for result in ranks:
        assert result["grad_max"] > 1e-3  # a real gradient, not a vacuous comparison
        assert result["grad_max_diff"] < 1e-5
