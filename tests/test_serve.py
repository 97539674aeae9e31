"""The REST server, running for real (uvicorn on 127.0.0.1) over tiny random-weight indexes, talked to with a
real HTTP client: answers equal to the search CLI's, micro-batching, documents, every bad request of issue
18 (and the server still serving after each), disconnects, slow requests, crashes, shedding, keys, the CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from serve_helpers import TOPICS, build_indexes, running

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.io.topics import Topic
from qpr_pyserini.search import search_topics
from qpr_pyserini.serve.__main__ import main as serve_main
from qpr_pyserini.serve.app import create_app
from qpr_pyserini.serve.auth import ApiKeys
from qpr_pyserini.serve.batching import length_passes
from qpr_pyserini.serve.service import SearchService, ServedIndex, load_service
from qpr_pyserini.serve.settings import IndexSpec, Limits, read_config

ROOT = Path(__file__).resolve().parents[1]
HITS = 5


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> dict[str, Path]:
    return build_indexes(tmp_path_factory.mktemp("serve"), tiny_encoder)


def specs(built: dict[str, Path]) -> list[IndexSpec]:
    return [
        IndexSpec("flat", (built["flat"],), corpus=built["corpus"]),
        IndexSpec("shards", (built["shards"],)),
        IndexSpec("hnsw", (built["hnsw"],)),
    ]


@pytest.fixture(scope="module")
def service(built: dict[str, Path]) -> SearchService:
    return load_service(specs(built), limits=Limits(body_bytes=4096, hits=100, query_chars=200))


@pytest.fixture(scope="module")
def url(service: SearchService) -> Iterator[str]:
    with running(create_app(service)) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def served(client: httpx.Client, index: str, query: str, instruction: str | None) -> list[tuple[str, float]]:
    params: dict[str, Any] = {"query": query, "hits": HITS}
    if instruction is not None:
        params["instruction"] = instruction
    response = client.get(f"/v1/{index}/search", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["api"] == "v1" and body["index"] == index
    assert body["query"] == {"text": query, "instruction": instruction}
    assert [c["rank"] for c in body["candidates"]] == list(range(1, len(body["candidates"]) + 1))
    return [(c["docid"], c["score"]) for c in body["candidates"]]


def assert_good_request_works(client: httpx.Client) -> None:
    response = client.get("/v1/flat/search", params={"query": "apple", "hits": 2})
    assert response.status_code == 200 and len(response.json()["candidates"]) == 2


# ---------------------------------------------------------------- equal to the search CLI


@pytest.mark.parametrize("index", ["flat", "shards", "hnsw"])
def test_served_results_equal_the_search_cli(
    index: str, built: dict[str, Path], client: httpx.Client, tmp_path: Path
) -> None:
    topics = [Topic(qid, query, {"inst": inst or ""}) for qid, query, inst in TOPICS]
    search_topics(built[index], topics, tmp_path / "run", instruction_field="inst", hits=HITS, progress=False)
    run = read_run(tmp_path / "run")
    for qid, query, instruction in TOPICS:
        assert served(client, index, query, instruction) == list(run[qid].items()), qid


def test_instruction_changes_the_ranking_scores(client: httpx.Client) -> None:
    assert served(client, "flat", "apple fruit", None) != served(
        client, "flat", "apple fruit", "only red fruit"
    )


def test_batch_post_equals_one_get_per_query(client: httpx.Client) -> None:
    queries = [{"query": q, "instruction": i} for _, q, i in TOPICS]
    response = client.post("/v1/flat/search", json={"queries": queries, "hits": HITS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["api"] == "v1" and body["index"] == "flat" and len(body["results"]) == len(TOPICS)
    for result, (_, query, instruction) in zip(body["results"], TOPICS, strict=True):
        assert result["query"] == {"text": query, "instruction": instruction}
        got = [(c["docid"], c["score"]) for c in result["candidates"]]
        assert got == served(client, "flat", query, instruction)


def test_concurrent_requests_are_encoded_together_with_the_same_answers(
    url: str, client: httpx.Client, service: SearchService
) -> None:
    expected = {q: served(client, "flat", q, i) for _, q, i in TOPICS}
    batcher = service.indexes["flat"].batcher
    before = batcher.batches

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as async_client:
            requests = [
                async_client.get(
                    "/v1/flat/search", params={"query": q, "hits": HITS, **({"instruction": i} if i else {})}
                )
                for _ in range(8)
                for _, q, i in TOPICS
            ]
            return await asyncio.gather(*requests)

    responses = asyncio.run(burst())
    assert batcher.batches - before < len(responses)  # 40 queries in fewer forward passes
    for response in responses:
        body = response.json()
        assert [(c["docid"], c["score"]) for c in body["candidates"]] == expected[body["query"]["text"]]


def test_one_encoder_is_shared_by_the_indexes_that_record_it(service: SearchService) -> None:
    assert len({id(s.model) for s in service.indexes.values()}) == 1
    assert len({id(s.batcher) for s in service.indexes.values()}) == 1


# ---------------------------------------------------------------- documents and the index list


def test_documents_come_from_the_corpus_in_anserini_shape(client: httpx.Client) -> None:
    body = client.get("/v1/flat/doc/d1").json()
    assert body == {
        "api": "v1",
        "index": "flat",
        "docid": "d1",
        "doc": {"title": "Banana", "text": "banana fruit number 1 " * 2},
    }
    assert (
        client.get("/v1/flat/doc/d1", params={"parse": "false"}).json()["doc"]
        == "Banana " + "banana fruit number 1 " * 2
    )
    assert client.get("/v1/flat/doc/d1", params={"max_doc_length": 6}).json()["doc"]["text"] == "banana"
    raw = client.get("/v1/flat/doc/d1", params={"parse": "false", "max_doc_length": 3}).json()["doc"]
    assert raw == "Ban"
    hit = client.get("/v1/flat/search", params={"query": "banana", "hits": 1}).json()["candidates"][0]
    assert hit["doc"] == client.get(f"/v1/flat/doc/{hit['docid']}").json()["doc"]


def test_without_a_corpus_documents_are_null(client: httpx.Client) -> None:
    assert client.get("/v1/shards/doc/d1").json()["doc"] is None
    assert all(
        c["doc"] is None
        for c in client.get("/v1/shards/search", params={"query": "kiwi"}).json()["candidates"]
    )


def test_index_list_and_root(client: httpx.Client) -> None:
    indexes = {i["name"]: i for i in client.get("/v1/indexes").json()["indexes"]}
    assert list(indexes) == ["flat", "shards", "hnsw"]
    assert indexes["shards"]["shards"] == 3 and indexes["hnsw"]["faiss_index"] == "IndexHNSWFlat"
    assert (
        indexes["flat"]["documents"] == 12
        and indexes["flat"]["corpus"]
        and indexes["flat"]["encoder"] == "tiny"
    )
    assert client.get("/").json()["indexes"] == ["flat", "shards", "hnsw"]


# ---------------------------------------------------------------- bad requests: status, JSON error, still serving

BAD_GETS = [
    ("/v1/flat/search", {}, 400, "'query' is required"),
    ("/v1/flat/search", {"query": ""}, 400, "'query' is required"),
    ("/v1/flat/search", {"query": "   "}, 400, "'query' is required"),
    ("/v1/flat/search", {"query": "a", "hits": 0}, 400, "'hits' must be positive"),
    ("/v1/flat/search", {"query": "a", "hits": -3}, 400, "'hits' must be positive"),
    ("/v1/flat/search", {"query": "a", "hits": "ten"}, 400, "'hits' must be an integer"),
    ("/v1/flat/search", {"query": "a", "hits": "1.5"}, 400, "'hits' must be an integer"),
    ("/v1/flat/search", {"query": "a", "hits": 10**30}, 400, "'hits' must be at most 100"),
    ("/v1/flat/search", {"query": "a" * 201}, 400, "'query' is longer than 200 characters"),
    ("/v1/flat/search", {"query": "a", "instruction": "b" * 2001}, 400, "'instruction' is longer than 2000"),
    ("/v1/flat/search", {"query": "a", "k1": "0.9", "b": "0.4"}, 400, "only to sparse"),
    ("/v1/flat/search", {"query": "a", "parse": "maybe"}, 400, "'parse' must be"),
    ("/v1/flat/search", {"query": "a", "max_doc_length": "0"}, 400, "'max_doc_length' must be positive"),
    ("/v1/nope/search", {"query": "a"}, 404, "Index not found: nope"),
    ("/v1/nope/doc/d1", {}, 404, "Index not found: nope"),
    ("/v1/flat/doc/d999", {}, 404, "Document not found: d999"),
    ("/v1/shards/doc/d999", {}, 404, "Document not found: d999"),
    ("/v2/flat/search", {"query": "a"}, 404, "Expected route"),
]


@pytest.mark.parametrize(("path", "params", "status", "message"), BAD_GETS)
def test_bad_get_requests(client: httpx.Client, path: str, params: dict, status: int, message: str) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert_good_request_works(client)


BAD_BODIES = [
    (b"{not json", 400, "not valid JSON"),
    (b'{"queries": [{"query": "a"}]', 400, "not valid JSON"),
    (b"\xff\xfe\x00q", 400, "not UTF-8"),
    (b"[]", 400, "must be a JSON object"),
    (b'{"queries": []}', 400, "non-empty list"),
    (b'{"queries": "apple"}', 400, "non-empty list"),
    (b'{"queries": [{"text": "a"}]}', 400, "queries[0] must be an object with 'query'"),
    (b'{"queries": [{"query": 3}]}', 400, "queries[0].query' is required"),
    (b'{"queries": [{"query": "a"}, {"query": " "}]}', 400, "queries[1].query' is required"),
    (b'{"queries": [{"query": "a", "instruction": 5}]}', 400, "instruction must be a string"),
    (b'{"queries": [{"query": "\\ud800 lone surrogate"}]}', 400, "not valid Unicode"),
    (b'{"queries": [{"query": "a"}], "hits": true}', 400, "'hits' must be an integer"),
    (b'{"queries": [{"query": "a"}], "hits": 2.5}', 400, "'hits' must be an integer"),
    (b'{"queries": [{"query": "a"}], "hits": 1e400}', 400, "'hits' must be an integer"),
    (b'{"queries": [{"query": "a"}], "hits": 0}', 400, "'hits' must be positive"),
    (b'{"queries": [{"query": "a"}], "topk": 3}', 400, "Unknown field"),
    (json.dumps({"queries": [{"query": "a"}] * 300}).encode(), 413, "larger than 4096 bytes"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES)
def test_bad_batch_bodies(client: httpx.Client, body: bytes, status: int, message: str) -> None:
    response = client.post("/v1/flat/search", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert_good_request_works(client)


def test_too_many_queries_in_one_batch(client: httpx.Client, service: SearchService) -> None:
    limits = service.limits
    service.limits = dataclasses.replace(limits, batch_queries=2)
    try:
        response = client.post("/v1/flat/search", json={"queries": [{"query": "a"}] * 3})
    finally:
        service.limits = limits
    assert response.status_code == 400 and "at most 2 queries" in response.json()["error"]


def test_an_oversized_chunked_body_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"queries": ['
        for _ in range(200):
            yield b'{"query": "apple fruit"},'
        yield b'{"query": "x"}]}'

    response = client.post("/v1/flat/search", content=chunks())  # no Content-Length: found while reading
    assert response.status_code == 413 and "larger than" in response.json()["error"]
    assert_good_request_works(client)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/flat/search", "GET, POST"),
        ("DELETE", "/v1/flat/search", "GET, POST"),
        ("POST", "/v1/flat/doc/d1", "GET"),
        ("PATCH", "/v1/indexes", "GET"),
    ],
)
def test_wrong_method_is_405(client: httpx.Client, method: str, path: str, allowed: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.json()["error"] == f"Method {method} not allowed: use {allowed}"
    assert_good_request_works(client)


def _raw(url: str, data: bytes, *, then_close: bool = True) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(data)
    if then_close:
        sock.close()
    return sock


def test_clients_that_disconnect_mid_request(url: str, client: httpx.Client) -> None:
    # mid-body, after the request (before the answer), and mid-headers
    _raw(url, b'POST /v1/flat/search HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"queries": [')
    _raw(url, b"GET /v1/flat/search?query=apple+fruit&hits=5 HTTP/1.1\r\nHost: x\r\n\r\n")
    _raw(url, b"GET /v1/flat/search?query=apple HTTP/1.1\r\nHo")
    time.sleep(0.3)
    assert_good_request_works(client)


def test_a_slow_upload_does_not_block_others(url: str, client: httpx.Client) -> None:
    slow = _raw(
        url, b'POST /v1/flat/search HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{"qu', then_close=False
    )
    try:
        started = time.monotonic()
        assert_good_request_works(client)
        assert time.monotonic() - started < 5
        slow.sendall(b'eries": [{"query": "apple"}]}         ')
        answer = slow.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        slow.close()


def test_a_slow_search_does_not_block_others(
    url: str, service: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = ServedIndex.search

    def slow_for_seven_hits(self: ServedIndex, vectors: Any, hits: int) -> Any:
        if hits == 7:
            time.sleep(1.5)
        return search(self, vectors, hits)

    monkeypatch.setattr(ServedIndex, "search", slow_for_seven_hits)

    async def race() -> tuple[float, float]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            start = time.monotonic()

            async def timed(hits: int) -> float:
                response = await c.get("/v1/flat/search", params={"query": "apple", "hits": hits})
                assert response.status_code == 200
                return time.monotonic() - start

            slow = asyncio.create_task(timed(7))
            await asyncio.sleep(0.1)
            return await timed(3), await slow

    fast, slow = asyncio.run(race())
    assert fast < 1.0 < slow


def test_load_is_shed_with_429_and_retry_after(
    url: str, service: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    search = ServedIndex.search
    monkeypatch.setattr(service, "limits", dataclasses.replace(service.limits, concurrent=2))
    monkeypatch.setattr(
        ServedIndex,
        "search",
        lambda self, v, hits: (time.sleep(1.0) if hits == 7 else None) or search(self, v, hits),
    )

    async def flood() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            first = asyncio.create_task(
                c.post("/v1/flat/search", json={"queries": [{"query": "a"}] * 2, "hits": 7})
            )
            await asyncio.sleep(0.3)
            second = await c.get("/v1/flat/search", params={"query": "apple"})
            return [await first, second]

    first, shed = asyncio.run(flood())
    assert first.status_code == 200
    assert shed.status_code == 429 and shed.headers["retry-after"] == "1" and "busy" in shed.json()["error"]
    monkeypatch.undo()
    with httpx.Client(base_url=url) as c:
        assert_good_request_works(c)


def test_an_internal_crash_is_a_500_naming_nothing_internal(
    url: str,
    client: httpx.Client,
    service: SearchService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the request at fault fails, even when it shares a micro-batch with others."""
    batcher = service.indexes["flat"].batcher
    encode = batcher.encode
    sizes = []

    def crash_on_boom(queries: list[str], instructions: list[str | None]) -> Any:
        sizes.append(len(queries))
        if "boom" in queries:
            raise RuntimeError("secret detail of /internal/path")
        return encode(queries, instructions)

    monkeypatch.setattr(batcher, "encode", crash_on_boom)
    monkeypatch.setattr(batcher, "max_wait_s", 0.2)  # so that the three share a batch...
    monkeypatch.setattr(batcher, "_last_size", 2)  # ...as it waits while batches are shared

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            return await asyncio.gather(
                *(c.get("/v1/flat/search", params={"query": q}) for q in ("apple", "boom", "kiwi"))
            )

    with caplog.at_level(logging.ERROR, logger="qpr_pyserini.serve"):
        apple, boom, kiwi = asyncio.run(together())
    assert boom.status_code == 500 and boom.json() == {"error": "Internal server error"}
    assert "secret" not in boom.text
    logged = [r for r in caplog.records if r.exc_info and "secret detail" in str(r.exc_info[1])]
    assert logged  # with its traceback
    assert apple.status_code == kiwi.status_code == 200
    assert sizes == [3, 1, 1, 1]  # the shared batch failed, then each query was encoded alone
    monkeypatch.undo()
    assert_good_request_works(client)


# ---------------------------------------------------------------- API keys


@pytest.fixture(scope="module")
def keyed_url(built: dict[str, Path]) -> Iterator[str]:
    service = load_service(specs(built)[:1])
    with running(create_app(service, api_keys=ApiKeys(["s3cret-key", "other-key"]))) as base:
        yield base


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic s3cret-key"}, 401),
        ({"X-API-Key": "s3cret-key"}, 200),
        ({"Authorization": "Bearer other-key"}, 200),
        ({"authorization": "bearer s3cret-key"}, 200),
    ],
)
def test_api_keys(keyed_url: str, headers: dict[str, str], status: int) -> None:
    with httpx.Client(base_url=keyed_url, headers=headers) as c:
        response = c.get("/v1/flat/search", params={"query": "apple"})
        assert response.status_code == status
        if status == 401:
            assert "API key" in response.json()["error"] and response.headers["www-authenticate"] == "Bearer"
            assert c.post("/v1/flat/search", json={"queries": [{"query": "a"}]}).status_code == 401
        assert c.get("/openapi.json").status_code == 200  # the document stays public, as in Pyserini


# ---------------------------------------------------------------- the command line


def test_cli_refuses_bad_input_with_one_line_and_exit_2(
    built: dict[str, Path], tiny_encoder: EncoderConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = str(built["flat"])
    other = tmp_path / "cls-pooling.json"
    other.write_text(json.dumps(dataclasses.replace(tiny_encoder, pooling="cls").to_dict()))
    (tmp_path / "bad.yaml").write_text("indexes:\n  x:\n    path: " + flat + "\n    index_type: tf\n")
    cases = [
        (["--index", "flat"], "expected NAME=PATH"),
        (["--index", "a/b=" + flat], "index name 'a/b'"),
        (["--index", "a=" + flat, "a=" + flat], "given twice"),
        (["--index", "a=" + flat, "--corpus", "b=x.jsonl"], "no --index named 'b'"),
        ([], "no index to serve"),
        (["--index", "a=" + flat, "--host", "0.0.0.0"], "reachable from other machines"),
        (["--config", str(tmp_path / "bad.yaml")], "only faiss indexes are served"),
        (["--index", "a=" + str(tmp_path / "none"), "--port", "0"], "not a Pyserini FAISS index folder"),
        (["--index", "a=" + flat, "--port", "0", "--encoder", str(other)], "different encoder (pooling"),
    ]
    for argv, message in cases:
        assert serve_main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error: ") and message in err[-1], (argv, err)


def test_cli_serves_a_config_with_keys_and_mcp(built: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"indexes:\n  fruit:\n    path: {built['flat']}\n    corpus: {built['corpus']}\napi_keys:\n  - k3y\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "qpr_pyserini.serve", "--config", str(config), "--port", "0", "--mcp"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = ""
        while not line.startswith("serving "):
            line = process.stderr.readline()
            assert line or process.poll() is None, "server exited"
        base = line.split(" on ")[1].split()[0]
        with httpx.Client(base_url=base, headers={"X-API-Key": "k3y"}) as c:
            body = c.get("/v1/fruit/search", params={"query": "kiwi", "hits": 1}).json()
            assert body["candidates"][0]["doc"]["title"]
            assert c.get("/").json()["mcp"] == "/mcp/"
            times = []
            for _ in range(15):
                started = time.perf_counter()
                c.get("/v1/indexes")
                times.append(time.perf_counter() - started)
            assert sorted(times)[7] < 0.03  # no delayed-ACK stall (~40 ms): TCP_NODELAY is on
    finally:
        process.terminate()
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it stopped on


def test_help_explains_the_surface(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "/v1/NAME/search",
        "instruction",
        "--batch-size",
        "--max-concurrent",
        "--no-api-keys",
        "--mcp",
    ):
        assert text in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "must be a mapping"),
        ("indexes: {}\nport: 3\n", "unknown key(s) ['port']"),
        ("indexes:\n  a: {path: x, encoding: minilm}\n", "unknown key(s) ['encoding']"),
        ("indexes:\n  a: {encoder: minilm}\n", "'path' must be a folder"),
        ("indexes:\n  a: {path: x, ef_search: 0}\n", "'ef_search' must be a positive integer"),
        ("indexes:\n  'a b': x\n", "index name 'a b'"),
        ("api_keys: secret\n", "'api_keys' must be a list"),
        ("api_keys: ['']\n", "'api_keys' must be a list of non-empty strings"),
        ("indexes: [\n", "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        read_config(tmp_path / "c.yaml")


def test_config_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    from qpr_pyserini.serve.settings import read_config

    (tmp_path / "c.yaml").write_text(
        "indexes:\n  a: idx\n  b: {path: [s0, s1], corpus: c.jsonl}\napi_keys: [k]\n"
    )
    config = read_config(tmp_path / "c.yaml")
    assert config.indexes["a"].paths == (tmp_path / "idx",)
    assert (
        config.indexes["b"].paths == (tmp_path / "s0", tmp_path / "s1")
        and config.indexes["b"].corpus == tmp_path / "c.jsonl"
    )
    assert config.api_keys == ("k",)


@pytest.mark.parametrize(
    ("lengths", "limit", "passes"),
    [
        ([10, 50, 11, 49, 12], 32, [[1, 3], [4, 2, 0]]),  # two length groups, longest first
        ([40, 40, 40, 40], 3, [[0, 1, 2], [3]]),  # at most limit rows a pass
        ([100, 10], 32, [[0], [1]]),  # padding 10 to 100 would cost more than it saves
        ([7], 1, [[0]]),
    ],
)
def test_forward_passes_group_queries_of_similar_length(lengths: list[int], limit: int, passes: list) -> None:
    assert length_passes(lengths, limit) == passes
