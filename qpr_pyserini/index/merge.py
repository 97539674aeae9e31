"""Shard index folders joined into one (``python -m qpr_pyserini.index merge``), and the agreement they need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qpr_pyserini.index.record import INDEX_RECORD
from qpr_pyserini.index.store import DenseIndex, IndexWriter, load_index
from qpr_pyserini.io.errors import InputError


def merge_indexes(
    shards: Sequence[str | Path],
    output: str | Path,
    *,
    overwrite: bool = False,
    allow_partial: bool = False,
) -> Path:
    """Concatenate shard folders (in the order given) into one index; encoders and dimensions must agree.

    Shards written by ``encode --shard-num N`` must all be there, each once (:func:`check_complete`); with
    ``allow_partial`` a subset is merged and the merged record lists the shards it holds (``partial``).
    """
    if not shards:
        raise InputError("--shards", "no shards to merge")
    loaded = [load_index(s) for s in shards]
    if not any(shard.docids for shard in loaded):
        raise InputError("--shards", "no documents in any of these shards")
    check_shards_agree([(s.path, s.record, s.dimension) for s in loaded])
    partial = check_complete([(s.path, s.record) for s in loaded], allow_partial=allow_partial)
    first = loaded[0]
    extra = _merged_source(loaded) | ({"partial": partial} if partial else {})
    with IndexWriter(output, first.dimension, first.encoder, overwrite=overwrite, extra=extra) as writer:
        for shard in loaded:
            try:
                writer.add(shard.docids, shard.vectors())
            except ValueError as err:
                raise InputError(str(shard.path), str(err)) from err
    return Path(output)


def check_shards_agree(shards: Sequence[tuple[Path, dict[str, Any] | None, int | None]]) -> None:
    """Shards as (folder, record, dimension or None when not known yet) must share dimension and encoder."""
    first, first_record, first_dimension = shards[0]
    for path, record, dimension in shards[1:]:
        if None not in (dimension, first_dimension) and dimension != first_dimension:
            raise InputError(str(path), f"dimension {dimension} differs from {first} ({first_dimension})")
        if (record is None) != (first_record is None):
            lacking, having = (path, first) if record is None else (first, path)
            raise InputError(
                str(path),
                f"{lacking} has no {INDEX_RECORD} (its encoder is unknown) but {having} has one: "
                "shards of one index are written alike",
            )
        if (record or {}).get("encoder") != (first_record or {}).get("encoder"):
            raise InputError(str(path), f"was encoded with a different encoder than {first}")


def check_complete(
    shards: Sequence[tuple[Path, dict[str, Any] | None]], *, allow_partial: bool = False
) -> dict[str, Any] | None:
    """Folders whose records name their shard (``encode --shard-id I --shard-num N``) must be the N shards,
    each once. Returns None when they are (or record no shards); with ``allow_partial``, a subset of them is
    taken and returned as ``{"shards": [ids], "num": N}``, else an InputError names the missing ones."""
    numbered = [(path, record["shard"]) for path, record in shards if record and record.get("shard")]
    if not numbered:
        return None
    nums = {shard["num"] for _, shard in numbered}
    if len(nums) > 1 or len(numbered) < len(shards):
        raise InputError(
            str(numbered[0][0]),
            "these folders are not shards of one split (their records name different --shard-num, or none)",
        )
    num = nums.pop()
    holder: dict[int, Path] = {}
    for path, shard in numbered:
        if shard["id"] in holder:
            raise InputError(
                str(path), f"is shard {shard['id']} of {num}, as {holder[shard['id']]} is (given twice)"
            )
        holder[shard["id"]] = path
    missing = sorted(set(range(num)) - holder.keys())
    if not missing:
        return None
    if not allow_partial:
        raise InputError(
            str(numbered[0][0]),
            f"shard {', '.join(map(str, missing))} of {num} is missing (these folders hold "
            f"{len(holder)} of the {num} shards); pass --allow-partial to use only these",
        )
    return {"shards": sorted(holder), "num": num}


def _merged_source(loaded: list[DenseIndex]) -> dict[str, Any]:
    corpora = {(s.record or {}).get("corpus") for s in loaded}
    return {
        "corpus": corpora.pop() if len(corpora) == 1 else sorted(map(str, corpora)),
        "merged_from": len(loaded),
    }
