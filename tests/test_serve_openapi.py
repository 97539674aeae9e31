"""The published OpenAPI document (Pyserini's ``openapi.yaml``, extended) and a bounded schemathesis run
against the live server: no 5xx, no response outside the document, schema-valid requests accepted and
schema-invalid ones refused. (benchmarks/fuzz_serve.py runs the same checks longer, on SciFact.)"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from serve_helpers import build_indexes, running

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.serve.app import create_app
from qpr_pyserini.serve.openapi import pyserini_document
from qpr_pyserini.serve.service import load_service
from qpr_pyserini.serve.settings import IndexSpec, Limits

EXAMPLES = 60  # per generation mode; about 2 s each here


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> Iterator[str]:
    built = build_indexes(tmp_path_factory.mktemp("serve-openapi"), tiny_encoder)
    service = load_service(
        [IndexSpec("flat", (built["flat"],), corpus=built["corpus"]), IndexSpec("hnsw", (built["hnsw"],))],
        limits=Limits(hits=50, query_chars=300, instruction_chars=300, batch_queries=8),
    )
    with running(create_app(service)) as base:
        yield base


def test_the_document_is_pyserinis_extended(url: str) -> None:
    served = httpx.get(f"{url}/openapi.json").json()
    assert yaml.safe_load(httpx.get(f"{url}/openapi.yaml").text) == served
    original = pyserini_document()
    for path, operations in original["paths"].items():  # every Pyserini operation, with its responses
        for method, operation in operations.items():
            ours = served["paths"][path][method]
            assert ours["operationId"] == operation["operationId"]
            assert set(operation["responses"]) <= set(ours["responses"])
    search = served["paths"]["/{index}/search"]
    names = [p["name"] for p in search["get"]["parameters"]]
    assert names[:3] == ["index", "query", "instruction"] and "k1" not in names
    assert search["get"]["parameters"][0]["schema"]["enum"] == ["flat", "hnsw"]
    assert search["post"]["operationId"] == "batchSearchV1"
    assert served["paths"]["/indexes"]["get"]["operationId"] == "listIndexesV1"
    assert served["servers"] == original["servers"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_failure(url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")

    @given(case=schema.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=f"{url}/v1")  # every default check, 5xx included

    check()
