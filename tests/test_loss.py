"""Tests of the contrastive objective and the query-preserving regularizer."""

from __future__ import annotations

import math

import pytest
import torch

from qpr_pyserini.train.loss import QPRConfig, contrastive_qpr_loss, info_nce, qpr_regularizer


def _softmax(logits: list[float]) -> list[float]:
    total = sum(math.exp(x) for x in logits)
    return [math.exp(x) / total for x in logits]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


# Two rows, three passages, temperature 0.5. Logits = (row . passage) / 0.5:
#   original  row 0 [1, 0] -> [2, 0, 0]    component row 0 [0, 1] -> [0, 2, 0]
#   original  row 1 [0, 1] -> [0, 2, 0]    component row 1 [1, 1] -> [2, 2, 0]
ORIGINAL = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
COMPONENT = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
PASSAGES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
P_ORIG = [_softmax([2, 0, 0]), _softmax([0, 2, 0])]
P_QC = [_softmax([0, 2, 0]), _softmax([2, 2, 0])]


def test_info_nce_hand_computed() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    passages = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 1])
    # Temperature 0.5: row 0 logits [2, 0, -2, 0], positive 0 -> CE = -2 + log(e^2 + 1 + e^-2 + 1)
    #                  row 1 logits [0, 2, 0, 0],  positive 1 -> CE = -2 + log(1 + e^2 + 1 + 1)
    ce0 = -2 + math.log(math.exp(2) + 1 + math.exp(-2) + 1)
    ce1 = -2 + math.log(3 + math.exp(2))
    value = info_nce(queries, passages, targets, temperature=0.5)
    assert value.item() == pytest.approx((ce0 + ce1) / 2, abs=1e-6)


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        ("forward", (_kl(P_ORIG[0], P_QC[0]) + _kl(P_ORIG[1], P_QC[1])) / 2),
        ("reverse", (_kl(P_QC[0], P_ORIG[0]) + _kl(P_QC[1], P_ORIG[1])) / 2),
        (
            "symmetric",
            (
                _kl(P_ORIG[0], P_QC[0])
                + _kl(P_ORIG[1], P_QC[1])
                + _kl(P_QC[0], P_ORIG[0])
                + _kl(P_QC[1], P_ORIG[1])
            )
            / 4,
        ),
    ],
)
def test_qpr_regularizer_hand_computed(direction: str, expected: float) -> None:
    value = qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, direction=direction)
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_cross_entropy_hand_computed() -> None:
    value = qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, direction="cross-entropy")
    expected = [-sum(p * math.log(q) for p, q in zip(P_ORIG[r], P_QC[r], strict=True)) for r in (0, 1)]
    assert value.item() == pytest.approx(sum(expected) / 2, abs=1e-6)


def test_cross_entropy_has_the_forward_kl_gradient_under_stop_gradient() -> None:
    grads = []
    for direction in ("forward", "cross-entropy"):
        component = COMPONENT.clone().requires_grad_()
        qpr_regularizer(ORIGINAL, component, PASSAGES, temperature=0.5, direction=direction).backward()
        grads.append(component.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("direction", ["forward", "reverse", "symmetric", "cross-entropy"])
def test_stop_gradient_keeps_the_teachers_passages_out_of_the_graph(direction: str) -> None:
    """The teacher is scored without gradient: passages get only the student's gradient."""
    grads = {}
    for by_hand in (False, True):
        passages = PASSAGES.clone().requires_grad_()
        original = ORIGINAL.clone().requires_grad_()
        if by_hand:  # by hand: the teacher's distribution as a constant
            with torch.no_grad():
                teacher = torch.log_softmax(original @ passages.T / 0.5, dim=-1)
            student = torch.log_softmax(COMPONENT @ passages.T / 0.5, dim=-1)
            value = {
                "forward": (teacher.exp() * (teacher - student)).sum(-1).mean(),
                "reverse": (student.exp() * (student - teacher)).sum(-1).mean(),
                "cross-entropy": -(teacher.exp() * student).sum(-1).mean(),
            }
            value["symmetric"] = (value["forward"] + value["reverse"]) / 2
            value[direction].backward()
        else:
            qpr_regularizer(original, COMPONENT, passages, temperature=0.5, direction=direction).backward()
            assert original.grad is None
        grads[by_hand] = passages.grad
    torch.testing.assert_close(grads[False], grads[True])


def test_forward_and_reverse_differ() -> None:
    forward = qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, direction="forward")
    reverse = qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, direction="reverse")
    assert abs(forward.item() - reverse.item()) > 1e-3


@pytest.mark.parametrize("direction", ["forward", "reverse", "symmetric"])
def test_zero_when_component_equals_original(direction: str) -> None:
    value = qpr_regularizer(ORIGINAL, ORIGINAL.clone(), PASSAGES, temperature=0.5, direction=direction)
    assert value.item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("direction", ["forward", "reverse", "symmetric"])
def test_stop_gradient(direction: str) -> None:
    grads = {}
    for stop in (True, False):
        original = ORIGINAL.clone().requires_grad_()
        component = COMPONENT.clone().requires_grad_()
        qpr_regularizer(
            original, component, PASSAGES, temperature=0.5, direction=direction, stop_gradient=stop
        ).backward()
        assert component.grad is not None and component.grad.abs().sum() > 0
        grads[stop] = original.grad
    assert grads[True] is None
    assert grads[False] is not None and grads[False].abs().sum() > 0


def test_group_mode_sees_only_own_group() -> None:
    torch.manual_seed(0)
    original, component, passages = torch.randn(2, 3), torch.randn(2, 3), torch.randn(4, 3)
    changed = passages.clone()
    changed[2:] = torch.randn(2, 3)  # group of row 1
    row0 = torch.tensor([True, False])

    def group(p: torch.Tensor) -> float:
        return qpr_regularizer(original, component, p, temperature=0.5, group_size=2, mask=row0).item()

    def batch(p: torch.Tensor) -> float:
        return qpr_regularizer(original, component, p, temperature=0.5, mask=row0).item()

    assert group(changed) == pytest.approx(group(passages), abs=1e-7)
    assert abs(batch(changed) - batch(passages)) > 1e-4
    alone = qpr_regularizer(original[:1], component[:1], passages[:2], temperature=0.5).item()
    assert group(passages) == pytest.approx(alone, abs=1e-6)


def test_group_mode_rejects_wrong_passage_count() -> None:
    with pytest.raises(ValueError, match="group candidates"):
        qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, group_size=2)


def test_mask_excludes_rows() -> None:
    masked = qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, mask=torch.tensor([False, True]))
    assert masked.item() == pytest.approx(_kl(P_ORIG[1], P_QC[1]), abs=1e-6)


def test_empty_mask_is_zero_with_graph() -> None:
    component = COMPONENT.clone().requires_grad_()
    value = qpr_regularizer(ORIGINAL, component, PASSAGES, temperature=0.5, mask=torch.tensor([False, False]))
    assert value.item() == 0.0
    value.backward()
    assert component.grad is not None and component.grad.abs().sum() == 0


def test_bad_direction_rejected() -> None:
    with pytest.raises(ValueError, match="direction"):
        qpr_regularizer(ORIGINAL, COMPONENT, PASSAGES, temperature=0.5, direction="sideways")


def test_weight_zero_equals_info_nce() -> None:
    targets = torch.tensor([0, 1])
    out = contrastive_qpr_loss(
        ORIGINAL, PASSAGES, targets, temperature=0.5, qpr=QPRConfig(), group_size=1, component=COMPONENT
    )
    expected = info_nce(ORIGINAL, PASSAGES, targets, 0.5)
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-7)
    assert out.contrastive.item() == pytest.approx(expected.item(), abs=1e-7)
    assert out.regularizer.item() == 0.0


def test_weighted_sum_and_default_temperature() -> None:
    aug, targets, mask = COMPONENT, torch.tensor([0, 1]), torch.tensor([True, False])
    out = contrastive_qpr_loss(
        aug,
        PASSAGES,
        targets,
        temperature=0.5,
        qpr=QPRConfig(weight=0.3),
        group_size=1,
        original=ORIGINAL,
        component=COMPONENT,
        has_instruction=mask,
    )
    # Regularizer temperature defaults to the contrastive one (0.5): only row 0 counts.
    assert out.regularizer.item() == pytest.approx(_kl(P_ORIG[0], P_QC[0]), abs=1e-6)
    assert out.contrastive.item() == pytest.approx(info_nce(aug, PASSAGES, targets, 0.5).item(), abs=1e-7)
    assert out.loss.item() == pytest.approx(out.contrastive.item() + 0.3 * out.regularizer.item(), abs=1e-6)


def test_own_temperature_and_group_candidates() -> None:
    torch.manual_seed(1)
    aug, original, component, passages = (
        torch.randn(2, 3),
        torch.randn(2, 3),
        torch.randn(2, 3),
        torch.randn(4, 3),
    )
    qpr = QPRConfig(weight=1.0, temperature=0.2, candidates="group")
    out = contrastive_qpr_loss(
        aug,
        passages,
        torch.tensor([0, 2]),
        temperature=0.05,
        qpr=qpr,
        group_size=2,
        original=original,
        component=component,
    )
    expected = qpr_regularizer(original, component, passages, temperature=0.2, group_size=2)
    assert out.regularizer.item() == pytest.approx(expected.item(), abs=1e-6)


def test_enabled_regularizer_needs_embeddings() -> None:
    with pytest.raises(ValueError, match="original and query-component"):
        contrastive_qpr_loss(
            ORIGINAL, PASSAGES, torch.tensor([0, 1]), temperature=0.5, qpr=QPRConfig(weight=1.0), group_size=1
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"direction": "backward"}, "--qpr_direction"),
        ({"candidates": "corpus"}, "candidates"),
        ({"span_pooling": "max"}, "span_pooling"),
        ({"weight": -1.0}, "weight"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_config_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        QPRConfig(**kwargs)
