"""Corpus -> Pyserini FAISS index (``python -m qpr_pyserini.encode``), streaming and atomic."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.record import read_index_record
from qpr_pyserini.index.store import IndexWriter
from qpr_pyserini.io.corpus import (
    CorpusFingerprint,
    Document,
    corpus_fingerprint,
    count_documents,
    iter_corpus_shard,
    shard_rows,
)
from qpr_pyserini.io.errors import InputError, check_positive
from qpr_pyserini.model.backends import resolve_backend
from qpr_pyserini.model.encoder import DenseEncoder, resolve_device
from qpr_pyserini.presets import resolve_encoder

log = logging.getLogger(__name__)

LOWER_PRECISION_BACKENDS = ("openvino-bf16", "onnx-int8")  # vectors that differ from torch's fp32 ones
CORPUS_FINGERPRINT = "corpus_sha256"  # the index record's field: corpus_fingerprint of what it holds


def encode_corpus(
    corpus: str | Path,
    index: str | Path,
    encoder: str | EncoderConfig | None = None,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    shard_id: int = 0,
    shard_num: int = 1,
    device: str = "cpu",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    model: DenseEncoder | None = None,
    backend: str = "torch",
) -> Path:
    """Encode ``corpus`` (BEIR/Pyserini JSONL, a folder of them, or ``irds:<id>``) into the index folder ``index``.

    The encoder is ``encoder`` (default: the ``minilm`` preset), or ``model`` if given: then ``encoder`` may be
    left out, and if given must equal ``model.config``. ``max_length`` overrides the passage length either way.
    The index records exactly the configuration that encoded it. Documents are read and encoded
    ``batch_size`` at a time, in chunks of ``16 * batch_size`` written straight to the index file, so memory
    does not grow with the corpus. The folder appears only once complete. Returns its path.

    ``resume`` continues a run of the same settings (encoder, corpus, shard, batch size) that was killed or
    interrupted, after its last complete chunk; the result is byte for byte what one uninterrupted run writes.
    Without such a run it starts afresh, and if the index is already complete it returns it untouched.
    ``backend`` (see qpr_pyserini.model.backends) applies to the model loaded here.
    """
    check_positive(batch_size=batch_size)
    config = _encoder_config(encoder, max_length, model)
    if config.passage_encoder is not None:
        log.warning(
            "%s was trained query-side against a fixed index; encoding passages with it uses the trained "
            "backbone, not the passage encoder it was trained against (%s)",
            config.name or config.model,
            config.passage_encoder.get("name") or config.passage_encoder.get("model"),
        )
    documents = iter_corpus_shard(corpus, shard_id, shard_num)
    total = count_documents(corpus)
    shard = {"id": shard_id, "num": shard_num} if shard_num > 1 else None
    used_backend = _backend_of(model, backend, device, config)
    if resume and is_index_of(index, corpus, config, used_backend, shard_id, shard_num):
        log.warning("%s is already complete; nothing to resume", index)
        return Path(index)
    extra = {"corpus": str(corpus), "shard": shard, "backend": used_backend}
    model = model or DenseEncoder.load(config, device, backend)
    # Every document feeds the fingerprint, those a resumed run already holds too; each checkpoint records
    # the fingerprint of what it holds, so a run resumes only on the very documents it started on.
    fingerprint = CorpusFingerprint()

    def check_prefix(count: int, state: dict[str, Any]) -> None:
        held = [fingerprint.add(d) for d in itertools.islice(documents, count)]
        if len(held) < count:
            raise InputError(str(corpus), f"has fewer documents than the {count} already encoded")
        if state.get(CORPUS_FINGERPRINT) != fingerprint.hexdigest():
            raise InputError(
                str(corpus),
                f"cannot resume: its first {count} documents are not those the unfinished run encoded "
                "(the corpus changed since); run without --resume to start over",
            )

    with IndexWriter(
        index,
        model.dimension,
        config,
        overwrite=overwrite,
        extra=extra,
        resume=resume,
        resume_key={"batch_size": batch_size, "corpus_documents": total},
        check_resume=check_prefix,
    ) as writer:
        expected = None if total is None else len(shard_rows(total, shard_id, shard_num))
        bar = tqdm(
            total=expected,
            initial=writer.count,
            desc=f"encoding {Path(str(corpus)).name}",
            unit="doc",
            disable=not progress,
        )
        with bar:
            # Chunks of many batches let the encoder group passages of similar length (see DenseEncoder.embed);
            # each chunk is a checkpoint of the writer, so a resumed run skips the chunks it already holds.
            for batch in _batches(_fingerprinted(documents, fingerprint), batch_size * 16):
                texts, titles = [d.text for d in batch], [d.title for d in batch]
                vectors = model.embed_passages(
                    texts, titles, batch_size=batch_size, max_length=config.passage_max_length
                )
                try:
                    writer.add(
                        [d.docid for d in batch], vectors, state={CORPUS_FINGERPRINT: fingerprint.hexdigest()}
                    )
                except ValueError as err:
                    raise InputError(str(corpus), str(err)) from err
                bar.update(len(batch))
            writer.extra[CORPUS_FINGERPRINT] = fingerprint.hexdigest()
    return Path(index)


def _encoder_config(
    encoder: str | EncoderConfig | None, max_length: int | None, model: DenseEncoder | None
) -> EncoderConfig:
    """What will encode: the named encoder, or the passed model's configuration; ``max_length`` applied."""
    if model is None:
        return resolve_encoder(encoder, passage_max_length=max_length)
    actual = resolve_encoder(model.config, passage_max_length=max_length)
    if encoder is not None:
        named = resolve_encoder(encoder, passage_max_length=max_length).to_dict()
        differing = [name for name, value in actual.to_dict().items() if named[name] != value]
        if differing:
            raise InputError(
                "encoder",
                f"{encoder if isinstance(encoder, str) else 'the configuration given'} differs from the passed "
                f"model's in {', '.join(differing)}; leave it out to encode with the model",
            )
    return actual


def is_index_of(
    index: str | Path,
    corpus: str | Path,
    config: EncoderConfig,
    backend: str = "torch",
    shard_id: int = 0,
    shard_num: int = 1,
) -> bool:
    """Whether ``index`` is a finished index of this shard of ``corpus`` by this encoder and backend: the one rule
    by which an existing index is reused (its record must name them; the corpus is compared by content)."""
    record = read_index_record(index) if Path(index).is_dir() else None
    shard = {"id": shard_id, "num": shard_num} if shard_num > 1 else None
    return (
        record is not None
        and record.get("encoder") == config.to_dict()
        and _vectors_of(record.get("backend", "torch")) == _vectors_of(backend)
        and record.get("shard") == shard
        and CORPUS_FINGERPRINT in record
        and record[CORPUS_FINGERPRINT] == corpus_fingerprint(corpus, shard_id, shard_num)
    )


def encode_or_reuse(
    corpus: str | Path,
    index: str | Path,
    encoder: str | EncoderConfig | None = None,
    *,
    model: DenseEncoder | None = None,
    replace: bool = False,
    backend: str = "torch",
    **options: Any,
) -> Path:
    """``index`` as it is when it already holds ``corpus`` encoded by this encoder (:func:`is_index_of`), else
    ``corpus`` encoded into it. A folder holding something else is replaced with ``replace``, else an
    InputError. ``options`` go to :func:`encode_corpus`."""
    config = _encoder_config(encoder, options.get("max_length"), model)
    used_backend = _backend_of(model, backend, options.get("device", "cpu"), config)
    if is_index_of(index, corpus, config, used_backend):
        log.info("reusing %s, an index of %s by this encoder", index, corpus)
        return Path(index)
    if Path(index).exists() and not replace:
        raise InputError(
            str(index),
            f"exists but is not an index of {corpus} by encoder {config.name or config.model} "
            "(another corpus, encoder or backend, or built elsewhere): name another folder or remove it",
        )
    return encode_corpus(corpus, index, config, model=model, backend=backend, overwrite=replace, **options)


def _backend_of(model: DenseEncoder | None, backend: str, device: str, config: EncoderConfig) -> str:
    """The backend that encodes (and that the index records): the passed model's, else ``backend`` as it
    resolves for ``device`` and the encoder's weights (``auto``: see qpr_pyserini.model.backends)."""
    if model is not None:
        return model.backend
    return resolve_backend(backend, resolve_device(device), config.dtype)


def _vectors_of(backend: str) -> str:
    """Which vectors a backend writes: the fp32 backends (torch, onnx, openvino) equal torch's, so an index of
    any of them serves the others; the opt-in lower precisions are each their own."""
    return backend if backend in LOWER_PRECISION_BACKENDS else "float32"


def _fingerprinted(documents: Iterator[Document], fingerprint: CorpusFingerprint) -> Iterator[Document]:
    for document in documents:
        fingerprint.add(document)
        yield document


def _batches(documents: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while batch := list(itertools.islice(documents, size)):
        yield batch
