"""Pyserini FAISS index folders: atomic writing, the encoder record, loading, and shard merging.

Layout (what ``pyserini.search.faiss.FaissSearcher`` reads): ``index`` (a faiss ``IndexFlatIP``) and ``docid``
(one id per line, in row order), plus our ``qpr_index.json`` recording the encoder configuration, dimension,
document count and shard, so search can refuse a query encoder that does not match the passages.

A folder is written under a hidden temporary name beside the target (``.<name>.partial-*``) and renamed into
place only when complete: an interrupted or failed run leaves no folder that looks like an index. The rename
never replaces an index another run finished meanwhile (unless asked to overwrite). While it runs, a writer
holds a lock on the ``.writer`` file inside its temporary folder; the next writer of the same target deletes
the temporary folders whose lock is free, i.e. whose writer was killed, or, asked to resume, adopts one and
continues after its last checkpoint (``.progress.json``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import faiss
import numpy as np

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.record import INDEX_RECORD, encoder_config, read_index_record
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.version import __version__

log = logging.getLogger(__name__)

INDEX_FILE = "index"
DOCID_FILE = "docid"
WRITER_FILE = ".writer"
PROGRESS_FILE = ".progress.json"


@dataclass
class DenseIndex:
    """A loaded index: the faiss index, its doc ids in row order, and our record (None for foreign indexes)."""

    path: Path
    faiss_index: Any
    docids: list[str]
    record: dict[str, Any] | None

    @property
    def dimension(self) -> int:
        return int(self.faiss_index.d)

    @property
    def encoder(self) -> EncoderConfig | None:
        return None if self.record is None else encoder_config(self.record, self.path / INDEX_RECORD)

    def rows_of(self, docids: Sequence[str]) -> np.ndarray:
        """Row numbers of doc ids (KeyError names the first unknown id)."""
        lookup = self._row_of
        return np.fromiter((lookup[d] for d in docids), dtype=np.int64, count=len(docids))

    def contains(self, docid: str) -> bool:
        return docid in self._row_of

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Stored vectors [n, d] (all of them, or the given rows) — no re-encoding."""
        if rows is None:
            return self.faiss_index.reconstruct_n(0, self.faiss_index.ntotal)
        return self.faiss_index.reconstruct_batch(np.asarray(rows, dtype=np.int64))

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.docids)}


def load_index(path: str | Path, *, mmap: bool = False) -> DenseIndex:
    """Load an index folder written by us or by Pyserini (``index`` + ``docid``).

    ``mmap`` maps the vectors from the file instead of reading them into memory (for a look at the index, or
    an index larger than RAM; searching then pages vectors in from disk).
    """
    path = Path(path)
    for name in (INDEX_FILE, DOCID_FILE):
        if not (path / name).is_file():
            raise InputError(str(path), f"not a Pyserini FAISS index folder (no '{name}' file)")
    record = read_index_record(path)
    docids = read_docids(path)
    try:
        index = faiss.read_index(str(path / INDEX_FILE), faiss.IO_FLAG_MMAP_IFC if mmap else 0)
    except RuntimeError:
        raise InputError(
            str(path / INDEX_FILE), "cannot read the faiss index (a truncated or foreign file)"
        ) from None
    if index.ntotal != len(docids):
        raise InputError(str(path), f"index holds {index.ntotal} vectors but docid lists {len(docids)} ids")
    for name, actual in (("dimension", index.d), ("documents", index.ntotal)):
        if record is not None and record.get(name, actual) != actual:
            raise InputError(
                str(path / INDEX_RECORD), f"records {name} {record[name]} but the index has {actual}"
            )
    return DenseIndex(path, index, docids, record)


def read_docids(path: str | Path) -> list[str]:
    """The doc ids of an index folder, in row order (its vectors are not read)."""
    try:
        return (Path(path) / DOCID_FILE).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(str(Path(path) / DOCID_FILE), f"not UTF-8 text ({err.reason})") from None


class IndexWriter:
    """Context manager that writes an ``IndexFlatIP`` folder under a temporary name and renames it on success.

    >>> with IndexWriter(out, dimension=384, encoder=config) as writer:
    ...     writer.add(["d1", "d2"], vectors)

    Vectors go straight to the ``index`` file (faiss's own byte layout, its header completed at the end), so
    memory does not grow with the corpus. Each ``add`` is a checkpoint: the files are flushed to disk and
    ``PROGRESS_FILE`` records how far they are complete. With ``resume``, the writer adopts the temporary
    folder of an earlier writer of the same target that was killed or interrupted, provided it was started
    with the same dimension, encoder, ``extra`` and ``resume_key`` (else an InputError), and continues after
    its last checkpoint (``count`` says how many documents it holds); without one it starts afresh.
    ``add`` may record a ``state`` with each checkpoint (e.g. a fingerprint of the documents written so far);
    before adopting a folder, ``check_resume(count, state)`` may refuse it by raising an InputError (the
    folder is then kept, for a later resume of the right input).
    Bad input (a ValueError) removes the temporary folder; any other exception (an interrupt, a crash)
    leaves it for ``resume`` (the next writer without ``resume`` removes it).
    """

    def __init__(
        self,
        path: str | Path,
        dimension: int,
        encoder: EncoderConfig | None,
        *,
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
        resume: bool = False,
        resume_key: dict[str, Any] | None = None,
        finish: Callable[[Path], None] | None = None,
        check_resume: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(str(self.path), "exists and is not a folder")
        if self.path.is_dir() and any(self.path.iterdir()) and not overwrite:
            raise InputError(
                str(self.path), "index folder exists and is not empty (pass --overwrite to replace it)"
            )
        self.dimension = dimension
        self.encoder = encoder
        self.overwrite = overwrite
        self.extra = extra or {}
        self.resume = resume
        self.settings = json.loads(
            json.dumps(
                {
                    "dimension": dimension,
                    "encoder": encoder.to_dict() if encoder else None,
                    "extra": self.extra,
                    **(resume_key or {}),
                }
            )
        )
        self.finish = finish  # called with the complete temporary folder, before it is renamed into place
        self.check_resume = check_resume
        self.count = 0
        self._state: dict[str, Any] = {}
        self._seen: set[str] = set()

    def __enter__(self) -> IndexWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{self.path.name}.partial-"
        adopted = None
        for folder in sorted(self.path.parent.iterdir()):
            if not folder.name.startswith(prefix) or (lock := _lock_if_abandoned(folder)) is None:
                continue
            progress = _read_progress(folder) if self.resume and adopted is None else None
            if progress is None:
                log.warning("removing %s, left behind by an index writer that did not finish", folder)
                shutil.rmtree(folder, ignore_errors=True)
                lock.close()
                continue
            if progress["settings"] != self.settings:
                lock.close()
                differing = sorted(
                    key
                    for key in {*progress["settings"], *self.settings}
                    if progress["settings"].get(key) != self.settings.get(key)
                )
                raise InputError(
                    str(self.path),
                    f"cannot resume: the unfinished run in {folder.name} used another {', '.join(differing)}; "
                    "run without --resume to discard it and start over",
                )
            if self.check_resume is not None:
                try:
                    self.check_resume(progress["documents"], progress.get("state") or {})
                except BaseException:
                    lock.close()
                    raise
            adopted = (folder, lock, progress)
        if adopted is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=self.path.parent))
            self._tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; a finished index is an ordinary folder
            self._lock = _hold_writer_lock(self._tmp)
            self._vectors = open(self._tmp / INDEX_FILE, "wb")  # noqa: SIM115  (closed in __exit__)
            self._vectors.write(_flat_header(self.dimension, 0))
            self._docids = open(self._tmp / DOCID_FILE, "wb")  # noqa: SIM115
            self._checkpoint()
        else:
            self._tmp, self._lock, progress = adopted
            self._lock.seek(0)
            self._lock.truncate()
            self._lock.write(f"{os.getpid()}@{socket.gethostname()}\n".encode())
            self._lock.flush()
            self.count = progress["documents"]
            self._state = progress.get("state") or {}
            self._vectors = open(self._tmp / INDEX_FILE, "r+b")  # noqa: SIM115
            self._vectors.truncate(len(_flat_header(self.dimension, 0)) + 4 * self.dimension * self.count)
            self._vectors.seek(0, os.SEEK_END)
            self._docids = open(self._tmp / DOCID_FILE, "r+b")  # noqa: SIM115
            self._docids.truncate(progress["docid_bytes"])
            self._seen = set(self._docids.read().decode("utf-8").splitlines())
            log.info("resuming %s after %d documents (%s)", self.path, self.count, self._tmp.name)
        return self

    def add(self, docids: Sequence[str], vectors: np.ndarray, state: dict[str, Any] | None = None) -> None:
        """Append documents and their vectors, then checkpoint with ``state`` (see the class docstring)."""
        if vectors.shape != (len(docids), self.dimension):
            raise ValueError(
                f"expected vectors of shape ({len(docids)}, {self.dimension}), got {vectors.shape}"
            )
        for docid in docids:
            if docid in self._seen:
                raise ValueError(f"duplicate doc id {docid!r} in the index being written")
            self._seen.add(docid)
        self._vectors.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self._docids.write("".join(f"{d}\n" for d in docids).encode("utf-8"))
        self.count += len(docids)
        self._state = state or {}
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Make the files durable, then record how much of them is complete (atomically)."""
        for handle in (self._vectors, self._docids):
            handle.flush()
            os.fsync(handle.fileno())
        progress = {
            "documents": self.count,
            "docid_bytes": self._docids.tell(),
            "settings": self.settings,
            "state": self._state,
        }
        (self._tmp / f"{PROGRESS_FILE}.tmp").write_text(json.dumps(progress))
        os.replace(self._tmp / f"{PROGRESS_FILE}.tmp", self._tmp / PROGRESS_FILE)

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        keep = exc_type is not None and not issubclass(exc_type, ValueError)
        try:
            if exc_type is None:
                self._finish()
        finally:
            self._vectors.close()
            self._docids.close()
            if not keep:
                shutil.rmtree(self._tmp, ignore_errors=True)  # gone already when renamed into place
            self._lock.close()

    def _finish(self) -> None:
        self._vectors.seek(0)
        self._vectors.write(_flat_header(self.dimension, self.count))
        self._vectors.flush()
        record = {
            "format": 1,
            "created_by": f"qpr_pyserini {__version__}",
            "dimension": self.dimension,
            "documents": self.count,
            "encoder": self.encoder.to_dict() if self.encoder else None,
            **self.extra,
        }
        (self._tmp / INDEX_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        (self._tmp / PROGRESS_FILE).unlink()
        if self.finish is not None:
            self.finish(self._tmp)
        (self._tmp / WRITER_FILE).unlink()  # the lock stays held (on the open file) until __exit__ ends
        if self.overwrite and self.path.exists():
            shutil.rmtree(self.path)
        try:
            os.rename(self._tmp, self.path)  # replaces an empty folder, fails on a non-empty one
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            hint = "" if self.overwrite else " (pass --overwrite to replace it)"
            raise InputError(
                str(self.path),
                f"another run finished writing this index meanwhile; this run's is discarded{hint}",
            ) from None


def _flat_header(dimension: int, count: int) -> bytes:
    """The bytes ``faiss.write_index`` puts before the vectors of an ``IndexFlatIP`` holding ``count`` of them.

    Taken from faiss's own serialisation of an empty index: ``IxFI``, d (int32), ntotal (int64), two unused
    int64, is_trained (uint8), metric (int32), then the vector data's length in floats (uint64).
    """
    empty = faiss.serialize_index(faiss.IndexFlatIP(dimension)).tobytes()
    if len(empty) != 45 or empty[:4] != b"IxFI":
        raise RuntimeError(
            f"faiss {faiss.__version__} serialises IndexFlatIP in a layout this writer does not know"
        )
    return empty[:8] + struct.pack("<q", count) + empty[16:37] + struct.pack("<Q", count * dimension)


def _read_progress(folder: Path) -> dict[str, Any] | None:
    """An abandoned temporary folder's last checkpoint, or None if it has none (nothing to resume)."""
    try:
        progress = json.loads((folder / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return (
        progress
        if isinstance(progress, dict) and {"documents", "docid_bytes", "settings"} <= progress.keys()
        else None
    )


def _hold_writer_lock(folder: Path) -> IO[bytes]:
    """Lock a new ``WRITER_FILE`` in ``folder`` (it names this process) and return it open: the lock lasts
    until it is closed or the process dies. The file appears under its name only once locked."""
    fd, name = tempfile.mkstemp(prefix=f"{WRITER_FILE}-", dir=folder)
    handle = os.fdopen(fd, "wb")
    fcntl.flock(handle, fcntl.LOCK_EX)
    handle.write(f"{os.getpid()}@{socket.gethostname()}\n".encode())
    handle.flush()
    os.rename(name, folder / WRITER_FILE)
    return handle


def _lock_if_abandoned(folder: Path) -> IO[bytes] | None:
    """Lock the ``WRITER_FILE`` of a temporary index folder whose writer is gone (nobody holds its lock) and
    return it open; None when a running writer holds it, or the folder has no such file (a writer may be just
    starting, or it predates the lock)."""
    try:
        handle = open(folder / WRITER_FILE, "rb+")  # noqa: SIM115  (the caller closes it; writable for NFS locks)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a running writer (or locks unsupported here): not ours to touch
        handle.close()
        return None
    return handle


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
