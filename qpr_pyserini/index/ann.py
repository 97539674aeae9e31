"""Approximate nearest-neighbour indexes: a flat index converted to HNSW or IVF-PQ, and their search settings.

``python -m qpr_pyserini.index convert --index FLAT --output OUT --type hnsw|ivfpq [--factory S]`` builds the
index a faiss index factory string describes (inner product, as the flat index) from the stored vectors, no
re-encoding. OUT is an ordinary index folder (``index``, ``docid``, ``qpr_index.json`` with an ``ann`` entry
naming the type and factory), written as :class:`~qpr_pyserini.index.IndexWriter` writes any index: under a
temporary name, renamed into place when complete. Pyserini's ``FaissSearcher`` reads it as it is; the search
settings (HNSW ``efSearch``, IVF ``nprobe``) are stored in the index file, so both tools search it alike, and
``python -m qpr_pyserini.search --ef-search / --nprobe`` override them for one search.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qpr_pyserini.index.store import INDEX_FILE, IndexWriter, load_index
from qpr_pyserini.io.errors import InputError, check_positive

log = logging.getLogger(__name__)

ANN_TYPES = ("hnsw", "ivfpq")
HNSW_NEIGHBOURS = 32
DEFAULT_EF_SEARCH = 128
TRAIN_SAMPLE = 131_072  # IVF-PQ trains on at most this many stored vectors (a fixed-seed sample)
CHUNK = 65_536  # vectors copied or added at a time
_STANDARD_FIELDS = ("format", "created_by", "dimension", "documents", "encoder")


def default_factory(kind: str, dimension: int, documents: int) -> str:
    """The factory string of ``--type`` ``kind`` for an index of ``documents`` vectors of ``dimension``.

    hnsw: ``HNSW32`` (32 neighbours per node, vectors kept exactly). ivfpq: ``IVF{nlist},PQ{m}x{bits}np`` with
    nlist the power of two nearest 4·sqrt(n) (at most n/39, so each list trains on 39 points), m
    sub-quantizers of 4 dimensions (or the largest divisor of the dimension below that) and 8 bits each
    (fewer for tiny indexes, which cannot train 256 centroids), without polysemous training (``np``: it
    takes minutes and only serves Hamming-filtered search, which faiss does not use by default).
    """
    if kind == "hnsw":
        return f"HNSW{HNSW_NEIGHBOURS}"
    if kind != "ivfpq":
        raise InputError("--type", f"expected one of {', '.join(ANN_TYPES)}, got {kind!r}")
    nlist = 2 ** round(math.log2(max(4 * math.sqrt(documents), 1)))
    while nlist > 1 and nlist * 39 > documents:
        nlist //= 2
    subquantizers = max(m for m in range(1, max(dimension // 4, 1) + 1) if dimension % m == 0)
    bits = max(1, min(8, int(math.log2(max(documents, 2)))))
    return f"IVF{nlist},PQ{subquantizers}x{bits}np"


def set_search_parameters(
    index: Any, path: str | Path, *, ef_search: int | None = None, nprobe: int | None = None
) -> None:
    """Set HNSW ``efSearch`` / IVF ``nprobe`` on a loaded faiss index (None: keep the stored value).

    A value below 1, or an option that does not apply to the index's type, is an InputError naming it.
    """
    check_positive(ef_search=ef_search, nprobe=nprobe)
    if ef_search is not None:
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
        if hnsw is None:
            raise InputError("--ef-search", f"applies to HNSW indexes; {path} is {_kind(index)}")
        hnsw.efSearch = ef_search
    if nprobe is not None:
        _ivf(index, path).nprobe = nprobe


def convert_index(
    flat: str | Path,
    output: str | Path,
    kind: str,
    *,
    factory: str | None = None,
    ef_search: int | None = None,
    nprobe: int | None = None,
    overwrite: bool = False,
    seed: int = 0,
) -> Path:
    """Build an ANN index folder at ``output`` from the flat index folder ``flat`` (see the module docstring).

    ``factory`` (a faiss index factory string) replaces the default of ``kind``; ``ef_search`` / ``nprobe``
    are stored as the index's search settings (defaults: efSearch 128, nprobe nlist/32). IVF indexes keep
    their id map, so rerank mode can read vectors (PQ-approximated) back. The flat index is memory-mapped.
    """
    if kind not in ANN_TYPES:
        raise InputError("--type", f"expected one of {', '.join(ANN_TYPES)}, got {kind!r}")
    source = load_index(flat, mmap=True)
    if not isinstance(source.faiss_index, faiss.IndexFlat):
        raise InputError(str(source.path), f"is {_kind(source.faiss_index)}; convert from a flat index")
    if source.faiss_index.ntotal == 0:
        raise InputError(str(source.path), "index holds no vectors")
    dimension, count = source.dimension, source.faiss_index.ntotal
    # Errors name what the user chose: their --factory, or --type when the factory is the default one.
    given = "--factory" if factory else "--type"
    factory = factory or default_factory(kind, dimension, count)
    named = f"--factory {factory}" if given == "--factory" else f"--type {kind} ({factory})"
    try:
        ann = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError:
        raise InputError("--factory", f"faiss cannot build an index from {factory!r}") from None
    actual = _type_of(ann)
    if actual != kind:  # the record's type must be the index's
        fits = f" (that is --type {actual})" if actual else ""
        raise InputError("--factory", f"{factory!r} builds {_kind(ann)}, not a --type {kind} index{fits}")
    record = source.record or {}
    extra = {k: v for k, v in record.items() if k not in _STANDARD_FIELDS}
    extra["ann"] = {"type": kind, "factory": factory, "converted_from": str(source.path)}

    def write_ann(folder: Path) -> None:
        faiss.write_index(ann, str(folder / f"{INDEX_FILE}.ann"))
        (folder / f"{INDEX_FILE}.ann").replace(folder / INDEX_FILE)

    writer = IndexWriter(
        output, dimension, source.encoder, overwrite=overwrite, extra=extra, finish=write_ann
    )
    if ef_search is None and hasattr(faiss.downcast_index(ann), "hnsw"):
        ef_search = DEFAULT_EF_SEARCH
    if nprobe is None and _is_ivf(ann):
        nprobe = max(1, faiss.extract_index_ivf(ann).nlist // 32)
    set_search_parameters(ann, named, ef_search=ef_search, nprobe=nprobe)
    if not ann.is_trained:
        rows = np.random.default_rng(seed).choice(count, min(count, TRAIN_SAMPLE), replace=False)
        try:
            with _faiss_notes() as notes:
                ann.train(source.vectors(np.sort(rows)))
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[-1].rsplit(" failed: ", 1)[-1]  # no C++ source location
            hint = (
                "" if given == "--factory" else "; use --type hnsw, or give a --factory with fewer centroids"
            )
            raise InputError(
                given, f"cannot train {factory!r} on {len(rows)} vectors (the index's size): {reason}{hint}"
            ) from None
        for note, times in Counter(notes).items():
            log.warning("faiss: %s%s", note, f" ({times} times)" if times > 1 else "")
    for start in range(0, count, CHUNK):
        ann.add(source.vectors(np.arange(start, min(start + CHUNK, count))))
    if _is_ivf(ann):
        faiss.extract_index_ivf(ann).make_direct_map()  # so that rerank mode can read vectors back
    with writer:
        for start in range(0, count, CHUNK):
            rows = np.arange(start, min(start + CHUNK, count))
            writer.add(source.docids[start : start + CHUNK], source.vectors(rows))
    return Path(output)


def _type_of(index: Any) -> str | None:
    """The ``--type`` a faiss index is: hnsw (an HNSW graph), ivfpq (inverted lists of PQ codes), else None."""
    if hasattr(faiss.downcast_index(index), "hnsw"):
        return "hnsw"
    if _is_ivf(index) and isinstance(faiss.downcast_index(faiss.extract_index_ivf(index)), faiss.IndexIVFPQ):
        return "ivfpq"
    return None


@contextmanager
def _faiss_notes() -> Iterator[list[str]]:
    """Collect what faiss's C++ code prints on stderr meanwhile (its clustering prints one "please provide at
    least N training points" line per quantizer trained, ~100 for an IVF-PQ index): the caller reports each
    distinct line once."""
    notes: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield notes
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            notes.extend(line.strip() for line in capture.read().decode("utf-8", "replace").splitlines())


def _is_ivf(index: Any) -> bool:
    try:
        faiss.extract_index_ivf(index)
    except RuntimeError:
        return False
    return True


def _ivf(index: Any, path: str | Path) -> Any:
    if not _is_ivf(index):
        raise InputError("--nprobe", f"applies to IVF indexes; {path} is {_kind(index)}")
    return faiss.extract_index_ivf(index)


def _kind(index: Any) -> str:
    """A faiss index's class, as a phrase: 'an IndexFlatIP index'."""
    name = type(faiss.downcast_index(index)).__name__
    return f"an {name} index" if name[0] in "AEIOU" else f"a {name} index"
