"""What a server serves and how: the indexes (from ``--index NAME=DIR`` or Pyserini's YAML config), API keys
and request limits.

The config file has the layout of Pyserini's server config (``pyserini.server.config``), read here without
importing it (that module imports Pyserini's searchers, which start a JVM)::

    indexes:
      scifact: indexes/scifact-minilm          # a path, relative to the config file
      shards:                                  # or an object
        path: indexes/scifact-shards           # an index folder, or a folder of shard folders
        index_type: faiss                      # optional; only faiss indexes are served
        encoder: minilm                        # optional; default: the encoder the index records
        ef_search: 256                         # optional (HNSW); nprobe for IVF
        template: instruction-first            # ours, optional: the instruction template
        corpus: ../data/scifact/corpus.jsonl   # ours, optional: documents for the doc route and hits
    api_keys:
      - a-long-random-secret
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from qpr_pyserini.io.errors import InputError

_INDEX_KEYS = {"path", "index_type", "encoder", "ef_search", "nprobe", "template", "corpus"}


@dataclass(frozen=True)
class IndexSpec:
    """One served index: its name in URLs, its folder(s), and the optional per-index settings."""

    name: str
    paths: tuple[Path, ...]
    encoder: str | None = None
    template: str | None = None
    corpus: str | Path | None = None
    ef_search: int | None = None
    nprobe: int | None = None


@dataclass(frozen=True)
class Limits:
    """Request limits: past the size limits a request gets 400 (413 for the body), past ``concurrent``
    a 429 with Retry-After."""

    query_chars: int = 2000
    instruction_chars: int = 2000
    hits: int = 1000
    batch_queries: int = 256
    body_bytes: int = 1 << 20
    concurrent: int = 256
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) < 1:
                raise InputError("limits", f"{item.name} must be at least 1, got {getattr(self, item.name)}")


@dataclass(frozen=True)
class ServerConfig:
    """The indexes (by name) and the accepted API keys that a config file lists."""

    indexes: dict[str, IndexSpec] = field(default_factory=dict)
    api_keys: tuple[str, ...] = ()


def parse_pairs(option: str, values: list[str] | None) -> dict[str, str]:
    """``NAME=VALUE`` arguments -> ``{NAME: VALUE}``; a malformed or repeated name is an InputError."""
    pairs: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise InputError(option, f"expected NAME=PATH, got {value!r}")
        check_name(option, name)
        if name in pairs:
            raise InputError(option, f"name {name!r} is given twice")
        pairs[name] = rest
    return pairs


def check_name(where: str, name: str) -> None:
    """Index names appear in URL paths: letters, digits, '-', '_' and '.' only."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name in (".", ".."):
        raise InputError(where, f"index name {name!r}: use letters, digits, '-', '_' and '.' only")


def read_config(path: str | Path) -> ServerConfig:
    """The indexes and API keys of a Pyserini-style YAML server config (see the module docstring)."""
    path = Path(path)
    try:
        payload = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise InputError(str(path), f"not valid YAML ({' '.join(str(err).split())})") from None
    except UnicodeDecodeError as err:
        raise InputError(str(path), f"not UTF-8 text ({err.reason})") from None
    if payload is None:
        return ServerConfig()
    if not isinstance(payload, dict):
        raise InputError(str(path), "the config must be a mapping with 'indexes' and/or 'api_keys'")
    unknown = set(payload) - {"indexes", "api_keys"}
    if unknown:
        raise InputError(str(path), f"unknown key(s) {sorted(unknown)}: expected 'indexes' and 'api_keys'")
    return ServerConfig(
        _indexes(payload.get("indexes") or {}, path), _api_keys(payload.get("api_keys") or [], path)
    )


def _indexes(raw: Any, path: Path) -> dict[str, IndexSpec]:
    if not isinstance(raw, dict):
        raise InputError(str(path), "'indexes' must map index names to paths or objects")
    specs = {}
    for name, entry in raw.items():
        where = f"{path}: index {name!r}"
        check_name(where, str(name))
        entry = {"path": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict):
            raise InputError(where, "must be a path or an object with 'path'")
        unknown = set(entry) - _INDEX_KEYS
        if unknown:
            raise InputError(where, f"unknown key(s) {sorted(unknown)}; known: {sorted(_INDEX_KEYS)}")
        if entry.get("index_type", "faiss") != "faiss":
            raise InputError(where, f"index_type {entry['index_type']!r}: only faiss indexes are served")
        folders = entry.get("path")
        folders = [folders] if isinstance(folders, str) else folders
        if not folders or not all(isinstance(f, str) and f.strip() for f in folders):
            raise InputError(where, "'path' must be a folder or a list of shard folders")
        for key in ("encoder", "template", "corpus"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise InputError(where, f"{key!r} must be a string")
        for key in ("ef_search", "nprobe"):
            value = entry.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(where, f"{key!r} must be a positive integer, got {value!r}")
        corpus = entry.get("corpus")
        specs[str(name)] = IndexSpec(
            name=str(name),
            paths=tuple(_relative_to(path, f) for f in folders),
            encoder=entry.get("encoder"),
            template=entry.get("template"),
            corpus=None if corpus is None else _relative_to(path, corpus),
            ef_search=entry.get("ef_search"),
            nprobe=entry.get("nprobe"),
        )
    return specs


def _api_keys(raw: Any, path: Path) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(k, str) and k.strip() for k in raw):
        raise InputError(str(path), "'api_keys' must be a list of non-empty strings")
    return tuple(k.strip() for k in raw)


def _relative_to(config: Path, value: str) -> Path:
    """A path from the config file: ``~`` expanded, relative ones taken from the config file's folder."""
    target = Path(value).expanduser()
    return target if target.is_absolute() else config.resolve().parent / target
