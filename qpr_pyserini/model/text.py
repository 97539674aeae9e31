"""The text side of an encoder: query and passage formatting, tokenisation, exact query spans.

A ``TextPipeline`` holds an EncoderConfig, its tokenizer and its instruction template, but no model: it is what
collators and data loaders need (as Tevatron's collator and sentence-transformers' ``tokenize`` are), light to
pickle into data-loader workers. ``DenseEncoder`` owns one and feeds its batches to the backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.presets import resolve_model_path
from qpr_pyserini.templates import FormattedQuery, InstructionTemplate, resolve_template


@dataclass
class Batch:
    """Token ids, attention mask and (for training) the mask of the query's tokens inside each text."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    span_mask: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        span = None if self.span_mask is None else self.span_mask.to(device)
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), span)


def span_token_mask(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """1 for each token whose characters overlap [start, end); special tokens ((0, 0) offsets) are 0."""
    return [int(e > s and s < end and e > start) for s, e in offsets]


class TextPipeline:
    """Texts -> token batches under an EncoderConfig: prefixes, instruction template, EOS and padding."""

    def __init__(self, config: EncoderConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.template: InstructionTemplate = resolve_template(config.template, config.query_prefix)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if config.append_eos and tokenizer.eos_token_id is None:
            raise InputError(
                f"encoder {config.name or config.model}: field 'append_eos'",
                "append_eos is set but the tokenizer has no EOS token",
            )

    @classmethod
    def load(cls, config: EncoderConfig) -> TextPipeline:
        """The pipeline of ``config`` with its tokenizer (from ``tokenizer`` if set, else from ``model``)."""
        path = resolve_model_path(config.tokenizer or config.model)
        # A GGUF file holds the tokenizer of the model it ships; a saved tokenizer folder is read as it is.
        extra = {"gguf_file": config.gguf_file} if config.gguf_file and not config.tokenizer else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **extra)
        except (OSError, ValueError) as err:
            raise InputError(f"tokenizer {path!r}", f"cannot load it: {str(err).splitlines()[0]}") from err
        return cls(config, tokenizer)

    def format_queries(
        self, queries: Sequence[str], instructions: Sequence[str | None] | None = None, raw: bool = False
    ) -> list[FormattedQuery]:
        """Queries (with their instructions, if any) as encoder inputs with the query's character span
        (``raw``: instructions unstripped, see ``InstructionTemplate.format``)."""
        instructions = instructions if instructions is not None else [None] * len(queries)
        return [self.template.format(q, i, raw) for q, i in zip(queries, instructions, strict=True)]

    def format_passages(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> list[str]:
        """Passages as encoder inputs: the passage prefix, then ``title<separator>text`` (or the text).

        ``passage_format`` "tevatron" forms them as Tevatron's (and the QPR reference's) ``format_passage``:
        ``f"{prefix} {title.strip()} {text.strip()}".strip()``.
        """
        titles = titles if titles is not None else [""] * len(texts)
        sep, prefix = self.config.title_separator, self.config.passage_prefix
        if self.config.passage_format == "tevatron":
            return [
                f"{prefix} {title.strip()} {text.strip()}".strip()
                for title, text in zip(titles, texts, strict=True)
            ]
        return [
            self.config.passage_prefix + (f"{title}{sep}{text}" if title else text)
            for title, text in zip(titles, texts, strict=True)
        ]

    def tokenize(
        self, texts: Sequence[str], max_length: int, spans: Sequence[tuple[int, int]] | None = None
    ) -> Batch:
        """Tokenise, truncate, append EOS (when configured) and pad, with optional query-span masks."""
        return self.pad(*self.token_rows(texts, max_length, spans))

    def token_rows(
        self, texts: Sequence[str], max_length: int, spans: Sequence[tuple[int, int]] | None = None
    ) -> tuple[list[list[int]], list[list[int]] | None]:
        """Unpadded token ids of each text (truncated, EOS appended when configured) and, with ``spans``, the
        mask of the query's tokens in each."""
        eos = self.config.append_eos
        enc = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=max_length - int(eos),
            return_offsets_mapping=spans is not None,
            add_special_tokens=True,
        )
        ids = [list(x) + [self.tokenizer.eos_token_id] * eos for x in enc["input_ids"]]
        span_rows = None
        if spans is not None:
            span_rows = [
                span_token_mask(off, s, e) + [0] * eos
                for off, (s, e) in zip(enc["offset_mapping"], spans, strict=True)
            ]
        return ids, span_rows

    def pad(self, ids: Sequence[list[int]], span_rows: Sequence[list[int]] | None = None) -> Batch:
        """Rows of token ids (and span masks) padded to the longest, on the configured side.

        Padding is done here rather than by ``tokenizer.pad`` because the EOS token is appended after
        truncation and the span masks must be padded exactly like the ids.
        """
        width = max(map(len, ids))
        pad_id = self.tokenizer.pad_token_id

        def padded(row: list[int], value: int) -> list[int]:
            fill = [value] * (width - len(row))
            return fill + row if self.config.padding_side == "left" else row + fill

        input_ids = torch.tensor([padded(r, pad_id) for r in ids])
        attention = torch.tensor([padded([1] * len(r), 0) for r in ids])
        span_mask = None if span_rows is None else torch.tensor([padded(r, 0) for r in span_rows])
        return Batch(input_ids, attention, span_mask)
