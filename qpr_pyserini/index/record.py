"""The record ``qpr_index.json`` that ``qpr_pyserini.encode`` writes beside a FAISS index, read in one place.

A folder may have no record (an index written by Pyserini); one that has a record must hold a well-formed one:
a JSON object whose ``encoder`` is an encoder configuration (or null: "no encoder recorded") and whose
``dimension`` and ``documents``, where present, are counts. This module imports no other part of the index
code, so that the encoder resolver (``presets``) can read records too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io._read import read_json_file
from qpr_pyserini.io.errors import InputError

INDEX_RECORD = "qpr_index.json"

_COUNT_FIELDS = ("dimension", "documents")


def read_index_record(folder: str | Path) -> dict[str, Any] | None:
    """The validated record of an index folder, or None when the folder has no record file."""
    path = Path(folder) / INDEX_RECORD
    if not path.is_file():
        return None
    record = read_json_file(path)
    if not isinstance(record, dict):
        raise InputError(str(path), f"expected a JSON object, got {type(record).__name__}")
    if "encoder" not in record:
        raise InputError(str(path), "no 'encoder' field (null if the encoder is unknown)")
    encoder_config(record, path)
    for name in _COUNT_FIELDS:
        value = record.get(name)
        if name in record and not _is_count(value):
            raise InputError(str(path), f"field {name!r} must be a count, got {value!r}")
    shard = record.get("shard")
    if shard is not None and not (
        isinstance(shard, dict)
        and _is_count(shard.get("id"))
        and _is_count(shard.get("num"))
        and shard["id"] < shard["num"]
    ):
        raise InputError(
            str(path), f"field 'shard' must be null or {{'id': I, 'num': N}}, 0 <= I < N, got {shard!r}"
        )
    return record


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def encoder_config(record: dict[str, Any], path: str | Path) -> EncoderConfig | None:
    """The encoder a (read) record names, or None when it records none; ``path`` is the record's file."""
    encoder = record["encoder"]
    if encoder is None:
        return None
    if not isinstance(encoder, dict):
        raise InputError(str(path), f"field 'encoder' must be an object or null, got {encoder!r}")
    try:
        return EncoderConfig.from_dict(encoder, "field 'encoder'")
    except ValueError as err:
        raise InputError(str(path), str(err)) from None


def recorded_encoder(folder: str | Path) -> EncoderConfig:
    """The encoder recorded beside the index in ``folder`` (which must have a record); an InputError if none."""
    record = read_index_record(folder)
    if record is None:
        raise InputError(str(folder), f"has no {INDEX_RECORD}, so it records no encoder")
    encoder = encoder_config(record, Path(folder) / INDEX_RECORD)
    if encoder is None:
        raise InputError(
            str(Path(folder) / INDEX_RECORD),
            "this index records no encoder; name one (a preset or model folder)",
        )
    return encoder
