"""The regularizer's strength in the training log: statistics, gradient shares and the "not acting" warning."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.train.__main__ import build_trainer
from qpr_pyserini.train.arguments import parse_arguments
from qpr_pyserini.train.loss import LossOutput
from qpr_pyserini.train.strength import RegularizerMonitor, term_gradient_norms

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest)

GROUP = 3


def train_logs(llama: EncoderConfig, data: Path, output: Path, *extra: str) -> list[dict]:
    args = [
        *("--encoder", llama.model, "--train-data", str(data), "--output-dir", str(output)),
        *("--qpr-preset", "reference", "--group-size", str(GROUP), "--per-device-train-batch-size", "6"),
        *("--save-strategy", "no", "--report-to", "none", "--disable-tqdm", "true", "--logging-steps", "1"),
        *("--learning-rate", "1e-5", *extra),
    ]
    trainer = build_trainer(parse_arguments(args))
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def test_a_two_step_run_logs_the_regularizers_strength(
    llama: EncoderConfig, data: Path, tmp_path: Path
) -> None:
    logs = train_logs(llama, data, tmp_path / "out", "--max-steps", "2")
    assert len(logs) == 2
    for entry in logs:
        assert entry["qpr_uniform"] == pytest.approx(math.log(GROUP))
        assert entry["qpr_cross_entropy"] == pytest.approx(entry["regularizer"])  # the reference's direction
        assert entry["qpr_cross_entropy"] >= entry["qpr_teacher_entropy"] - 1e-6  # H(t) + KL(t || s)
        assert 0 < entry["qpr_student_entropy"] <= math.log(GROUP) + 1e-6
        assert 0 < entry["qpr_grad_share"] < 1
        share = entry["qpr_grad_norm"] / (entry["qpr_grad_norm"] + entry["contrastive_grad_norm"])
        assert entry["qpr_grad_share"] == pytest.approx(share)


def test_the_warning_fires_when_the_regularizer_is_inert_and_not_when_it_acts(
    llama: EncoderConfig, data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = ("--max-steps", "3", "--qpr-inert-warning-steps", "2")
    with caplog.at_level(logging.WARNING, logger="qpr_pyserini.train.strength"):
        inert = train_logs(llama, data, tmp_path / "inert", *extra)  # raw cosines: near uniform
    warnings = [r for r in caplog.records if "not acting" in r.getMessage()]
    assert len(warnings) == 1 and all(entry["qpr_grad_share"] < 0.01 for entry in inert)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="qpr_pyserini.train.strength"):
        acting = train_logs(llama, data, tmp_path / "acting", *extra, "--qpr-temperature", "0.01")
    assert not [r for r in caplog.records if "not acting" in r.getMessage()]
    assert all(entry["qpr_grad_share"] > 0.1 for entry in acting)


def test_gradient_logging_can_be_turned_off(llama: EncoderConfig, data: Path, tmp_path: Path) -> None:
    logs = train_logs(llama, data, tmp_path / "out", "--max-steps", "1", "--qpr-log-gradients", "false")
    assert "qpr_grad_share" not in logs[0] and "qpr_cross_entropy" in logs[0]


def test_term_gradient_norms_are_each_terms_own_gradient() -> None:
    weight = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    frozen = torch.nn.Parameter(torch.tensor([1.0]), requires_grad=False)
    model = torch.nn.Module()
    model.weight, model.frozen = weight, frozen
    contrastive = (weight * torch.tensor([1.0, 0.0])).sum() * frozen.sum()  # gradient (1, 0): norm 1
    regularizer = (weight**2).sum() / 2  # gradient = weight: norm 5, times the weight 0.2: 1
    output = LossOutput(contrastive + 0.2 * regularizer, contrastive, regularizer)
    norms = term_gradient_norms(model, output, weight=0.2)
    assert norms == pytest.approx({"contrastive_grad_norm": 1.0, "qpr_grad_norm": 1.0, "qpr_grad_share": 0.5})
    output.loss.backward()  # the graph is kept for the step's own backward
    assert weight.grad is not None


@pytest.mark.parametrize(
    ("logs", "warned"),
    [
        ([{"qpr_cross_entropy": 2.08, "qpr_uniform": 2.0794, "qpr_grad_share": 0.001}] * 3, True),
        ([{"qpr_cross_entropy": 2.08, "qpr_uniform": 2.0794, "qpr_grad_share": 0.2}] * 3, False),
        ([{"qpr_cross_entropy": 1.5, "qpr_uniform": 2.0794, "qpr_grad_share": 0.001}] * 3, False),
        ([{"qpr_cross_entropy": 2.08, "qpr_uniform": 2.0794, "qpr_grad_share": 0.001}] * 2, False),
        ([{"loss": 1.0}] * 5, False),
    ],
)
def test_monitor_warns_only_after_the_first_n_inert_logs(
    logs: list[dict], warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = RegularizerMonitor(steps=3)
    with caplog.at_level(logging.WARNING, logger="qpr_pyserini.train.strength"):
        for entry in logs:
            monitor.observe(entry)
    assert monitor.warned == warned and len(caplog.records) == int(warned)
