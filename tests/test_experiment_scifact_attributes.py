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


def parsed(arm: str, choice: tuple[float, float] | None = None):  # type: ignore[no-untyped-def]
    argv = ["--train-data", "rows.jsonl", "--output-dir", "unused", "--report-to", "none"]
    return parse_arguments(argv + experiment.arm_options(arm, choice))


def test_qpr_arms_keep_the_recipe_text_and_negatives_and_take_the_reference_loss() -> None:
    recipe_model, recipe_data, recipe_qpr, _ = parsed("promptriever")
    assert recipe_qpr.to_config().weight == 0
    for arm, choice in [("qpr-reference", None), ("qpr-dev", (10.0, 0.05))]:
        model, data, qpr, _ = parsed(arm, choice)
        # the preset alone would switch to "query:  {q}{?} {i}" and every instruction negative first
        assert model.encoder_config() == recipe_model.encoder_config()
        assert data.sampler_options() == recipe_data.sampler_options() == {
            "instruction_negatives": 3,
            "order": "promptriever",
        }
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
