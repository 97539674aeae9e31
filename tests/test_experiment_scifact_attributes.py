"""scripts/experiment_scifact_attributes.py: the arms differ from the recipe in the loss alone."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from qpr_pyserini.train.arguments import parse_arguments

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
experiment = pytest.importorskip("experiment_scifact_attributes")


def parsed(arm: str, choice: tuple[float, float] | None = None, backbone: str = "minilm"):  # type: ignore[no-untyped-def]
    argv = ["--train-data", "rows.jsonl", "--output-dir", "unused", "--report-to", "none"]
    return parse_arguments(argv + experiment.arm_options(arm, choice, backbone))


def test_qpr_arms_keep_the_recipe_text_and_negatives_and_take_the_reference_loss() -> None:
    recipe_model, recipe_data, recipe_qpr, _ = parsed("promptriever")
    assert recipe_qpr.to_config().weight == 0
    for arm, choice in [("qpr-reference", None), ("qpr-dev", (10.0, 0.05))]:
        model, data, qpr, _ = parsed(arm, choice)
        # the preset alone would switch to "query:  {q}{?} {i}" and every instruction negative first
        assert model.encoder_config() == recipe_model.encoder_config()
        assert (
            data.sampler_options()
            == recipe_data.sampler_options()
            == {
                "instruction_negatives": 3,
                "order": "promptriever",
                "positive": "rotate",
                "instruction_rows": "instruction",
            }
        )
        config = qpr.to_config()
        assert (config.weight, config.temperature) == (choice or (1.0, 1.0))
        choices = (config.direction, config.candidates, config.span_pooling)
        assert choices == ("cross-entropy", "group", "last")


def test_plain_rows_keep_only_the_rows_without_instruction(tmp_path: Path) -> None:
    rows = [{"query_id": "a", "has_instruction": False}, {"query_id": "b", "has_instruction": True}]
    with gzip.open(tmp_path / "train.jsonl.gz", "wt") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    path = experiment.plain_rows(tmp_path / "train.jsonl.gz", tmp_path / "work" / "plain.jsonl")
    assert [json.loads(line)["query_id"] for line in path.read_text().splitlines()] == ["a"]


def test_decoder_arms_put_the_query_first_in_every_arm_and_differ_in_the_loss_alone() -> None:
    recipe_model, recipe_data, recipe_qpr, _ = parsed("promptriever", backbone="smollm2-135m")
    assert (recipe_model.template, recipe_model.query_prefix) == ("promptriever", "query:  ")
    assert recipe_qpr.to_config().weight == 0
    for arm, choice, expected in [
        ("qpr-reference", None, (1.0, 1.0)),
        ("qpr-null", None, (1e-6, 1.0)),
        ("qpr-acting", (1.0, 0.05), (1.0, 0.05)),
    ]:
        model, data, qpr, _ = parsed(arm, choice, "smollm2-135m")
        assert (model.template, model.query_prefix) == (recipe_model.template, recipe_model.query_prefix)
        assert data.sampler_options() == recipe_data.sampler_options()
        config = qpr.to_config(causal=True)
        assert (config.weight, config.temperature) == expected
        assert (config.direction, config.span_pooling, config.span_mark) == ("cross-entropy", "last", True)


def test_logged_strength_and_runtime_read_the_trainers_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(
        "INFO something\n"
        "{'loss': '5.8', 'contrastive': '4.7', 'regularizer': '1.108', 'qpr_cross_entropy': '1.108', "
        "'qpr_uniform': '1.099', 'qpr_grad_share': '0.002', 'epoch': '1'}\n"
        "{'loss': '5.7', 'contrastive': '4.6', 'regularizer': '0', 'epoch': '2'}\n"
        "{'train_runtime': '23.26', 'train_samples_per_second': '55.29', 'epoch': '1'}\n"
    )
    assert experiment.logged_strength(log) == [
        {
            "qpr_grad_share": 0.002,
            "qpr_cross_entropy": 1.108,
            "qpr_uniform": 1.099,
            "contrastive": 4.7,
            "regularizer": 1.108,
        },
        {"contrastive": 4.6, "regularizer": 0.0},
    ]
    assert experiment.logged_strength(tmp_path / "missing.log") == []
    assert experiment.logged_runtime(log) == 23.26
    assert experiment.logged_runtime(tmp_path / "missing.log") is None
