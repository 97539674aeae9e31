"""Pyserini encoder subclasses: instruction-aware queries, formatted passages.

``InstructionQueryEncoder`` is a ``pyserini.encode.QueryEncoder``: hand it to Pyserini's own
``FaissSearcher(index_dir, encoder)``. Its ``encode(query, instruction=None)`` accepts the ``qid``/``query``
dicts of Pyserini's raw JSONL topics, and ``encode_batch`` makes ``FaissSearcher.batch_search`` batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pyserini.encode import DocumentEncoder, QueryEncoder  # importing qpr_pyserini made this work offline

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.index.store import load_index
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.search.query_encoder import check_compatible, refuse_with_model, with_settings

QueryInput = str | dict[str, Any]


class _BackedByDenseEncoder:
    """The settings and dimension of the DenseEncoder behind a Pyserini encoder."""

    model: DenseEncoder

    @property
    def config(self) -> EncoderConfig:
        return self.model.config

    @property
    def dimension(self) -> int:
        return self.model.dimension


class InstructionQueryEncoder(_BackedByDenseEncoder, QueryEncoder):
    """Encodes ``(query, instruction)`` pairs through the encoder's instruction template.

    ``encoder_dir`` is anything :func:`qpr_pyserini.presets.resolve_encoder` accepts (preset, folder, index).
    ``instruction`` is the default used when a query comes without one. ``template``, ``prefix`` (the query
    prefix) and ``max_length`` (of queries) override the encoder's settings; Pyserini's other CLI keyword
    arguments (``fp16``, ...) are ignored.

    ``model`` (a loaded DenseEncoder) is the encoder itself: naming another one as well (``encoder_dir``,
    ``tokenizer_name``) is an InputError, and ``template``/``prefix``/``max_length`` override its settings
    just as they override a named encoder's.
    """

    def __init__(
        self,
        encoder_dir: str | EncoderConfig | None = None,
        tokenizer_name: str | None = None,
        device: str = "cpu",
        *,
        template: str | None = None,
        instruction: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        model: DenseEncoder | None = None,
        prefix: str | None = None,
        **_pyserini_kwargs: Any,
    ) -> None:
        super().__init__()
        overrides = {"template": template, "query_prefix": prefix, "query_max_length": max_length}
        if model is None:
            config = resolve_encoder(encoder_dir, tokenizer=tokenizer_name, **overrides)
            model = DenseEncoder.load(config, device)
        else:
            refuse_with_model(encoder_dir=encoder_dir, tokenizer_name=tokenizer_name)
        self.model = with_settings(model, **overrides)
        self.has_model = True
        self.instruction = instruction
        self.batch_size = batch_size

    def encode(self, query: str, instruction: str | None = None, **_: Any) -> np.ndarray:
        """One query -> a float32 vector [d]. Extra keys (``qid``, ...) from Pyserini topics are ignored."""
        return self.encode_batch([query], [instruction])[0]

    def encode_batch(
        self, queries: Sequence[QueryInput], instructions: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Queries (strings, or dicts with ``query`` and optional ``instruction``) -> float32 [n, d]."""
        texts, given = [], []
        for q in queries:
            if isinstance(q, dict):
                texts.append(q["query"])
                given.append(q.get("instruction"))
            else:
                texts.append(q)
                given.append(None)
        if instructions is not None:
            given = list(instructions)
        resolved = [i if i is not None else self.instruction for i in given]
        return self.model.embed_queries(texts, resolved, batch_size=self.batch_size)


class InstructionDocumentEncoder(_BackedByDenseEncoder, DocumentEncoder):
    """Encodes passages as ``passage_prefix + title + separator + text`` with the encoder's pooling.

    ``model`` (a loaded DenseEncoder) is the encoder itself: naming another one as well (``model_name``,
    ``tokenizer_name``) is an InputError; ``max_length`` (of passages) overrides its setting either way.
    """

    def __init__(
        self,
        model_name: str | EncoderConfig | None = None,
        tokenizer_name: str | None = None,
        device: str = "cpu",
        *,
        max_length: int | None = None,
        model: DenseEncoder | None = None,
        **_pyserini_kwargs: Any,
    ) -> None:
        if model is None:
            model = DenseEncoder.load(resolve_encoder(model_name, tokenizer=tokenizer_name), device)
        else:
            refuse_with_model(model_name=model_name, tokenizer_name=tokenizer_name)
        self.model = with_settings(model, passage_max_length=max_length)

    def encode(
        self,
        texts: Sequence[str],
        titles: Sequence[str] | None = None,
        max_length: int | None = None,
        **_: Any,
    ) -> np.ndarray:
        """Passages -> float32 [n, d] (one batch: callers batch; Pyserini's encode CLI does)."""
        return self.model.embed_passages(
            list(texts), titles, batch_size=max(len(texts), 1), max_length=max_length
        )


def load_query_encoder(
    spec: str | EncoderConfig | None = None,
    device: str = "cpu",
    *,
    index: str | Path | None = None,
    **kwargs: Any,
) -> InstructionQueryEncoder:
    """The query encoder ``spec`` names (an index folder: its recorded encoder; a preset; a model folder).

    With ``index`` (an index folder), ``spec`` defaults to the index's recorded encoder and the encoder is
    checked against the index as ``python -m qpr_pyserini.search`` checks it: an encoder whose passage-side
    settings or dimension differ raises the same InputError. Without ``index`` nothing is checked.
    ``kwargs`` go to :class:`InstructionQueryEncoder`.
    """
    if index is None:
        return InstructionQueryEncoder(spec, device=device, **kwargs)
    dense = load_index(index, mmap=True)  # only its record and dimension are needed here
    if spec is None and kwargs.get("model") is None:
        spec = str(index)
    encoder = InstructionQueryEncoder(spec, device=device, **kwargs)
    check_compatible(dense, encoder.config, encoder.dimension)
    return encoder


def load_document_encoder(
    spec: str | EncoderConfig | None = None, device: str = "cpu", **kwargs: Any
) -> InstructionDocumentEncoder:
    return InstructionDocumentEncoder(spec, device=device, **kwargs)
