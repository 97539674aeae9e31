"""Pyserini encoder subclasses: instruction-aware queries, formatted passages.

``InstructionQueryEncoder`` is a ``pyserini.encode.QueryEncoder``: hand it to Pyserini's own
``FaissSearcher(index_dir, encoder)``. Its ``encode(query, instruction=None)`` accepts the ``qid``/``query``
dicts of Pyserini's raw JSONL topics, and ``encode_batch`` makes ``FaissSearcher.batch_search`` batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .compat import prepare_pyserini
from .config import EncoderConfig
from .modeling import DenseEncoder
from .presets import resolve_encoder

prepare_pyserini()
from pyserini.encode import DocumentEncoder, QueryEncoder  # noqa: E402  (needs the offline/Java fixes first)

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
    ``instruction`` is the default used when a query comes without one. Pyserini's CLI keyword arguments
    (``prefix``, ``fp16``, ...) are accepted: ``prefix`` overrides the query prefix, the rest are ignored.
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
        config = resolve_encoder(
            encoder_dir,
            template=template,
            tokenizer=tokenizer_name,
            query_prefix=prefix,
            query_max_length=max_length,
        )
        self.model = model or DenseEncoder.load(config, device)
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
    """Encodes passages as ``passage_prefix + title + separator + text`` with the encoder's pooling."""

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
        config = resolve_encoder(model_name, tokenizer=tokenizer_name, passage_max_length=max_length)
        self.model = model or DenseEncoder.load(config, device)

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
    spec: str | EncoderConfig | None = None, device: str = "cpu", **kwargs: Any
) -> InstructionQueryEncoder:
    """The query encoder for an index folder (its recorded encoder), a preset, or a model folder."""
    return InstructionQueryEncoder(spec, device=device, **kwargs)


def load_document_encoder(
    spec: str | EncoderConfig | None = None, device: str = "cpu", **kwargs: Any
) -> InstructionDocumentEncoder:
    return InstructionDocumentEncoder(spec, device=device, **kwargs)
