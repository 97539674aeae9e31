"""Shard index folders joined into one (``python -m qpr_pyserini.index merge``), and the agreement they need."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qpr_pyserini.index.store import DenseIndex, IndexWriter, load_index
from qpr_pyserini.io.errors import InputError


def merge_indexes(shards: Sequence[str | Path], output: str | Path, *, overwrite: bool = False) -> Path:
    """Concatenate shard folders (in the order given) into one index; encoders and dimensions must agree."""
    if not shards:
        raise InputError("--shards", "no shards to merge")
    loaded = [load_index(s) for s in shards]
    if not any(shard.docids for shard in loaded):
        raise InputError("--shards", "no documents in any of these shards")
    check_shards_agree([(s.path, s.record, s.dimension) for s in loaded])
    first = loaded[0]
    with IndexWriter(
        output, first.dimension, first.encoder, overwrite=overwrite, extra=_merged_source(loaded)
    ) as writer:
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
        if (record or {}).get("encoder") != (first_record or {}).get("encoder"):
            raise InputError(str(path), f"was encoded with a different encoder than {first}")


def _merged_source(loaded: list[DenseIndex]) -> dict[str, Any]:
    corpora = {(s.record or {}).get("corpus") for s in loaded}
    return {
        "corpus": corpora.pop() if len(corpora) == 1 else sorted(map(str, corpora)),
        "merged_from": len(loaded),
    }
