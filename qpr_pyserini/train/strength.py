"""How strongly the query-preserving regularizer acts: gradient norms per term and the "not acting" warning.

At each logging step the trainer logs, beside the loss terms, the regularizer's distribution statistics
(``qpr_cross_entropy`` -sum p_orig log p_qc, its uniform value ``qpr_uniform`` = ln K for K candidates,
``qpr_teacher_entropy``, ``qpr_student_entropy``; see ``loss.distribution_statistics``) and the gradient
norm each term contributes on the trainable parameters (one micro-batch per logged step):

    contrastive_grad_norm = ||d CE / d theta||,  qpr_grad_norm = ||d (weight * D) / d theta||
    qpr_grad_share = qpr_grad_norm / (qpr_grad_norm + contrastive_grad_norm)      (0: no effect, 1: all)

When the cross-entropy stays within 1% of ln K and the share below 1% for the first N logging steps, one
warning says that the regularizer is not acting (raw cosines make both distributions near uniform; see
docs/method.md).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import Tensor

from qpr_pyserini.train.loss import LossOutput

log = logging.getLogger(__name__)

INERT_TOLERANCE = 0.01
"""Relative distance of the cross-entropy from ln K, and gradient share, below which a log counts as inert."""


def _norm(loss: Tensor, params: list[torch.nn.Parameter]) -> float:
    if not loss.requires_grad:
        return 0.0
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.float().pow(2).sum()) for g in grads if g is not None))


def term_gradient_norms(model: torch.nn.Module, output: LossOutput, weight: float) -> dict[str, float]:
    """The gradient norms of the contrastive term and the weighted regularizer on the trainable parameters,
    and the regularizer's share of their sum (the graph is kept for the training step's own backward)."""
    params = [p for p in model.parameters() if p.requires_grad]
    contrastive = _norm(output.contrastive, params)
    regularizer = _norm(weight * output.regularizer, params)
    total = contrastive + regularizer
    return {
        "contrastive_grad_norm": contrastive,
        "qpr_grad_norm": regularizer,
        "qpr_grad_share": regularizer / total if total > 0 else 0.0,
    }


class RegularizerMonitor:
    """Warn once when the first ``steps`` logs all show an inert regularizer (``steps`` 0: never)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.inert_logs = 0
        self.done = steps <= 0
        self.warned = False

    @staticmethod
    def inert(logs: dict[str, Any]) -> bool | None:
        """Whether one log shows an inert regularizer; None when it carries no regularizer statistics."""
        if "qpr_cross_entropy" not in logs:
            return None
        uniform = logs["qpr_uniform"]
        near_uniform = abs(logs["qpr_cross_entropy"] - uniform) <= INERT_TOLERANCE * uniform
        return near_uniform and logs.get("qpr_grad_share", 0.0) < INERT_TOLERANCE

    def observe(self, logs: dict[str, Any]) -> None:
        """Count one log; warn when the first ``steps`` logs with statistics were all inert."""
        verdict = None if self.done else self.inert(logs)
        if verdict is None:
            return
        if not verdict:
            self.done = True
            return
        self.inert_logs += 1
        if self.inert_logs >= self.steps:
            self.done = self.warned = True
            log.warning(
                "the query-preserving regularizer is not acting: over the first %d logging steps its "
                "cross-entropy stayed within 1%% of ln K = %.4f (both distributions near uniform) and its "
                "share of the gradient norm below 1%% (last: %.4g). Scores of raw cosines span [-1, 1]: "
                "sharpen them with --qpr-temperature (e.g. 0.05) or raise --qpr-weight "
                "(--qpr-inert-warning-steps 0 silences this).",
                self.inert_logs,
                logs["qpr_uniform"],
                logs.get("qpr_grad_share", float("nan")),
            )
