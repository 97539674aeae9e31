"""Cross-device negatives for contrastive training (Tevatron / DPR recipe).

Recipe, per training step on every rank (the same on one process, where every helper is the identity)::

    q = gather_with_grad(local_queries)                      # [W*B, d]
    p = gather_with_grad(local_passages)                     # [W*N, d]
    t = gather_with_grad(global_targets(local_targets, N))   # [W*B], indices into p
    scale_for_ddp(info_nce(q, p, t, tau)).backward()         # DDP then averages gradients over ranks

Queries are gathered too, so every rank computes the *global* loss and its gradient reaches the local queries
*and* the local passages through the local slots. Gathering passages only (local queries against all
passages) gives the right loss value but loses the gradient that other ranks' queries send to this rank's
passages.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank, 0 without an initialised process group."""
    return dist.get_rank() if _distributed() else 0


def world_size() -> int:
    """Number of processes, 1 without an initialised process group."""
    return dist.get_world_size() if _distributed() else 1


def gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate every rank's ``t`` along dim 0, keeping ``t`` itself (and its graph) in this rank's slot.

    Shards must have equal shapes on all ranks; identity when not distributed.
    """
    size = world_size()
    if size == 1:
        return t
    shape = torch.tensor(t.shape, dtype=torch.long, device=t.device)
    shapes = [torch.empty_like(shape) for _ in range(size)]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        raise ValueError(
            "gather_with_grad needs equal-sized shards on every rank, "
            f"got shapes {[s.tolist() for s in shapes]}"
        )
    parts = [torch.empty_like(t) for _ in range(size)]
    dist.all_gather(parts, t.detach().contiguous())
    parts[rank()] = t
    return torch.cat(parts, dim=0)


def global_targets(local_targets: Tensor, local_passages: int) -> Tensor:
    """Shift this rank's positive indices so that they index the gathered passages matrix."""
    return local_targets + rank() * local_passages


def scale_for_ddp(loss: Tensor) -> Tensor:
    """Multiply the loss by the world size to undo DDP's gradient averaging.

    With gathered queries and passages every rank computes the same global loss L, but backward reaches only
    the local slots, so rank r's gradient is the part of dL/dtheta that flows through its own shard. The true
    gradient is the *sum* of these parts over ranks; DDP averages them (divides by W), so scaling L by W
    restores the sum. Report the unscaled loss.
    """
    return loss * world_size()
