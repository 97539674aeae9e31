"""Micro-batching: queries that arrive together are encoded together, then searched per target.

Each request submits one query (a batch request submits each of its queries) and awaits its result. A
worker task takes the first waiting query and every other one that arrives within ``max_wait_s`` of it (or is
already waiting; the wait only while the previous batch held more than one query, so that a lone client
never waits), up to ``max_batch``, and encodes them in one call on a single encoder thread (one forward
pass at a time, so the model's threads are not oversubscribed; while it runs, the next batch gathers). The
vectors are then grouped by target (an index and a hit count) and each group is searched in one call on the
event loop's thread pool, off the event loop and without holding up the next encoding: a slow search delays
only the queries it holds. If a batch fails to encode, its queries are encoded one by one, so that only the
query at fault fails. ``max_batch=1`` encodes one query at a time (micro-batching off).

Within a batch, :func:`length_passes` cuts the queries into forward passes of similar token length: padding
costs what it pads, and on the CPU's exported backends a pass of queries padded to the longest of a random
batch costs more than it saves (docs/serve.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

PADDING_SLACK = 1.25  # a forward pass may pad its queries to at most this many times their own tokens

Encode = Callable[[list[str], list[str | None]], np.ndarray]
Search = Callable[[Any, np.ndarray], Sequence[Any]]


@dataclass
class _Waiting:
    query: str
    instruction: str | None
    target: Hashable
    future: asyncio.Future[Any]
    arrived: float


class MicroBatcher:
    """Encode concurrent queries together with ``encode(queries, instructions) -> [n, d]``, then answer each
    with its row of ``search(target, vectors) -> results`` (one result per row)."""

    def __init__(self, encode: Encode, search: Search, *, max_batch: int, max_wait_s: float) -> None:
        self.encode = encode
        self.search = search
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batches = 0  # encoder calls made, for the logs and tests
        self._last_size = 0  # queries in the last batch
        self._queue: asyncio.Queue[_Waiting] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._searches: set[asyncio.Task[None]] = set()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="qpr-encode")

    async def submit(self, query: str, instruction: str | None, target: Hashable) -> Any:
        """The result for one query (its row of ``search(target, ...)``) once its batch is done."""
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run(), name="qpr-micro-batcher")
        assert self._queue is not None
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put_nowait(_Waiting(query, instruction, target, future, loop.time()))
        return await future

    async def close(self) -> None:
        """Stop the worker (waiting queries are cancelled) and the encoder thread."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, *self._searches, return_exceptions=True)
        self._encoder.shutdown(wait=True, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            try:
                await self._encode_and_dispatch(batch)
            except Exception as err:  # noqa: BLE001 - reported to the requests it concerns
                if len(batch) == 1:
                    _fail(batch[0], err)
                    continue
                # One bad query must not fail the others that shared its batch: encode them one by one.
                for item in batch:
                    try:
                        await self._encode_and_dispatch([item])
                    except Exception as alone:  # noqa: BLE001 - this request's own failure
                        _fail(item, alone)

    async def _gather(self) -> list[_Waiting]:
        """The next batch: the first waiting query and those arriving within max_wait_s of it."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            # Wait for company only while batches are being shared: a lone client pays no wait.
            deadline = first.arrived + (self.max_wait_s if self._last_size > 1 else 0.0)
            while len(batch) < self.max_batch:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            live = [item for item in batch if not item.future.done()]  # a client that went away
            if live:
                self._last_size = len(live)
                return live

    async def _encode_and_dispatch(self, batch: list[_Waiting]) -> None:
        loop = asyncio.get_running_loop()
        queries = [item.query for item in batch]
        instructions = [item.instruction for item in batch]
        vectors = await loop.run_in_executor(self._encoder, self.encode, queries, instructions)
        self.batches += 1
        groups: dict[Hashable, list[int]] = {}
        for row, item in enumerate(batch):
            groups.setdefault(item.target, []).append(row)
        for target, rows in groups.items():
            task = loop.create_task(self._search_group(target, [batch[r] for r in rows], vectors[rows]))
            self._searches.add(task)
            task.add_done_callback(self._searches.discard)

    async def _search_group(self, target: Hashable, items: list[_Waiting], vectors: np.ndarray) -> None:
        try:
            results = await asyncio.to_thread(self.search, target, vectors)
        except Exception as err:  # noqa: BLE001 - handed to each waiting request
            results = [err] * len(items)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, Exception):
                _fail(item, result)
            elif not item.future.done():  # done: its client went away
                item.future.set_result(result)


def _fail(item: _Waiting, err: Exception) -> None:
    if not item.future.done():
        item.future.set_exception(err)


def length_passes(lengths: Sequence[int], limit: int, slack: float = PADDING_SLACK) -> list[list[int]]:
    """Row numbers cut into forward passes of similar length: longest first, a pass closes when it holds
    ``limit`` rows or the next row would pad it past ``slack`` times its rows' own token count."""
    passes: list[list[int]] = []
    tokens = 0
    for row in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        current = passes[-1] if passes else []
        longest = lengths[current[0]] if current else 0
        if (
            current
            and len(current) < limit
            and longest * (len(current) + 1) <= slack * (tokens + lengths[row])
        ):
            current.append(row)
            tokens += lengths[row]
        else:
            passes.append([row])
            tokens = lengths[row]
    return passes
