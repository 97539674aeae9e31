"""Worker for tests/test_distributed.py, launched by torchrun with 2 processes (gloo, CPU).

Every rank builds the same seeded Linear "encoder" and batch, computes the single-process reference on the
whole batch, then the distributed loss on its half, and writes ``rank{r}.json`` into the folder
given as argv[1].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from qpr_pyserini.train.distributed import gather_with_grad, global_targets, rank, scale_for_ddp, world_size
from qpr_pyserini.train.loss import info_nce

QUERIES, GROUP, DIM_IN, DIM_OUT, TEMPERATURE = 4, 2, 8, 4, 0.1


def encode(encoder: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(encoder(x), dim=-1)


def ddp_grads(encoder: torch.nn.Linear) -> list[list[float]]:
    """All-reduce-average the gradients as DDP does, then reset them."""
    grads = []
    for param in encoder.parameters():
        grad = param.grad.clone()
        dist.all_reduce(grad)
        grads.append((grad / world_size()).flatten().tolist())
        param.grad = None
    return grads


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    encoder = torch.nn.Linear(DIM_IN, DIM_OUT).double()
    x_q = torch.randn(QUERIES, DIM_IN, dtype=torch.float64)
    x_p = torch.randn(QUERIES * GROUP, DIM_IN, dtype=torch.float64)
    targets = torch.arange(QUERIES) * GROUP

    ref_logits = encode(encoder, x_q) @ encode(encoder, x_p).T / TEMPERATURE
    ref_loss = info_nce(encode(encoder, x_q), encode(encoder, x_p), targets, TEMPERATURE)
    ref_loss.backward()
    ref_grads = [p.grad.flatten().tolist() for p in encoder.parameters()]
    encoder.zero_grad(set_to_none=True)

    r, size = rank(), world_size()
    local_b, local_n = QUERIES // size, QUERIES * GROUP // size
    local_q = encode(encoder, x_q[r * local_b : (r + 1) * local_b])
    local_p = encode(encoder, x_p[r * local_n : (r + 1) * local_n])
    local_t = torch.arange(local_b) * GROUP

    # Recommended recipe: gather queries, passages and targets; every rank computes the global loss.
    q, p = gather_with_grad(local_q), gather_with_grad(local_p)
    t = gather_with_grad(global_targets(local_t, local_n))
    logits = q @ p.T / TEMPERATURE
    loss = info_nce(q, p, t, TEMPERATURE)
    scale_for_ddp(loss).backward()
    grads = ddp_grads(encoder)

    # Passages-only variant: local queries against gathered passages (right loss value, wrong gradient).
    local_q = encode(encoder, x_q[r * local_b : (r + 1) * local_b])
    local_p = encode(encoder, x_p[r * local_n : (r + 1) * local_n])
    p = gather_with_grad(local_p)
    local_loss = info_nce(local_q, p, global_targets(local_t, local_n), TEMPERATURE)
    scale_for_ddp(local_loss).backward()
    local_grads = ddp_grads(encoder)

    try:
        gather_with_grad(torch.zeros(r + 1, DIM_OUT))
        mismatch_error = ""
    except ValueError as error:
        mismatch_error = str(error)

    result = {
        "rank": r,
        "world_size": size,
        "logits_shape": list(logits.shape),
        "logits_max_diff": (logits - ref_logits).abs().max().item(),
        "local_logits_columns": (local_q @ p.T).shape[1],
        "targets": t.tolist(),
        "ref_loss": ref_loss.item(),
        "loss": loss.item(),
        "local_loss": local_loss.item(),
        "ref_grads": ref_grads,
        "grads": grads,
        "local_grads": local_grads,
        "mismatch_error": mismatch_error,
        "has_instruction": gather_with_grad(torch.tensor([r == 1])).tolist(),
    }
    (out_dir / f"rank{r}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
