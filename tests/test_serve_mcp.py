"""The MCP endpoint (``--mcp``), running for real beside the REST API, talked to with fastmcp's own client:
the tools Pyserini's MCP server names, answering as the REST routes (and so as the search CLI) answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError
from serve_helpers import TOPICS, build_indexes, running

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.serve.app import create_app
from qpr_pyserini.serve.auth import ApiKeys
from qpr_pyserini.serve.mcp import build_mcp
from qpr_pyserini.serve.service import load_service
from qpr_pyserini.serve.settings import IndexSpec

KEY = "mcp-test-key"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> Iterator[str]:
    built = build_indexes(tmp_path_factory.mktemp("serve-mcp"), tiny_encoder)
    service = load_service(
        [IndexSpec("flat", (built["flat"],), corpus=built["corpus"]), IndexSpec("shards", (built["shards"],))]
    )
    mcp_app = build_mcp(service).http_app(path="/")
    app = create_app(service, api_keys=ApiKeys([KEY]), mounts={"/mcp": mcp_app}, lifespans=[mcp_app.lifespan])
    with running(app) as base:
        yield base


def call(url: str, tool: str, arguments: dict[str, Any], auth: str | None = KEY) -> Any:
    async def go() -> Any:
        async with Client(f"{url}/mcp/", auth=auth) as client:
            return (await client.call_tool(tool, arguments)).structured_content

    return asyncio.run(go())


def test_tools_are_pyserinis_names(url: str) -> None:
    async def names() -> set[str]:
        async with Client(f"{url}/mcp/", auth=KEY) as client:
            return {tool.name for tool in await client.list_tools()}

    assert asyncio.run(names()) == {"search", "get_document", "list_indexes"}


@pytest.mark.parametrize("index", ["flat", "shards"])
def test_search_with_an_instruction_equals_the_rest_answer(url: str, index: str) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}) as rest:
        for _, query, instruction in TOPICS:
            params = {"query": query, "hits": 4, **({"instruction": instruction} if instruction else {})}
            expected = rest.get(f"/v1/{index}/search", params=params).json()
            got = call(url, "search", {"query": query, "instruction": instruction, "index": index, "hits": 4})
            assert got == expected


def test_get_document_and_list_indexes(url: str) -> None:
    assert call(url, "get_document", {"docid": "d2", "index": "flat"})["doc"]["title"] == "Cherry"
    assert call(url, "get_document", {"docid": "d2", "index": "shards"})["doc"] is None
    listed = call(url, "list_indexes", {})["result"]
    assert [i["name"] for i in listed] == ["flat", "shards"] and listed[1]["shards"] == 3


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search", {"query": "apple"}, "name an index: one of flat, shards"),
        ("search", {"query": "apple", "index": "nope"}, "Index not found: nope"),
        ("search", {"query": " ", "index": "flat"}, "'query' is required"),
        ("search", {"query": "apple", "index": "flat", "hits": 0}, "'hits' must be positive"),
        ("get_document", {"docid": "d999", "index": "flat"}, "Document not found: d999"),
    ],
)
def test_refusals_are_tool_errors_with_the_rest_message(
    url: str, tool: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        call(url, tool, arguments)
    assert call(url, "search", {"query": "kiwi", "index": "flat", "hits": 1})["candidates"]


def test_the_mcp_endpoint_needs_the_key_too(url: str) -> None:
    response = httpx.post(f"{url}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401 and "API key" in response.json()["error"]
