"""Load on the live server: requests/s and latency of `python -m qpr_pyserini.serve` on 127.0.0.1, with
micro-batching (the default) and with one query encoded at a time, at several numbers of concurrent clients.

    .venv/bin/python benchmarks/bench_serve.py [--index DIR] [--requests 2000] [--concurrency 1 8 32] \
        [--hits 10] [--rounds 4] [--batch-size 32] [--batch-wait-ms 2] [--backend auto] [--threads N]

The index is the MiniLM index of SciFact (../shared/data/scifact/corpus.jsonl, built into --index with
`python -m qpr_pyserini.encode --encoder minilm` when that folder does not hold one). The requests are the
SciFact-stance claims (train and test, ../shared/data/scifact-stance) each with its three instructions
(instruction_og, instruction_changed, instruction_matching), in a fixed shuffled order:
`GET /v1/scifact/search?query=CLAIM&instruction=TEXT&hits=10`.

The two servers are child processes started as a user starts them (`python -m qpr_pyserini.serve --index
scifact=DIR --port 0 --batch-size B`; `--batch-size 1` is one query at a time), both up for the whole run.
The client is a small asyncio `httpx2` client in this process: C workers, each sending its next request when
the last one is answered, one kept-alive connection each; 50 untimed requests to each server first. For each
C the requests go out in --rounds slices, each slice to both servers in turn (ABBA order), so that a shared
machine's changing load falls on both alike (per-round requests/s are kept in the results). Reported per
server and C: requests/s (completed requests over the wall time), p50 / p99 latency, non-200 answers
(errors), and the ratio of the two servers' requests/s. Both servers' top-10 answers to the same requests
are compared (identical doc ids, largest score difference).

The client shares the machine with the server: on a 2-core machine it takes part of the CPU, in both modes
alike. Results: benchmarks/results/serve.json (commit, command, start and end time, load averages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("QPR_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results" / "serve.json"
INSTRUCTIONS = ("instruction_og", "instruction_changed", "instruction_matching")
WARMUP = 50


def requests_from_stance(folder: Path, count: int) -> list[dict[str, str]]:
    """``count`` (query, instruction) requests: every SciFact-stance claim with each instruction, shuffled."""
    pool = []
    for split in ("train", "test"):
        for line in (folder / split / "queries.jsonl").read_text().splitlines():
            row = json.loads(line)
            pool.extend({"query": row["text"], "instruction": row[field]} for field in INSTRUCTIONS)
    random.Random(0).shuffle(pool)
    return [pool[i % len(pool)] for i in range(count)]


def ensure_index(index: Path, backend: str) -> None:
    if (index / "index").is_file():
        return
    command = [
        sys.executable,
        "-m",
        "qpr_pyserini.encode",
        "--corpus",
        str(DATA / "scifact" / "corpus.jsonl"),
        "--index",
        str(index),
        "--encoder",
        "minilm",
        "--backend",
        backend,
        "--quiet",
    ]
    print("building the index:", " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True, cwd=ROOT)


class Server:
    """`python -m qpr_pyserini.serve` as a child process; its base URL once it serves."""

    def __init__(self, index: Path, batch_size: int, args: argparse.Namespace) -> None:
        self.command = [
            sys.executable,
            "-m",
            "qpr_pyserini.serve",
            "--index",
            f"scifact={index}",
            "--port",
            "0",
            "--batch-size",
            str(batch_size),
            "--batch-wait-ms",
            str(args.batch_wait_ms),
            "--backend",
            args.backend,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_serve_{os.getpid()}_{batch_size}.log"
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stderr=self.log.open("w"))
        deadline = time.monotonic() + 600
        while (match := re.search(r"^serving scifact on (\S+)", self.log.read_text(), re.M)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()}")
            time.sleep(0.2)
        self.url = match.group(1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


async def load(url: str, requests: list[dict[str, str]], hits: int, concurrency: int) -> dict[str, Any]:
    """Send ``requests`` with ``concurrency`` workers: the wall time, and each request's latency, status and
    top hits."""
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    answers: list[list[tuple[str, float]]] = [[] for _ in requests]
    queue = iter(range(len(requests)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            for i in queue:
                started = time.perf_counter()
                response = await client.get("/v1/scifact/search", params={**requests[i], "hits": hits})
                latencies[i] = time.perf_counter() - started
                statuses[i] = response.status_code
                if response.status_code == 200:
                    answers[i] = [(c["docid"], c["score"]) for c in response.json()["candidates"]]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"seconds": wall, "latencies": latencies, "statuses": statuses, "answers": answers}


def summary(concurrency: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures at one concurrency, over its rounds."""
    seconds = sum(p["seconds"] for p in parts)
    ms = np.array([x for p in parts for x in p["latencies"]]) * 1000
    statuses = [s for p in parts for s in p["statuses"]]
    return {
        "concurrency": concurrency,
        "requests": len(statuses),
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(statuses) / seconds, 2),
        "requests_per_s_by_round": [round(len(p["statuses"]) / p["seconds"], 2) for p in parts],
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "errors": sum(s != 200 for s in statuses),
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
    }


def interleaved(
    servers: dict[str, Server], requests: list[dict[str, str]], args: argparse.Namespace
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[list[tuple[str, float]]]]]:
    """Every concurrency, in ``args.rounds`` rounds of a slice of the requests, each round sent to both
    servers in turn (ABBA order), so that both see the same drift in the machine's load."""
    names = list(servers)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    answers: dict[str, list[list[tuple[str, float]]]] = {name: [] for name in names}
    size = -(-len(requests) // args.rounds)
    for concurrency in args.concurrency:
        parts: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for number, start in enumerate(range(0, len(requests), size)):
            for name in names if number % 2 == 0 else names[::-1]:
                part = asyncio.run(
                    load(servers[name].url, requests[start : start + size], args.hits, concurrency)
                )
                parts[name].append(part)
                if concurrency == args.concurrency[-1]:
                    answers[name].extend(part["answers"])
        for name in names:
            results[name].append(summary(concurrency, parts[name]))
            row = results[name][-1]
            print(
                f"{name:<20} clients {concurrency:>3}: {row['requests_per_s']:8.1f} req/s  "
                f"p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}",
                file=sys.stderr,
            )
    return results, answers


def compare(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> dict[str, Any]:
    """How many answers list the same doc ids, and the largest score difference among those."""
    agree = [(x, y) for x, y in zip(a, b, strict=True) if [d for d, _ in x] == [d for d, _ in y]]
    diff = max((abs(s - t) for x, y in agree for (_, s), (_, t) in zip(x, y, strict=True)), default=0.0)
    return {"same_top_ids": f"{len(agree)}/{len(a)}", "max_score_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--index",
        type=Path,
        default=Path("/tmp/qpr-serve-bench/scifact-minilm"),
        help="MiniLM SciFact index folder (built there if absent)",
    )
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per run (default 2000)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32], help="clients (default 1 8 32)"
    )
    parser.add_argument("--hits", type=int, default=10)
    parser.add_argument(
        "--rounds", type=int, default=4, help="slices of the requests, alternating the servers (default 4)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="the micro-batching server's (default 32)")
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument("--backend", default="auto", help="the servers' --backend (default auto, as theirs)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="OMP/MKL threads of the servers")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    for needed in (DATA / "scifact" / "corpus.jsonl", DATA / "scifact-stance" / "test" / "queries.jsonl"):
        if not needed.is_file():
            sys.exit(f"missing {needed} (set QPR_SHARED_DATA)")

    started, load_before = time.strftime("%Y-%m-%d %H:%M:%S %Z"), os.getloadavg()
    ensure_index(args.index, args.backend)
    requests = requests_from_stance(DATA / "scifact-stance", args.requests)
    servers: dict[str, Server] = {}
    try:
        for name, batch_size in (("micro_batching", args.batch_size), ("one_query_at_a_time", 1)):
            servers[name] = Server(args.index, batch_size, args)
            asyncio.run(load(servers[name].url, requests[:WARMUP], args.hits, 8))
        results, answers = interleaved(servers, requests, args)
    finally:
        for server in servers.values():
            server.stop()
    batched, single = results["micro_batching"], results["one_query_at_a_time"]
    ratios = {
        str(b["concurrency"]): round(b["requests_per_s"] / s["requests_per_s"], 2)
        for b, s in zip(batched, single, strict=True)
    }
    agreement = compare(answers["micro_batching"], answers["one_query_at_a_time"])
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "client": "httpx2 AsyncClient in the benchmark process, one keep-alive connection per worker",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "servers": {name: " ".join(server.command[1:]) for name, server in servers.items()},
        "micro_batching": batched,
        "one_query_at_a_time": single,
        "requests_per_s_ratio_batched_over_single": ratios,
        "answers_batched_vs_single_at_largest_concurrency": agreement,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"ratios": ratios, **agreement}), file=sys.stderr)


if __name__ == "__main__":
    main()
