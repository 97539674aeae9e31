"""The FastAPI app: Anserini's v1 routes (as Pyserini's ``pyserini.server.rest`` serves them) over a
SearchService, plus instructions, a batch form and the index list.

- ``GET /v1/{index}/search?query=...&instruction=...&hits=10[&parse=true&max_doc_length=N]``
- ``POST /v1/{index}/search`` with ``{"queries": [{"query": ..., "instruction": ...}], "hits": 10}``
- ``GET /v1/{index}/doc/{docid}[?parse=true&max_doc_length=N]``
- ``GET /v1/indexes``; ``GET /openapi.yaml`` (and ``/openapi.json``, ``/docs``); ``GET /``

Every refusal is ``{"error": "..."}`` with its status. Parameters are parsed here (not by FastAPI's
validation) so that the messages are Pyserini's. One difference: ``max_doc_length`` with ``parse=false`` cuts
the document string (Pyserini refuses the pair with 400).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from qpr_pyserini.serve.auth import ApiKeys
from qpr_pyserini.serve.errors import ApiError
from qpr_pyserini.serve.guard import Guard
from qpr_pyserini.serve.openapi import openapi_document
from qpr_pyserini.serve.service import QueryItem, SearchService

API = "v1"
DEFAULT_HITS = 10
ROUTE_ERROR = "Expected route /v1/{index}/search, /v1/{index}/doc/{docid} or /v1/indexes"
BATCH_FIELDS = {"queries", "hits", "parse", "max_doc_length"}

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def create_app(
    service: SearchService,
    *,
    api_keys: ApiKeys | None = None,
    mounts: dict[str, Any] | None = None,
    lifespans: list[Lifespan] | None = None,
) -> FastAPI:
    """The REST app over ``service``; ``mounts`` (path -> ASGI app, e.g. the MCP endpoint) are served beside
    it, behind the same keys and limits, with their ``lifespans`` run with the app's."""
    document = openapi_document(list(service.indexes), service.limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _all(app, lifespans or []):
            yield
        await service.close()

    app = FastAPI(title=document["info"]["title"], version=API, lifespan=lifespan)
    app.openapi = lambda: document  # type: ignore[method-assign]
    app.add_middleware(Guard, keys=api_keys or ApiKeys([]), body_bytes=service.limits.body_bytes)

    @app.exception_handler(ApiError)
    async def refused(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return JSONResponse({"error": ROUTE_ERROR}, 404)
        if exc.status_code == 405:
            allowed = ", ".join(sorted((exc.headers or {}).get("Allow", "GET").split(", ")))
            message = f"Method {request.method} not allowed: use {allowed}"
            return JSONResponse({"error": message}, 405, headers={"Allow": allowed})
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "; ".join(str(e.get("msg")) for e in exc.errors())}, 400)

    @app.get("/", include_in_schema=False)
    async def root() -> dict[str, Any]:
        return {
            "name": document["info"]["title"],
            "version": API,
            "indexes": list(service.indexes),
            "openapi": "/openapi.yaml",
            "documentation": "/docs",
            **({"mcp": "/mcp/"} if mounts and "/mcp" in mounts else {}),
        }

    @app.get("/openapi.yaml", include_in_schema=False)
    async def openapi_yaml() -> PlainTextResponse:
        return PlainTextResponse(yaml.safe_dump(document, sort_keys=False), media_type="application/yaml")

    @app.get(f"/{API}/indexes")
    async def list_indexes() -> dict[str, Any]:
        return {"api": API, "indexes": service.describe()}

    @app.api_route(f"/{API}/{{index}}/search", methods=["GET", "POST"])
    async def search(request: Request, index: str) -> dict[str, Any]:
        if request.method == "POST":
            return await batch_search(request, index)
        params = request.query_params
        _refuse_bm25(params)
        query = params.get("query")
        if query is None:
            raise ApiError(400, "Parameter 'query' is required")
        item = QueryItem(query, params.get("instruction"))
        parse, max_doc_length = _document_options(params.get("parse"), params.get("max_doc_length"))
        hits = _int_param(params.get("hits"), "hits", DEFAULT_HITS)
        [result] = await service.search(index, [item], hits, parse=parse, max_doc_length=max_doc_length)
        return {"api": API, "index": index, **result}

    async def batch_search(request: Request, index: str) -> dict[str, Any]:
        service.index(index)  # an unknown index is a 404 before the body is read
        payload = _json_body(await request.body())
        items, hits, parse, max_doc_length = _batch(payload)
        results = await service.search(index, items, hits, parse=parse, max_doc_length=max_doc_length)
        return {"api": API, "index": index, "results": results}

    @app.get(f"/{API}/{{index}}/doc/{{docid:path}}")
    async def document_route(request: Request, index: str, docid: str) -> dict[str, Any]:
        params = request.query_params
        parse, max_doc_length = _document_options(params.get("parse"), params.get("max_doc_length"))
        doc = service.document(index, docid, parse=parse, max_doc_length=max_doc_length)
        return {"api": API, "index": index, "docid": docid, "doc": doc}

    for path, mounted in (mounts or {}).items():
        app.mount(path, mounted)
    return app


@asynccontextmanager
async def _all(app: Any, lifespans: list[Lifespan]) -> AsyncIterator[None]:
    if not lifespans:
        yield
        return
    async with lifespans[0](app), _all(app, lifespans[1:]):
        yield


def _refuse_bm25(params: Any) -> None:
    if params.get("k1") is not None or params.get("b") is not None:
        raise ApiError(400, "BM25 parameters k1 and b apply only to sparse (tf) indexes")


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Parameter '{name}' must be an integer") from None


def _document_options(parse_raw: str | None, length_raw: str | None) -> tuple[bool, int | None]:
    """``parse`` ('true' / 'false', default true) and ``max_doc_length`` (positive)."""
    parse = True
    if parse_raw is not None:
        lowered = parse_raw.strip().lower()
        if lowered not in ("true", "false"):
            raise ApiError(400, "Parameter 'parse' must be 'true' or 'false'")
        parse = lowered == "true"
    length = None
    if length_raw is not None and length_raw.strip():
        length = _int_param(length_raw, "max_doc_length", 0)
        if length <= 0:
            raise ApiError(400, "Parameter 'max_doc_length' must be positive")
    return parse, length


def _json_body(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "Request body is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ApiError(
            400, f"Request body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        ) from None


def _batch(payload: Any) -> tuple[list[QueryItem], int, bool, int | None]:
    """The queries and options of a batch request body (see BatchSearchRequest in the OpenAPI document)."""
    if not isinstance(payload, dict):
        raise ApiError(400, "Request body must be a JSON object with 'queries'")
    unknown = set(payload) - BATCH_FIELDS
    if unknown:
        raise ApiError(400, f"Unknown field(s) {sorted(unknown)}; expected {sorted(BATCH_FIELDS)}")
    queries = payload.get("queries")
    if not isinstance(queries, list) or not queries:
        raise ApiError(400, '\'queries\' must be a non-empty list of {"query": ..., "instruction": ...}')
    items = []
    for number, entry in enumerate(queries):
        if not isinstance(entry, dict) or set(entry) - {"query", "instruction"}:
            raise ApiError(
                400, f"queries[{number}] must be an object with 'query' and optional 'instruction'"
            )
        query, instruction = entry.get("query"), entry.get("instruction")
        if not isinstance(query, str):
            raise ApiError(400, f"Parameter 'queries[{number}].query' is required (a string)")
        if instruction is not None and not isinstance(instruction, str):
            raise ApiError(400, f"queries[{number}].instruction must be a string or null")
        items.append(QueryItem(query, instruction))
    hits = _json_int(payload.get("hits", DEFAULT_HITS), "hits")
    parse = payload.get("parse", True)
    if not isinstance(parse, bool):
        raise ApiError(400, "Parameter 'parse' must be true or false")
    length = payload.get("max_doc_length")
    if length is not None:
        length = _json_int(length, "max_doc_length")
        if length < 1:
            raise ApiError(400, "Parameter 'max_doc_length' must be positive")
    return items, hits, parse, length


def _json_int(value: Any, name: str) -> int:
    """A JSON integer (JSON Schema counts 3.0 as one; true is not)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"Parameter '{name}' must be an integer")
    return value
