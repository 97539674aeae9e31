"""``python -m qpr_pyserini.serve``: serve indexes over HTTP (Anserini's v1 REST API) and MCP."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from qpr_pyserini.cli import add_encoder_options, run_cli
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.serve.auth import ApiKeys, is_loopback
from qpr_pyserini.serve.settings import IndexSpec, Limits, parse_pairs, read_config

DESCRIPTION = """\
Serve instruction-aware search over HTTP: Anserini's v1 REST API (the surface of Pyserini's
pyserini.server.rest) with an 'instruction' on every query, and with --mcp an MCP endpoint.

  GET  /v1/NAME/search?query=TEXT&instruction=TEXT&hits=10
  POST /v1/NAME/search   {"queries": [{"query": ..., "instruction": ...}, ...], "hits": 10}
  GET  /v1/NAME/doc/DOCID           (the document, with --corpus NAME=FILE)
  GET  /v1/indexes, /openapi.yaml, /docs;  /mcp/ with --mcp (tools search, get_document, list_indexes)

Each index is loaded once with the encoder it records (or --encoder; a query encoder whose passage
side differs is refused, as search refuses it) and answers as 'python -m qpr_pyserini.search' does.
Concurrent queries are encoded together (micro-batching: up to --batch-size queries, waiting at most
--batch-wait-ms for more). API keys come from --config (Pyserini's YAML layout: indexes, api_keys);
they are required when --host is not a loopback address, unless --no-api-keys."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.serve",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--index",
        nargs="+",
        metavar="NAME=DIR",
        help="an index to serve as NAME: an index folder, or a folder of shard folders (HNSW / IVF-PQ too)",
    )
    parser.add_argument(
        "--corpus",
        nargs="+",
        metavar="NAME=FILE",
        help="documents of index NAME (corpus file, folder or irds:)",
    )
    parser.add_argument(
        "--config",
        help="YAML config in Pyserini's server layout: 'indexes' (name -> path or object) and "
        "'api_keys'; see docs/serve.md",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    parser.add_argument(
        "--port", type=int, default=8081, help="port (default 8081, as Pyserini's; 0: any free)"
    )
    parser.add_argument("--mcp", action="store_true", help="also serve MCP (streamable HTTP) at /mcp/")
    parser.add_argument(
        "--no-api-keys",
        action="store_true",
        help="serve a non-loopback --host without API keys (anyone who reaches it can search)",
    )
    parser.add_argument(
        "--template",
        help="instruction template for every --index (config entries name their own; default: the encoder's)",
    )
    parser.add_argument("--ef-search", type=int, help="HNSW --index: search depth (default: the stored one)")
    parser.add_argument("--nprobe", type=int, help="IVF --index: lists searched (default: the stored one)")
    parser.add_argument(
        "--mmap", action="store_true", help="map flat vectors from disk instead of reading them"
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    add_encoder_options(
        parser,
        encoder_help="query encoder for every --index (config entries name their own; default: the index's record)",
        batch_help="queries (the largest micro-batch; 1 turns micro-batching off)",
    )
    batching = parser.add_argument_group("micro-batching")
    batching.add_argument(
        "--batch-wait-ms",
        type=float,
        default=2.0,
        help="longest wait for more queries to join a batch, from the first one's arrival (default 2)",
    )
    defaults = Limits()
    limits = parser.add_argument_group(
        "limits (past them: 400, 413 for the body, 429 + Retry-After for load)"
    )
    limits.add_argument(
        "--max-query-chars", type=int, default=defaults.query_chars, help="default %(default)s"
    )
    limits.add_argument(
        "--max-instruction-chars", type=int, default=defaults.instruction_chars, help="default %(default)s"
    )
    limits.add_argument("--max-hits", type=int, default=defaults.hits, help="default %(default)s")
    limits.add_argument(
        "--max-batch-queries",
        type=int,
        default=defaults.batch_queries,
        help="queries in one POST (default %(default)s)",
    )
    limits.add_argument("--max-body-bytes", type=int, default=defaults.body_bytes, help="default %(default)s")
    limits.add_argument(
        "--max-concurrent",
        type=int,
        default=defaults.concurrent,
        help="queries in progress at once (a POST counts each); more are shed with 429 (default %(default)s)",
    )
    return parser


def index_specs(args: argparse.Namespace) -> tuple[list[IndexSpec], tuple[str, ...]]:
    """The indexes to serve (``--index``, then the config's) and the API keys of the config."""
    given = parse_pairs("--index", args.index)
    corpora = parse_pairs("--corpus", args.corpus)
    config = read_config(args.config) if args.config else None
    specs = [
        IndexSpec(
            name=name,
            paths=(_path(folder),),
            encoder=args.encoder,
            template=args.template,
            corpus=_path(corpora[name]) if name in corpora else None,
            ef_search=args.ef_search,
            nprobe=args.nprobe,
        )
        for name, folder in given.items()
    ]
    for name, spec in (config.indexes if config else {}).items():
        if name in given:
            raise InputError("--index", f"index {name!r} is also in {args.config}")
        specs.append(spec)
    if not specs:
        raise InputError("--index", "no index to serve: give --index NAME=DIR or a --config with indexes")
    unknown = set(corpora) - set(given)
    if unknown:
        raise InputError("--corpus", f"no --index named {sorted(unknown)[0]!r}")
    return specs, config.api_keys if config else ()


def _path(value: str) -> str | Path:
    return value if value.startswith("irds:") else Path(value).expanduser()


def serve(args: argparse.Namespace) -> str:
    specs, keys = index_specs(args)
    if not 0 <= args.port <= 65535:
        raise InputError("--port", f"must be 0..65535, got {args.port}")
    if not keys and not is_loopback(args.host) and not args.no_api_keys:
        raise InputError(
            "--host",
            f"{args.host} is reachable from other machines: list api_keys in --config, or pass --no-api-keys",
        )
    limits = Limits(
        query_chars=args.max_query_chars,
        instruction_chars=args.max_instruction_chars,
        hits=args.max_hits,
        batch_queries=args.max_batch_queries,
        body_bytes=args.max_body_bytes,
        concurrent=args.max_concurrent,
    )
    if args.batch_size < 1 or args.batch_wait_ms < 0:
        raise InputError("--batch-size / --batch-wait-ms", "need a batch size of at least 1 and a wait >= 0")
    sock = _bind(args.host, args.port)  # before loading: a taken port fails at once

    import uvicorn

    from .app import create_app
    from .mcp import build_mcp
    from .service import load_service

    service = load_service(
        specs,
        device=args.device,
        backend=args.backend,
        batch_size=args.batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
        mmap=args.mmap,
        limits=limits,
    )
    mounts, lifespans = {}, []
    if args.mcp:
        mcp_app = build_mcp(service).http_app(path="/")
        mounts["/mcp"], lifespans = mcp_app, [mcp_app.lifespan]
    app = create_app(service, api_keys=ApiKeys(keys), mounts=mounts, lifespans=lifespans)
    sock.listen(2048)  # connections from here on wait in the backlog until uvicorn accepts them
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    print(
        f"serving {', '.join(service.indexes)} on {url}" + (f" (MCP at {url}/mcp/)" if args.mcp else ""),
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, access_log=args.access_log, log_level="info"))
    server.run(sockets=[sock])
    return "server stopped"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without
    # it every answer waits for the client's delayed ACK (about 40 ms a request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise InputError(f"--host {host} --port {port}", err.strerror or str(err)) from None
    return sock


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    return run_cli(lambda: serve(args))


if __name__ == "__main__":
    sys.exit(main())
