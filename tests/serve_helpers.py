"""A real server for the serve tests: uvicorn on 127.0.0.1 (a free port), in a thread of the test process,
over tiny random-weight indexes (flat, shards and HNSW of one corpus)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import encode_corpus
from qpr_pyserini.index import convert_index

WORDS = [
    "apple",
    "banana",
    "cherry",
    "date",
    "elder",
    "fig",
    "grape",
    "honeydew",
    "iris",
    "jade",
    "kiwi",
    "lime",
]
TOPICS = [
    ("q1", "apple fruit", "only red fruit"),
    ("q2", "grape number six", "exclude apples"),
    ("q3", "kiwi", None),
    ("q4", "a sweet yellow fruit number nine", "documents that mention a number"),
    ("q5", "lime", "green"),
]


def build_indexes(folder: Path, encoder: EncoderConfig) -> dict[str, Path]:
    """The corpus and three indexes of it: one flat folder, a folder of 3 shards, and an HNSW copy."""
    corpus = write_jsonl(
        folder / "corpus.jsonl",
        [
            {"_id": f"d{i}", "title": w.title(), "text": f"{w} fruit number {i} " * (1 + i % 3)}
            for i, w in enumerate(WORDS)
        ],
    )
    flat = encode_corpus(corpus, folder / "flat", encoder, batch_size=4, progress=False)
    for shard in range(3):
        encode_corpus(
            corpus, folder / "shards" / f"part{shard}", encoder, shard_id=shard, shard_num=3, progress=False
        )
    hnsw = convert_index(flat, folder / "hnsw", "hnsw")
    return {"corpus": corpus, "flat": flat, "shards": folder / "shards", "hnsw": hnsw}


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY (see __main__)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
