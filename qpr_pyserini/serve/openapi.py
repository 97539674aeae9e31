"""The served OpenAPI document: Anserini's v1 surface as Pyserini ships it (``pyserini/server/rest/openapi.yaml``),
extended for this server.

Changes to Pyserini's document: ``{index}`` lists the served index names; ``query`` needs a non-blank text and,
like ``instruction`` (new) and ``hits``, has the server's limits; BM25's ``k1`` / ``b`` are gone (dense indexes
only: sent anyway, they get Pyserini's 400); ``POST /{index}/search`` takes a batch of ``{query, instruction}``;
``GET /indexes`` lists the indexes; 404 also means an unknown index, 413 an oversized body; a document may be
``null`` (no corpus served), which OpenAPI 3.1 spells as a type; ``max_doc_length`` also applies with
``parse=false``.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from qpr_pyserini.serve.service import NOT_BLANK
from qpr_pyserini.serve.settings import Limits

_MAX_DOC_LENGTH = (
    "Maximum characters of each document's text to return (with parse=false: of the document string). "
    "If omitted, return the full document."
)
_DESCRIPTION = (
    "Anserini's v1 REST surface (as Pyserini 2.4 serves it) over instruction-aware dense indexes: each query "
    "may carry a natural-language instruction, formatted by the index's instruction template."
)


@lru_cache(maxsize=1)
def pyserini_document() -> dict[str, Any]:
    """Pyserini's own OpenAPI document (read as a file: importing its server would start a JVM)."""
    text = resources.files("pyserini.server.rest").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def openapi_document(index_names: list[str], limits: Limits) -> dict[str, Any]:
    """The document this server publishes at ``/openapi.json`` and ``/openapi.yaml``."""
    doc = copy.deepcopy(pyserini_document())
    doc["info"] = {"title": "qpr_pyserini REST API", "version": "v1", "description": _DESCRIPTION}
    schemas = doc["components"]["schemas"]
    schemas["DocumentPayload"]["oneOf"].append({"type": "null"})
    schemas["DocumentPayload"].pop("nullable", None)
    schemas["Query"]["properties"]["instruction"] = {"type": ["string", "null"]}
    schemas.update(_new_schemas(limits))
    index = {
        "name": "index",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": index_names},
        "description": "Name of a served index (GET /indexes lists them).",
    }

    search = doc["paths"]["/{index}/search"]["get"]
    search["summary"] = "Search an index with an optional instruction"
    search["parameters"] = [index, *_search_parameters(search["parameters"], limits)]
    _extend_responses(search["responses"], "GET, or POST for a batch")
    search["responses"]["404"]["description"] = "Unknown index, or route not found."
    doc["paths"]["/{index}/search"]["post"] = _batch_operation(index, search["responses"])

    fetch = doc["paths"]["/{index}/doc/{docid}"]["get"]
    fetch["parameters"] = [index, *(p for p in fetch["parameters"] if p["name"] != "index")]
    for parameter in (*search["parameters"], *fetch["parameters"]):
        if parameter["name"] == "max_doc_length":
            parameter["description"] = _MAX_DOC_LENGTH
    fetch["responses"]["200"]["description"] = (
        "Document found (null when the index is served without a corpus)."
    )
    fetch["responses"]["404"]["description"] = "Unknown index or document, or route not found."
    _extend_responses(fetch["responses"], "GET")

    doc["paths"]["/indexes"] = {
        "get": {
            "summary": "List the served indexes",
            "operationId": "listIndexesV1",
            "responses": {
                "200": _json("The served indexes.", "IndexList"),
                **{k: v for k, v in search["responses"].items() if k in ("401", "500")},
            },
        }
    }
    return doc


def _search_parameters(parameters: list[dict[str, Any]], limits: Limits) -> list[dict[str, Any]]:
    kept = []
    for parameter in parameters:
        name = parameter["name"]
        if name in ("index", "k1", "b"):
            continue
        if name == "query":
            parameter["schema"] = {"type": "string", "pattern": NOT_BLANK, "maxLength": limits.query_chars}
        elif name == "hits":
            parameter["schema"]["maximum"] = limits.hits
        kept.append(parameter)
        if name == "query":
            kept.append(
                {
                    "name": "instruction",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "maxLength": limits.instruction_chars},
                    "description": "Instruction for this query, formatted with the query by the index's "
                    "instruction template (blank: none).",
                }
            )
    return kept


def _extend_responses(responses: dict[str, Any], methods: str) -> None:
    responses["405"]["description"] = f"Method not allowed: use {methods}."
    responses["429"]["description"] = (
        "Load shedding: more queries are in progress than the server's limit. Retry after Retry-After seconds."
    )


def _batch_operation(index: dict[str, Any], get_responses: dict[str, Any]) -> dict[str, Any]:
    responses = copy.deepcopy(get_responses)
    responses["200"] = _json("One result per query, in order.", "BatchSearchResponse")
    responses["413"] = _json("Request body too large.", "ErrorResponse")
    responses["400"]["description"] = "Invalid request: malformed or non-UTF-8 JSON, or invalid fields."
    return {
        "summary": "Search an index with a batch of queries, each with an optional instruction",
        "operationId": "batchSearchV1",
        "parameters": [index],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchSearchRequest"}}},
        },
        "responses": responses,
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _new_schemas(limits: Limits) -> dict[str, Any]:
    return {
        "BatchQuery": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "pattern": NOT_BLANK, "maxLength": limits.query_chars},
                "instruction": {"type": ["string", "null"], "maxLength": limits.instruction_chars},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        "BatchSearchRequest": {
            "type": "object",
            "properties": {
                "queries": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/BatchQuery"},
                    "minItems": 1,
                    "maxItems": limits.batch_queries,
                },
                "hits": {"type": "integer", "minimum": 1, "maximum": limits.hits, "default": 10},
                "parse": {"type": "boolean", "default": True},
                "max_doc_length": {"type": "integer", "minimum": 1, "description": _MAX_DOC_LENGTH},
            },
            "required": ["queries"],
            "additionalProperties": False,
        },
        "BatchResult": {
            "type": "object",
            "properties": {
                "query": {"$ref": "#/components/schemas/Query"},
                "candidates": {"type": "array", "items": {"$ref": "#/components/schemas/Candidate"}},
            },
            "required": ["query", "candidates"],
        },
        "BatchSearchResponse": {
            "type": "object",
            "properties": {
                "api": {"type": "string", "example": "v1"},
                "index": {"type": "string"},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/BatchResult"}},
            },
            "required": ["api", "index", "results"],
        },
        "IndexInfo": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "documents": {"type": "integer"},
                "dimension": {"type": "integer"},
                "faiss_index": {"type": "string"},
                "shards": {"type": "integer"},
                "encoder": {"type": "string"},
                "template": {"type": "string"},
                "corpus": {"type": "boolean"},
            },
            "required": ["name", "documents", "dimension", "encoder", "template", "corpus"],
        },
        "IndexList": {
            "type": "object",
            "properties": {
                "api": {"type": "string", "example": "v1"},
                "indexes": {"type": "array", "items": {"$ref": "#/components/schemas/IndexInfo"}},
            },
            "required": ["api", "indexes"],
        },
    }
