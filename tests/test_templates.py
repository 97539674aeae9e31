from __future__ import annotations

import pytest

from qpr_pyserini.templates import NAMED_TEMPLATES, resolve_template


@pytest.mark.parametrize(
    ("name", "query", "instruction", "expected"),
    [
        ("promptriever", "is water wet", "be brief", "query:  is water wet? be brief"),
        ("promptriever", "Water is wet.", "be brief", "query:  Water is wet. be brief"),
        ("instruction-first", "water", "be brief", "query:  Instruct: be brief\nQuery: water"),
        ("instructir", "water", "be brief", "query:  be brief [SEP] water"),
        ("concat", "water", "be brief", "query:  water be brief"),
        ("promptriever", "is water wet", None, "query:  is water wet?"),
        ("instruction-first", "water", "  ", "query:  water"),
    ],
)
def test_named_templates_format_and_locate_the_query(name, query, instruction, expected) -> None:
    formatted = resolve_template(name, prefix="query:  ").format(query, instruction)
    assert formatted.text == expected
    assert formatted.query == query.strip()


def test_user_format_string() -> None:
    template = resolve_template("<i>{instruction}</i> <q>{query}</q>")
    formatted = template.format("water", "wet")
    assert formatted.text == "<i>wet</i> <q>water</q>"
    assert formatted.query == "water"
    assert not template.query_first


def test_query_position_is_known() -> None:
    assert resolve_template("promptriever").query_first
    assert not resolve_template("instruction-first").query_first
    assert set(NAMED_TEMPLATES) == {"promptriever", "instruction-first", "instructir", "concat"}


@pytest.mark.parametrize(
    "bad", ["no fields", "{query} only", "{query} {instruction} {other}", "unknown-name"]
)
def test_bad_templates_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        resolve_template(bad)
