"""Encoder settings are type-checked on load; user errors are InputErrors naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError


def _preset(tmp_path: Path, **settings: object) -> Path:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"model": "some/model", **settings}))
    return path


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("query_max_length", "256"),
        ("normalize", "no"),
        ("normalize", 1),
        ("query_max_length", True),
        ("pooling", 3),
        ("lora", ["a"]),
        ("passage_encoder", "minilm"),
        ("model", None),
    ],
)
def test_a_setting_of_the_wrong_type_names_field_and_file(tmp_path: Path, field: str, value: object) -> None:
    path = _preset(tmp_path, **{field: value})
    with pytest.raises(InputError, match=f"field '{field}'") as caught:
        EncoderConfig.from_file(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("pooling", "max", "choose one of"),
        ("dtype", "int8", "choose one of"),
        ("padding_side", "up", "'left' or 'right'"),
        ("passage_max_length", 1, "at least 2"),
        ("template", "{instruction} only", "unknown template"),
    ],
)
def test_a_bad_value_names_field_and_file(tmp_path: Path, field: str, value: object, reason: str) -> None:
    path = _preset(tmp_path, **{field: value})
    with pytest.raises(InputError, match=reason) as caught:
        EncoderConfig.from_file(path)
    assert f"{path}: field '{field}'" in str(caught.value)


def test_well_typed_settings_load(tmp_path: Path) -> None:
    path = _preset(tmp_path, lora=None, normalize=False, query_max_length=64, passage_encoder={"model": "x"})
    config = EncoderConfig.from_file(path)
    assert (config.normalize, config.query_max_length, config.lora) == (False, 64, None)


def test_unknown_setting_and_bad_json_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown encoder setting"):
        EncoderConfig.from_file(_preset(tmp_path, pooling_mode="mean"))
    (tmp_path / "broken.json").write_text('{"model": ')
    with pytest.raises(InputError, match="not valid JSON"):
        EncoderConfig.from_file(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(InputError, match="JSON object"):
        EncoderConfig.from_file(tmp_path / "list.json")


def test_constructing_in_python_is_checked_too() -> None:
    with pytest.raises(InputError, match="field 'normalize'"):
        EncoderConfig(model="m", normalize="no")  # type: ignore[arg-type]
