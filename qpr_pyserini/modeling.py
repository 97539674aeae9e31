"""Backbone + pooling + normalisation: the one model class that encoding, search and training share."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from .config import EncoderConfig
from .presets import resolve_model_path
from .templates import FormattedQuery, InstructionTemplate, resolve_template

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> cuda when available else cpu; anything else as torch understands it."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return torch.device(device)


@dataclass
class Batch:
    """Token ids, attention mask and (for training) the mask of the query's tokens inside each text."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    span_mask: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        span = None if self.span_mask is None else self.span_mask.to(device)
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), span)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool token states [B, T, d] under a 0/1 token mask [B, T]: first, mean or last selected token.

    Works for left and right padding alike, and for span masks (the query's tokens inside a longer text).
    """
    mask = mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    if pooling == "cls":
        index = torch.where(mask.bool(), positions, mask.shape[1]).min(1).values
    elif pooling == "last":
        index = torch.where(mask.bool(), positions, -1).max(1).values
    else:
        raise ValueError(f"unknown pooling {pooling!r}")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def span_token_mask(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """1 for each token whose characters overlap [start, end); special tokens ((0, 0) offsets) are 0."""
    return [int(e > s and s < end and e > start) for s, e in offsets]


class DenseEncoder(torch.nn.Module):
    """A Hugging Face backbone with the pooling, normalisation and text formatting of an EncoderConfig."""

    def __init__(self, config: EncoderConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.template: InstructionTemplate = resolve_template(config.template, config.query_prefix)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if config.append_eos and tokenizer.eos_token_id is None:
            raise ValueError(f"{config.model}: append_eos is set but the tokenizer has no EOS token")

    # ----- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, config: EncoderConfig, device: str | None = "cpu") -> DenseEncoder:
        """Load backbone and tokenizer (and a LoRA adapter) from local folders, packages or the hub."""
        model_path = resolve_model_path(config.model)
        if _looks_local(model_path) and not Path(model_path).exists():
            raise ValueError(
                f"model folder {model_path!r} does not exist (encoder {config.name or config.model})"
            )
        extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
        tokenizer_path = resolve_model_path(config.tokenizer) if config.tokenizer else model_path
        hf_logging.disable_progress_bar()  # transformers' per-load "Loading weights" bar is noise in our CLIs
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, **extra)
            backbone = AutoModel.from_pretrained(model_path, dtype=TORCH_DTYPES[config.dtype], **extra)
        except OSError as err:
            raise ValueError(
                f"cannot load model {config.model!r} ({model_path}): {str(err).splitlines()[0]}"
            ) from err
        if config.lora:
            backbone = _apply_lora(backbone, resolve_model_path(config.lora), config.merge_lora)
        encoder = cls(config, backbone, tokenizer)
        return encoder.to(resolve_device(device)).eval()

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    @property
    def dimension(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def is_causal(self) -> bool:
        """Decoder-only backbones attend left to right: a token never sees what follows it."""
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        )

        cfg = self.backbone.config
        if getattr(cfg, "is_decoder", False):
            return True
        # BERT-family models also have causal-LM heads; only models without a masked-LM form are decoders.
        kind = cfg.model_type
        return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES

    # ----- text formatting -----------------------------------------------------------------------------
    def format_queries(
        self, queries: Sequence[str], instructions: Sequence[str | None] | None = None
    ) -> list[FormattedQuery]:
        instructions = instructions if instructions is not None else [None] * len(queries)
        return [self.template.format(q, i) for q, i in zip(queries, instructions, strict=True)]

    def format_passages(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> list[str]:
        titles = titles if titles is not None else [""] * len(texts)
        sep = self.config.title_separator
        return [
            self.config.passage_prefix + (f"{title}{sep}{text}" if title else text)
            for title, text in zip(titles, texts, strict=True)
        ]

    # ----- tokenisation and forward --------------------------------------------------------------------
    def tokenize(
        self, texts: Sequence[str], max_length: int, spans: Sequence[tuple[int, int]] | None = None
    ) -> Batch:
        """Tokenise, truncate, append EOS (when configured) and pad, with optional query-span masks.

        Padding is done here rather than by ``tokenizer.pad`` because the EOS token must be appended after
        truncation and the span masks must be padded exactly like the ids.
        """
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
        width = max(map(len, ids))
        pad_id = self.tokenizer.pad_token_id

        def padded(row: list[int], value: int) -> list[int]:
            fill = [value] * (width - len(row))
            return fill + row if self.config.padding_side == "left" else row + fill

        input_ids = torch.tensor([padded(r, pad_id) for r in ids])
        attention = torch.tensor([padded([1] * len(r), 0) for r in ids])
        span_mask = None if span_rows is None else torch.tensor([padded(r, 0) for r in span_rows])
        return Batch(input_ids, attention, span_mask)

    def hidden_states(self, batch: Batch) -> torch.Tensor:
        out = self.backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        return out.last_hidden_state

    def finish(self, pooled: torch.Tensor) -> torch.Tensor:
        pooled = pooled.float()
        return F.normalize(pooled, dim=-1) if self.config.normalize else pooled

    def forward(self, batch: Batch) -> torch.Tensor:
        """Pooled (and normalised) embeddings [B, d] in float32."""
        return self.finish(pool(self.hidden_states(batch), batch.attention_mask, self.config.pooling))

    # ----- inference helpers ---------------------------------------------------------------------------
    @torch.inference_mode()
    def embed(
        self, texts: Sequence[str], max_length: int, batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Embed texts in batches -> float32 array [n, d] (in the order given).

        Texts are batched longest first so that each batch pads to similar lengths (far less wasted compute on
        corpora of mixed lengths); results equal unsorted batching up to float rounding.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            batch = self.tokenize([texts[i] for i in rows], max_length).to(self.device)
            out[rows] = self(batch).cpu().numpy()
        return out

    def embed_queries(
        self,
        queries: Sequence[str],
        instructions: Sequence[str | None] | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> np.ndarray:
        texts = [f.text for f in self.format_queries(queries, instructions)]
        return self.embed(texts, max_length or self.config.query_max_length, batch_size)

    def embed_passages(
        self,
        texts: Sequence[str],
        titles: Sequence[str] | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> np.ndarray:
        return self.embed(
            self.format_passages(texts, titles), max_length or self.config.passage_max_length, batch_size
        )


def _looks_local(path: str) -> bool:
    """Paths (absolute, ./relative, ~) are local; "org/name" with no such folder is taken as a hub id."""
    return path.startswith(("/", ".", "~")) or Path(path).exists()


def _apply_lora(backbone: PreTrainedModel, adapter: str, merge: bool) -> PreTrainedModel:
    from peft import PeftModel

    if _looks_local(adapter) and not Path(adapter).exists():
        raise ValueError(f"LoRA adapter folder {adapter!r} does not exist")
    model = PeftModel.from_pretrained(backbone, adapter)
    return model.merge_and_unload() if merge else model
