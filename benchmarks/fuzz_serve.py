"""The longer schemathesis run against the live server over the MiniLM SciFact index (the tests run the same
checks on a tiny index, 60 examples per mode): no 5xx, no response outside the published OpenAPI document,
schema-valid requests accepted, schema-invalid ones refused.

    .venv/bin/python benchmarks/fuzz_serve.py [--index DIR] [--examples 1000]

The server is started as benchmarks/bench_serve.py starts it (same index, built there if absent). Results:
benchmarks/results/serve_fuzz.json (commit, command, examples per mode, failures found).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import schemathesis
from bench_serve import ROOT, Server, ensure_index
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

RESULTS = ROOT / "benchmarks" / "results" / "serve_fuzz.json"


def fuzz(url: str, mode: GenerationMode, examples: int) -> dict[str, object]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    sent = 0

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(base_url=f"{url}/v1")

    started = time.perf_counter()
    try:
        check()
        failure = None
    except Exception as err:  # noqa: BLE001 - the report is the result
        failure = str(err)
    return {
        "mode": str(mode),
        "requests": sent,
        "seconds": round(time.perf_counter() - started, 1),
        "failure": failure,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/qpr-serve-bench/scifact-minilm"))
    parser.add_argument(
        "--examples", type=int, default=1000, help="examples per generation mode (default 1000)"
    )
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    ensure_index(args.index, args.backend)
    options = argparse.Namespace(batch_wait_ms=2.0, backend=args.backend, threads=os.cpu_count())
    server = Server(args.index, 32, options)
    try:
        runs = [
            fuzz(server.url, mode, args.examples)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
    finally:
        server.stop()
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "server": " ".join(server.command[1:]),
        "schemathesis": schemathesis.__version__,
        "runs": runs,
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(runs, indent=2), file=sys.stderr)
    if any(run["failure"] for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
