"""Contrastive objective with the query-preserving regularizer (QPR).

What is implemented, for a batch of B query rows and N candidate passages (all tensors already gathered across
devices when training distributed, see ``qpr_pyserini.train.distributed``):

    L = CE(e_aug, d+) + weight * D(p_orig, p_qc)

- ``CE(e_aug, d+)`` is :func:`info_nce` over *all* rows of the instruction-augmented embeddings. For a row
  without an instruction the augmented query *is* the original query, so this single term already covers
  method.md's "+ CE(e_orig, d+) for rows without instruction".
- ``p_orig = softmax(e_orig . D / tau_qpr)`` (the teacher) and ``p_qc = softmax(e_qc . D / tau_qpr)`` (the
  student) over the candidate set D: the whole passages matrix (``candidates="batch"``) or the row's own
  Tevatron group of ``group_size`` passages (``candidates="group"``). ``tau_qpr`` defaults to the contrastive
  temperature; 1 scores raw cosines (the reference's choice).
- ``D`` is averaged over the rows *with* an instruction only (``has_instruction``); rows without one would
  only dilute the mean. "forward" is KL(p_orig || p_qc), "reverse" KL(p_qc || p_orig), "symmetric" their
  mean, "cross-entropy" -sum p_orig log p_qc (the reference's form: forward KL plus the teacher's entropy,
  the same gradient when the teacher is stopped). ``stop_gradient`` computes the whole teacher (the original
  query *and* the passages it is scored against) without gradient.
- ``teacher_passages`` (optional) are the passages the teacher scores: the reference re-encodes them in
  a second pass (its own dropout draw); without them the teacher scores ``passages`` (detached).
- ``LossOutput.regularizer`` is the *unweighted* term (for logging);
  ``loss = contrastive + weight * regularizer``. ``LossOutput.statistics`` (detached, for the training log)
  holds the cross-entropy -sum p_orig log p_qc whatever the direction, ln(K) for K candidates (its value
  when both distributions are uniform) and the two entropies.

Embeddings are used as given: L2-normalise them in the encoder if the model calls for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from qpr_pyserini.io.errors import InputError, check_finite

DIRECTIONS = ("forward", "reverse", "symmetric", "cross-entropy")
CANDIDATES = ("batch", "group")
SPAN_POOLINGS = ("mean", "last")
TEACHER_PASSAGES = ("shared", "reencode")


def info_nce(queries: Tensor, passages: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """Mean cross-entropy of ``queries @ passages.T / temperature`` against the positive indices."""
    logits = queries @ passages.T / temperature
    return F.cross_entropy(logits, targets)


def _candidate_logits(
    queries: Tensor, passages: Tensor, temperature: float, group_size: int | None
) -> Tensor:
    """Scores [B, N] against every passage, or [B, g] against each row's own group passages[i*g:(i+1)*g]."""
    if group_size is None:
        return queries @ passages.T / temperature
    rows = queries.shape[0]
    if passages.shape[0] != rows * group_size:
        raise ValueError(
            f"group candidates need {rows} x {group_size} = {rows * group_size} passages, "
            f"got {passages.shape[0]}"
        )
    groups = passages.view(rows, group_size, -1)
    return torch.einsum("bd,bgd->bg", queries, groups) / temperature


def qpr_distributions(
    original: Tensor,
    component: Tensor,
    passages: Tensor,
    *,
    temperature: float,
    stop_gradient: bool = True,
    group_size: int | None = None,
    teacher_passages: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Log-probabilities of the teacher (``original``) and the student (``component``) over the candidates.

    ``stop_gradient`` scores the teacher under ``torch.no_grad``: no gradient reaches ``original`` nor,
    through the teacher, ``passages`` (or ``teacher_passages``, the teacher's own passage embeddings).
    """
    teacher_passages = passages if teacher_passages is None else teacher_passages
    with torch.set_grad_enabled(torch.is_grad_enabled() and not stop_gradient):
        logits = _candidate_logits(original, teacher_passages, temperature, group_size)
        log_p_orig = F.log_softmax(logits, dim=-1)
    log_p_qc = F.log_softmax(_candidate_logits(component, passages, temperature, group_size), dim=-1)
    return log_p_orig, log_p_qc


def divergence(log_p_orig: Tensor, log_p_qc: Tensor, direction: str) -> Tensor:
    """The regularizer's divergence between two [rows, K] log-distributions, averaged over rows."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction == "cross-entropy":
        return -(log_p_orig.exp() * log_p_qc).sum(-1).mean()
    # kl_div(input=log q, target=log p) = KL(p || q), averaged over rows.
    forward = F.kl_div(log_p_qc, log_p_orig, log_target=True, reduction="batchmean")
    if direction == "forward":
        return forward
    reverse = F.kl_div(log_p_orig, log_p_qc, log_target=True, reduction="batchmean")
    if direction == "reverse":
        return reverse
    return (forward + reverse) / 2


def distribution_statistics(log_p_orig: Tensor, log_p_qc: Tensor) -> dict[str, Tensor]:
    """Detached means over rows: cross-entropy -sum t log s, ln(K), teacher and student entropies."""
    with torch.no_grad():
        log_t, log_s = log_p_orig.float(), log_p_qc.float()
        return {
            "qpr_cross_entropy": -(log_t.exp() * log_s).sum(-1).mean(),
            "qpr_uniform": torch.tensor(math.log(log_t.shape[-1]), device=log_t.device),
            "qpr_teacher_entropy": -(log_t.exp() * log_t).sum(-1).mean(),
            "qpr_student_entropy": -(log_s.exp() * log_s).sum(-1).mean(),
        }


def qpr_regularizer(
    original: Tensor,
    component: Tensor,
    passages: Tensor,
    *,
    temperature: float,
    direction: str = "forward",
    stop_gradient: bool = True,
    group_size: int | None = None,
    mask: Tensor | None = None,
    teacher_passages: Tensor | None = None,
) -> Tensor:
    """A divergence between the original query's (teacher) and the query component's (student) relevance
    distributions over the candidates (see the module docstring for ``direction``).

    ``mask`` (bool [B]) keeps only the selected rows; with none selected the result is a zero that keeps the
    autograd graph of ``component``. See :func:`qpr_distributions` for the other arguments.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    log_p_orig, log_p_qc = qpr_distributions(
        original,
        component,
        passages,
        temperature=temperature,
        stop_gradient=stop_gradient,
        group_size=group_size,
        teacher_passages=teacher_passages,
    )
    if mask is not None:
        if not bool(mask.any()):
            return component.sum() * 0
        log_p_orig, log_p_qc = log_p_orig[mask], log_p_qc[mask]
    return divergence(log_p_orig, log_p_qc, direction)


@dataclass
class QPRConfig:
    """Options of the query-preserving regularizer; ``weight`` 0 disables it.

    ``span_pooling`` pools the query component over the query's tokens inside the augmented input;
    ``span_mark`` counts Promptriever's ``{?}`` mark as part of the query (the reference's student is the last
    token of ``"query:  {q}{?}"``). ``teacher_passages``: ``shared`` scores the teacher against the
    student's passage embeddings (detached), ``reencode`` against a second passage pass without gradient
    (the reference's; its own dropout draw). Each field is the command-line option ``--qpr_<field>``.
    """

    weight: float = 0.0
    temperature: float | None = None
    direction: str = "forward"
    stop_gradient: bool = True
    candidates: str = "batch"
    span_pooling: str = "mean"
    span_mark: bool = False
    teacher_passages: str = "shared"

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("direction", self.direction, DIRECTIONS),
            ("teacher_passages", self.teacher_passages, TEACHER_PASSAGES),
            ("candidates", self.candidates, CANDIDATES),
            ("span_pooling", self.span_pooling, SPAN_POOLINGS),
        ):
            if value not in choices:
                raise InputError(f"--qpr_{name}", f"must be one of {', '.join(choices)}, got {value!r}")
        check_finite(qpr_weight=self.weight, qpr_temperature=self.temperature)
        if self.weight < 0:
            raise InputError("--qpr-weight", f"must be >= 0, got {self.weight}")
        if self.temperature is not None and self.temperature <= 0:
            raise InputError("--qpr-temperature", f"must be > 0, got {self.temperature}")

    @property
    def enabled(self) -> bool:
        """Whether the regularizer contributes to the loss."""
        return self.weight > 0


@dataclass
class LossOutput:
    """Total loss and its parts; ``regularizer`` is unweighted; ``statistics`` the regularizer's
    distributions (see :func:`distribution_statistics`), empty when it is off or has no row."""

    loss: Tensor
    contrastive: Tensor
    regularizer: Tensor
    statistics: dict[str, Tensor] = field(default_factory=dict)


def contrastive_qpr_loss(
    aug: Tensor,
    passages: Tensor,
    targets: Tensor,
    *,
    temperature: float,
    qpr: QPRConfig,
    group_size: int,
    original: Tensor | None = None,
    component: Tensor | None = None,
    has_instruction: Tensor | None = None,
    teacher_passages: Tensor | None = None,
) -> LossOutput:
    """``info_nce(aug) + qpr.weight * qpr_regularizer(original, component)`` over rows with an instruction.

    ``original`` and ``component`` are required when the regularizer is enabled; ``has_instruction`` None
    means every row has one; ``teacher_passages`` the teacher's own passage embeddings (default: ``passages``).
    """
    contrastive = info_nce(aug, passages, targets, temperature)
    if not qpr.enabled:
        return LossOutput(loss=contrastive, contrastive=contrastive, regularizer=contrastive.new_zeros(()))
    if original is None or component is None:
        raise ValueError("QPR weight > 0 needs the original and query-component embeddings")
    log_p_orig, log_p_qc = qpr_distributions(
        original,
        component,
        passages,
        temperature=qpr.temperature if qpr.temperature is not None else temperature,
        stop_gradient=qpr.stop_gradient,
        group_size=group_size if qpr.candidates == "group" else None,
        teacher_passages=teacher_passages,
    )
    if has_instruction is not None:
        if not bool(has_instruction.any()):
            zero = component.sum() * 0
            return LossOutput(loss=contrastive + zero, contrastive=contrastive, regularizer=zero)
        log_p_orig, log_p_qc = log_p_orig[has_instruction], log_p_qc[has_instruction]
    regularizer = divergence(log_p_orig, log_p_qc, qpr.direction)
    return LossOutput(
        loss=contrastive + qpr.weight * regularizer,
        contrastive=contrastive,
        regularizer=regularizer,
        statistics=distribution_statistics(log_p_orig, log_p_qc),
    )
