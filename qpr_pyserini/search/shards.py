"""Search over several index folders (shards) without merging them.

``python -m qpr_pyserini.search --index SHARD0 SHARD1 ...``, or ``--index FOLDER`` whose subfolders are index
folders (taken in natural name order: shard2 before shard10). The shards' records must agree (encoder,
dimension), hold no doc id twice, and be every shard of their split (``--allow-partial`` takes a subset), as
``python -m qpr_pyserini.index merge`` requires.

Memory: shards are loaded **one at a time** (memory-mapped with ``--mmap``), each searched for all queries at
once, so the peak is one shard plus the running results (queries x hits).

Full retrieval searches each shard with the same faiss call, on the same query batches, as a single index is
searched, and merges the hits under their row in the merged order (shard offsets, in the order given). The
result is that of searching the merged index (``index merge`` of the same shards, same order): the same ids,
the same scores and, where scores tie, the same choice and order faiss makes (later row first; at the cut-off,
the rows faiss's scan keeps). For that, each shard also returns every row tying with its last hit.

Rerank mode gathers the vectors of every query's candidates (which may live in any shard) into one in-memory
flat index, shard by shard, and reranks there exactly as on one index.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.merge import check_complete, check_shards_agree
from qpr_pyserini.index.record import INDEX_RECORD, encoder_config, read_index_record
from qpr_pyserini.index.store import DOCID_FILE, INDEX_FILE, DenseIndex, load_index, read_docids
from qpr_pyserini.io.errors import InputError

Hits = list[tuple[str, float]]
IndexArgument = str | Path | DenseIndex | Sequence[str | Path]


def index_folders(index: str | Path | Sequence[str | Path]) -> list[Path]:
    """The index folders ``--index`` names: the folders given, or a folder's subfolders that are indexes."""
    paths = [Path(index)] if isinstance(index, str | Path) else [Path(p) for p in index]
    if not paths:
        raise InputError("--index", "no index folder given")
    if len(paths) == 1 and paths[0].is_dir() and not (paths[0] / INDEX_FILE).exists():
        shards = [p for p in paths[0].iterdir() if not p.name.startswith(".") and (p / INDEX_FILE).is_file()]
        if shards:
            return sorted(shards, key=lambda p: _natural(p.name))
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            raise InputError(str(path), "is named twice in --index")
        seen.add(path.resolve())
    return paths


def open_index(
    index: IndexArgument,
    *,
    mmap: bool = False,
    prepare: Callable[[DenseIndex], None] | None = None,
    allow_partial: bool = False,
) -> DenseIndex | ShardedIndex:
    """One index (loaded, memory-mapped if ``mmap``), or shards to be loaded one at a time.

    ``prepare`` is applied to every loaded index before it is searched (search settings, a GPU copy).
    A shard (``encode --shard-num N``) without the others is refused unless ``allow_partial``.
    """
    if isinstance(index, DenseIndex):
        dense = index
    else:
        folders = index_folders(index)
        if len(folders) > 1:
            return ShardedIndex(folders, mmap=mmap, prepare=prepare, allow_partial=allow_partial)
        dense = load_index(folders[0], mmap=mmap)
        check_complete([(dense.path, dense.record)], allow_partial=allow_partial)
    if prepare is not None:
        prepare(dense)
    return dense


class ShardedIndex:
    """Index folders searched as one index, each loaded only while searched (see the module docstring)."""

    def __init__(
        self,
        folders: Sequence[Path],
        *,
        mmap: bool = False,
        prepare: Callable[[DenseIndex], None] | None = None,
        allow_partial: bool = False,
    ) -> None:
        for folder in folders:
            if not all((folder / name).is_file() for name in (INDEX_FILE, DOCID_FILE)):
                load_index(folder)  # raises the InputError that names the missing file
        self.folders = list(folders)
        self.mmap = mmap
        self.prepare = prepare
        self.records = [read_index_record(folder) for folder in self.folders]
        dimensions = [None if r is None else r.get("dimension") for r in self.records]
        check_shards_agree(list(zip(self.folders, self.records, dimensions, strict=True)))
        check_complete(list(zip(self.folders, self.records, strict=True)), allow_partial=allow_partial)
        self._location = self._locate()  # reads every docid file: no doc id may be in two shards
        parents = {folder.parent for folder in self.folders}
        self.path = parents.pop() if len(parents) == 1 else self.folders[0]

    @cached_property
    def dimension(self) -> int:
        first = self.records[0]
        if first is not None and "dimension" in first:
            return int(first["dimension"])
        return load_index(self.folders[0], mmap=True).dimension

    @property
    def encoder(self) -> EncoderConfig | None:
        first = self.records[0]
        return None if first is None else encoder_config(first, self.folders[0] / INDEX_RECORD)

    @property
    def documents(self) -> int | None:
        """How many documents the shards hold together, when every record says (None otherwise)."""
        counts = [None if r is None else r.get("documents") for r in self.records]
        return None if None in counts else sum(counts)

    def contains(self, docid: str) -> bool:
        return docid in self._location

    def load(self, number: int) -> DenseIndex:
        """Shard ``number``, loaded (memory-mapped with ``mmap``) and prepared."""
        shard = load_index(self.folders[number], mmap=self.mmap)
        if shard.dimension != self.dimension:
            raise InputError(
                str(shard.path),
                f"dimension {shard.dimension} differs from {self.folders[0]} ({self.dimension})",
            )
        if self.prepare is not None:
            self.prepare(shard)
        return shard

    def search(self, queries: np.ndarray, hits: int, batch_size: int) -> list[Hits]:
        """Top ``hits`` of every query over all shards, exactly as one search of the merged index ranks them.

        Each shard is searched in query batches of ``batch_size`` (the batches a single index is searched
        in, so that faiss takes the same code path and computes the same scores).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores = np.empty((len(queries), 0), dtype=np.float32)
        rows = np.empty((len(queries), 0), dtype=np.int64)
        names: dict[int, str] = {}
        offset = 0
        for number in range(len(self.folders)):
            shard = self.load(number)
            found, local = _search_with_ties(shard.faiss_index, queries, hits, batch_size)
            scores, rows = _best_with_ties(
                np.hstack([scores, found]), np.hstack([rows, np.where(local < 0, -1, local + offset)]), hits
            )
            live = np.unique(rows[rows >= 0]).tolist()
            names = {r: names[r] if r < offset else shard.docids[r - offset] for r in live}
            offset += len(shard.docids)
            del shard  # released before the next one loads
        return [
            [(names[r], float(score)) for r, score in _faiss_choice(row_scores, row_ids, hits)]
            for row_scores, row_ids in zip(scores, rows, strict=True)
        ]

    def subset(self, docids: Iterable[str]) -> DenseIndex:
        """An in-memory flat index of the stored vectors of ``docids`` (gathered shard by shard)."""
        wanted: dict[int, list[str]] = {}
        for docid in dict.fromkeys(docids):
            wanted.setdefault(self._location[docid], []).append(docid)
        gathered = faiss.IndexFlatIP(self.dimension)
        names: list[str] = []
        for number in sorted(wanted):
            shard = self.load(number)
            gathered.add(shard.vectors(shard.rows_of(wanted[number])))
            names.extend(wanted[number])
            del shard
        return DenseIndex(self.path, gathered, names, self.records[0])

    def _locate(self) -> dict[str, int]:
        """Doc id -> the shard holding it (read from the docid files only); an InputError if one holds it twice
        (two copies of a shard, or a shard and a copy of it)."""
        location: dict[str, int] = {}
        for number, folder in enumerate(self.folders):
            for docid in read_docids(folder):
                first = location.setdefault(docid, number)
                if first != number:
                    raise InputError(
                        str(folder),
                        f"holds doc id {docid!r}, as {self.folders[first]} does: shards must not overlap "
                        "(two copies of one shard?)",
                    )
        return location


def _search_with_ties(
    index: Any, queries: np.ndarray, hits: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """A shard's hits for every query: its top ``hits`` and every other row tying with the ``hits``-th score
    (a scan of the merged index may keep any of them). Missing hits are padded with row -1."""
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(queries), batch_size):
        batch, depth = queries[start : start + batch_size], hits + 1
        while True:
            depth = min(depth, index.ntotal)
            scores, rows = index.search(batch, depth)
            if depth <= hits or depth == index.ntotal:
                break
            cut, last = scores[:, hits - 1], scores[:, -1]
            if not np.any((rows[:, -1] >= 0) & (last == cut)):
                break
            depth *= 2
        found.append((scores, rows))
    width = max(s.shape[1] for s, _ in found)
    pad = [((0, 0), (0, width - s.shape[1])) for s, _ in found]
    return (
        np.vstack([np.pad(s, p, constant_values=-np.inf) for (s, _), p in zip(found, pad, strict=True)]),
        np.vstack([np.pad(r, p, constant_values=-1) for (_, r), p in zip(found, pad, strict=True)]),
    )


def _best_with_ties(scores: np.ndarray, rows: np.ndarray, hits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the hits scoring at least the ``hits``-th best score (ties kept), padded with row -1."""
    scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
    if scores.shape[1] > hits:
        cut = -np.partition(-scores, hits - 1, axis=1)[:, hits - 1 : hits]
        keep = (rows >= 0) & (scores >= cut)
    else:
        keep = rows >= 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, : max(int(keep.sum(axis=1).max()), 1)]
    kept = np.take_along_axis(keep, order, 1)
    return (
        np.where(kept, np.take_along_axis(scores, order, 1), -np.inf).astype(np.float32),
        np.where(kept, np.take_along_axis(rows, order, 1), -1),
    )


def _faiss_choice(scores: np.ndarray, rows: np.ndarray, hits: int) -> list[tuple[int, float]]:
    """The ``hits`` (row, score) candidates that faiss's flat search of the merged index returns, in order.

    faiss scans rows in order with a heap of ``hits``: a row enters when the heap has room or it scores
    strictly above the heap's lowest score, pushing out the lowest score of the lowest row; results come
    out by score, ties by descending row. So rows above the ``hits``-th score are all kept, and which rows
    tying at that score are kept depends on where the better rows come in the scan.
    """
    valid = rows >= 0
    scores, rows = scores[valid], rows[valid]
    if len(rows) > hits:
        cut = np.partition(scores, len(scores) - hits)[len(scores) - hits]
        chosen = [i for i in np.argsort(rows, kind="stable") if scores[i] > cut]
        tied: deque[int] = deque()
        seen = 0
        for i in np.argsort(rows, kind="stable"):
            if scores[i] < cut:
                continue
            if scores[i] > cut and seen >= hits:
                tied.popleft()  # a better row pushes out the earliest kept tie
            elif scores[i] == cut and seen < hits:
                tied.append(i)
            seen += 1
        keep = np.array(chosen + list(tied), dtype=np.int64)
        scores, rows = scores[keep], rows[keep]
    order = np.lexsort((-rows, -scores))
    return [(int(rows[i]), float(scores[i])) for i in order]


def _natural(name: str) -> list[Any]:
    """Sort key that orders the numbers inside names by value (shard2 before shard10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
