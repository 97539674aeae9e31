"""The MCP server (``fastmcp``): the tools Pyserini's MCP server names (``search``, ``get_document``,
``list_indexes``), over the same SearchService as the REST routes, with ``instruction`` on ``search``.

Served over streamable HTTP at ``/mcp/`` beside the REST API (``--mcp``), behind the same keys and limits.
A refused call (unknown index, bad hits, overload) is a tool error carrying the REST message.
"""

from __future__ import annotations

from typing import Any

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

from qpr_pyserini.serve.errors import ApiError
from qpr_pyserini.serve.service import QueryItem, SearchService


def build_mcp(service: SearchService) -> FastMCP:
    """A FastMCP server whose tools search and read ``service``'s indexes."""
    names = ", ".join(service.indexes)
    mcp = FastMCP(
        "qpr_pyserini",
        instructions=f"Instruction-aware dense retrieval over the indexes {names}. Give a search an "
        "instruction to say which documents count as relevant (e.g. 'only studies in humans').",
    )

    def default_index(index: str | None) -> str:
        if index:
            return index
        if len(service.indexes) == 1:
            return next(iter(service.indexes))
        raise ToolError(f"name an index: one of {names}")

    @mcp.tool
    async def search(
        query: str, instruction: str | None = None, index: str | None = None, hits: int = 10
    ) -> dict[str, Any]:
        """Search an index for `query`, optionally with a natural-language `instruction` that says what makes a
        document relevant; returns the top `hits` candidates (docid, score, rank, doc). `index` may be left out
        when only one index is served (list_indexes names them)."""
        name = default_index(index)
        try:
            [result] = await service.search(name, [QueryItem(query, instruction)], hits)
        except ApiError as err:
            raise ToolError(err.message) from None
        return {"api": "v1", "index": name, **result}

    @mcp.tool
    def get_document(docid: str, index: str | None = None) -> dict[str, Any]:
        """The document with id `docid` in `index` (null when the index is served without its corpus)."""
        name = default_index(index)
        try:
            doc = service.document(name, docid)
        except ApiError as err:
            raise ToolError(err.message) from None
        return {"api": "v1", "index": name, "docid": docid, "doc": doc}

    @mcp.tool
    def list_indexes() -> list[dict[str, Any]]:
        """The served indexes: name, document count, dimension, encoder, instruction template, corpus."""
        return service.describe()

    return mcp
