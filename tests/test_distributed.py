"""Cross-device negatives: a real 2-process torchrun (gloo, CPU) against the single-process objective."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qpr_pyserini.train.distributed import gather_with_grad, global_targets, rank, scale_for_ddp, world_size

WORKER = Path(__file__).with_name("dist_worker.py")
REPO = Path(__file__).resolve().parents[1]


def test_helpers_without_process_group() -> None:
    t = torch.randn(3, 2, requires_grad=True)
    assert rank() == 0 and world_size() == 1
    assert gather_with_grad(t) is t
    assert global_targets(torch.tensor([0, 2]), 4).tolist() == [0, 2]
    assert scale_for_ddp(torch.tensor(1.5)).item() == 1.5


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("dist")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_logits_span_all_ranks_passages(ranks: list[dict]) -> None:
    for result in ranks:
        assert result["world_size"] == 2
        assert result["logits_shape"] == [4, 8]
        assert result["local_logits_columns"] == 8
        assert result["targets"] == [0, 2, 4, 6]
        # Gathered query/passage embeddings reproduce the whole-batch logits, other rank's columns included.
        assert result["logits_max_diff"] < 1e-10


def test_loss_matches_single_process(ranks: list[dict]) -> None:
    ref = ranks[0]["ref_loss"]
    for result in ranks:
        assert result["loss"] == pytest.approx(ref, abs=1e-6)
    assert sum(r["local_loss"] for r in ranks) / 2 == pytest.approx(ref, abs=1e-6)


def test_ddp_gradient_matches_single_process(ranks: list[dict]) -> None:
    ref = [torch.tensor(g) for g in ranks[0]["ref_grads"]]
    for result in ranks:
        for grad, expected in zip(result["grads"], ref, strict=True):
            torch.testing.assert_close(torch.tensor(grad), expected, atol=1e-5, rtol=0)


def test_passages_only_gathering_gets_gradient_wrong(ranks: list[dict]) -> None:
    ref = torch.cat([torch.tensor(g) for g in ranks[0]["ref_grads"]])
    local = torch.cat([torch.tensor(g) for g in ranks[0]["local_grads"]])
    assert (local - ref).abs().max() > 1e-3


def test_unequal_shards_raise(ranks: list[dict]) -> None:
    for result in ranks:
        assert "equal-sized shards" in result["mismatch_error"]


def test_bool_flags_gather(ranks: list[dict]) -> None:
    for result in ranks:
        assert result["has_instruction"] == [False, True]
