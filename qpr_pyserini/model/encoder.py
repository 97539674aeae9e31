"""Backbone + pooling + normalisation: the one model class that encoding, search and training share."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.backends import (
    Runner,
    check_backend,
    export_backbone,
    export_path,
    loaded_weights_key,
    make_runner,
    model_folder_key,
    resolve_backend,
)
from qpr_pyserini.model.text import Batch, TextPipeline
from qpr_pyserini.presets import resolve_model_path
from qpr_pyserini.templates import FormattedQuery, InstructionTemplate

if TYPE_CHECKING:  # transformers' modelling code takes seconds to import: only where a backbone is built
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_FORMS = "auto, cpu, cuda, cuda:N (or another torch device type, such as mps)"
# Models whose position ids start after the padding index (usable positions = max_position_embeddings - pad - 1)
OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "camembert")
# The padded batch an export is traced on (see qpr_pyserini.model.backends.export_backbone)
EXPORT_SAMPLE = ("an example passage to trace the graph with", "short")


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None -> cuda when available else cpu; anything else as torch understands it."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError("--device", f"{device!r} is not a device: use {DEVICE_FORMS}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device", f"{device!r} asked for, but torch sees no CUDA GPU")
    return resolved


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


class DenseEncoder(torch.nn.Module):
    """A Hugging Face backbone with the pooling and normalisation of an EncoderConfig.

    The text side (formatting, tokenisation, query spans) is ``self.text``, a TextPipeline; ``tokenizer``,
    ``template``, ``format_queries``, ``format_passages`` and ``tokenize`` are shortcuts to it.

    ``backbone`` may be deferred: ``None`` with ``load_backbone`` (and the backbone's ``backbone_config``) given,
    for an encoder whose inference runs on an exported backend; the torch backbone is then built on first
    access of ``self.backbone`` (a gradient pass, saving), never for inference.
    """

    def __init__(
        self,
        config: EncoderConfig,
        backbone: PreTrainedModel | None,
        tokenizer: PreTrainedTokenizerBase,
        *,
        load_backbone: Callable[[], PreTrainedModel] | None = None,
        backbone_config: PretrainedConfig | None = None,
    ):
        super().__init__()
        self.config = config
        if backbone is not None:
            self.backbone = backbone
            backbone_config = backbone.config
        elif load_backbone is None or backbone_config is None:
            raise ValueError("a deferred backbone needs load_backbone and backbone_config")
        self._load_backbone = load_backbone if backbone is None else None
        self.backbone_config = backbone_config
        self.text = TextPipeline(config, tokenizer)
        self.backend = "torch"
        self.runner: Runner | None = None  # an exported backbone for inference (see use_backend)
        for field in ("query_max_length", "passage_max_length"):
            self.check_max_length(getattr(config, field), f"encoder {config.name or config.model}: {field}")

    # ----- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, config: EncoderConfig, device: str | None = "cpu", backend: str = "torch") -> DenseEncoder:
        """Load backbone and tokenizer (and a LoRA adapter) from local folders, packages or the hub; run
        inference on ``backend`` (see :meth:`use_backend`)."""
        target = resolve_device(device)
        chosen = resolve_backend(backend, target, config.dtype)
        check_backend(chosen, target, config.dtype)
        model_path = resolve_model_path(config.model)
        if _looks_local(model_path) and not Path(model_path).exists():
            raise InputError(
                model_path, f"model folder does not exist (encoder {config.name or config.model})"
            )
        text = TextPipeline.load(config)
        key = None
        if chosen != "torch" and not config.lora and Path(model_path).is_dir():
            key = model_folder_key(Path(model_path))
        if key is not None and export_path(key).is_file():  # exported before: no torch backbone needed
            encoder = cls(
                config,
                None,
                text.tokenizer,
                load_backbone=partial(_load_backbone, config, model_path),
                backbone_config=_load_backbone_config(config, model_path),
            )
        else:
            encoder = cls(config, _load_backbone(config, model_path), text.tokenizer).to(target).eval()
        return encoder.use_backend(backend, key)

    def use_backend(self, backend: str, key: str | None = None) -> DenseEncoder:
        """Run inference on ``backend`` (see qpr_pyserini.model.backends; ``auto`` resolved here), exporting the
        backbone on first use into the cache under ``key`` (default: its weights as they are in memory), with
        one line on stderr for that one-time cost; returns this encoder. Should the export fail, ``auto``
        falls back to torch (with a warning); a backend named explicitly raises.

        Gradient passes always run the torch backbone.
        """
        chosen = resolve_backend(backend, self.device, self.dtype)
        check_backend(chosen, self.device, self.dtype)
        self.backend = chosen
        if chosen == "torch":
            self.runner = None
            return self
        onnx_file = export_path(key or loaded_weights_key(self.backbone))
        if onnx_file.is_file():
            self.runner = make_runner(chosen, onnx_file, self.backbone_config)
            return self
        name = self.config.name or self.config.model
        started = time.perf_counter()
        print(
            f"exporting {name} for {chosen} (once; cached in {onnx_file.parent}) ...",
            end="",
            file=sys.stderr,
            flush=True,
        )
        try:
            export_backbone(self.backbone, self.tokenize(EXPORT_SAMPLE, max_length=16), onnx_file, name)
            self.runner = make_runner(chosen, onnx_file, self.backbone_config)
        except InputError as err:
            print(" failed", file=sys.stderr)
            if backend != "auto":
                raise
            log.warning("%s; --backend auto runs torch instead", err)
            return self.use_backend("torch")
        print(f" done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return self

    def reconfigured(self, config: EncoderConfig) -> DenseEncoder:
        """A copy under ``config`` that shares this encoder's backbone (deferred or not), backend and runner."""
        if self._load_backbone is not None:
            copy = DenseEncoder(
                config,
                None,
                self.tokenizer,
                load_backbone=self._load_backbone,
                backbone_config=self.backbone_config,
            )
        else:
            copy = DenseEncoder(config, self.backbone, self.tokenizer)
        copy.backend, copy.runner = self.backend, self.runner  # the runner is the same backbone, exported
        return copy.train(self.training)

    def __getattr__(self, name: str) -> object:
        # A deferred backbone is built on first access (see the class docstring).
        if name == "backbone" and self.__dict__.get("_load_backbone") is not None:
            backbone = self.__dict__.pop("_load_backbone")()
            self._load_backbone = None
            self.backbone = backbone.train(self.training)
            return self.backbone
        return super().__getattr__(name)

    # ----- the text side (shortcuts to self.text) ------------------------------------------------------
    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.text.tokenizer

    @property
    def template(self) -> InstructionTemplate:
        return self.text.template

    def format_queries(
        self, queries: Sequence[str], instructions: Sequence[str | None] | None = None
    ) -> list[FormattedQuery]:
        return self.text.format_queries(queries, instructions)

    def format_passages(self, texts: Sequence[str], titles: Sequence[str] | None = None) -> list[str]:
        return self.text.format_passages(texts, titles)

    def tokenize(
        self, texts: Sequence[str], max_length: int, spans: Sequence[tuple[int, int]] | None = None
    ) -> Batch:
        return self.text.tokenize(texts, max_length, spans)

    @property
    def device(self) -> torch.device:
        if self._load_backbone is not None:  # deferred: exported backends run on the CPU
            return torch.device("cpu")
        return next(self.backbone.parameters()).device

    @property
    def dtype(self) -> str:
        """The backbone weights' dtype, by its EncoderConfig name (float32, bfloat16, float16)."""
        if self._load_backbone is not None:
            return self.config.dtype
        return str(next(self.backbone.parameters()).dtype).removeprefix("torch.")

    @property
    def dimension(self) -> int:
        return int(self.backbone_config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        """The longest input (in tokens) the backbone's position embeddings allow; None when unlimited."""
        cfg = self.backbone_config
        limit = getattr(cfg, "max_position_embeddings", None)
        if not isinstance(limit, int):
            return None
        if cfg.model_type in OFFSET_POSITION_MODELS:
            limit -= (cfg.pad_token_id or 0) + 1
        return limit

    def check_max_length(self, max_length: int, where: str = "max length") -> None:
        """Refuse a maximum length the model cannot take (an InputError naming its limit)."""
        limit = self.max_positions
        if limit is not None and max_length > limit:
            raise InputError(
                where,
                f"{max_length} tokens is above the position limit of {self.config.name or self.config.model} "
                f"({limit} tokens); use at most {limit}",
            )

    @property
    def is_causal(self) -> bool:
        """Decoder-only backbones attend left to right: a token never sees what follows it."""
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
            MODEL_FOR_MASKED_LM_MAPPING_NAMES,
        )

        cfg = self.backbone_config
        if getattr(cfg, "is_decoder", False):
            return True
        # BERT-family models also have causal-LM heads; only models without a masked-LM form are decoders.
        kind = cfg.model_type
        return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES

    # ----- forward -------------------------------------------------------------------------------------
    def hidden_states(self, batch: Batch) -> torch.Tensor:
        if self.runner is not None and not torch.is_grad_enabled():
            return self.runner(batch)
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

        All texts are tokenised at once, then batched by token count, longest first, so that each batch pads to
        similar lengths (far less wasted compute on corpora of mixed lengths); results equal unsorted batching
        up to float rounding.
        """
        self.check_max_length(max_length)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids, _ = self.text.token_rows(texts, max_length)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            batch = self.text.pad([ids[i] for i in rows]).to(self.device)
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


def _load_backbone(config: EncoderConfig, model_path: str) -> PreTrainedModel:
    """The torch backbone of ``config`` from ``model_path`` (with its LoRA adapter, if any), in eval mode."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # transformers' per-load "Loading weights" bar is noise in our CLIs
    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    try:
        with _no_gguf_bar() if config.gguf_file else nullcontext():
            backbone = AutoModel.from_pretrained(model_path, dtype=TORCH_DTYPES[config.dtype], **extra)
    except (OSError, ValueError) as err:
        raise InputError(
            f"model {config.model!r}", f"cannot load it ({model_path}): {str(err).splitlines()[0]}"
        ) from err
    if config.lora:
        backbone = _apply_lora(backbone, resolve_model_path(config.lora), config.merge_lora)
    return backbone.eval()


@contextmanager
def _no_gguf_bar() -> Iterator[None]:
    """Silence the "Converting and de-quantizing GGUF tensors" bar of transformers' GGUF loader, which
    disable_progress_bar does not reach (it calls tqdm itself), for one load."""
    from transformers import modeling_gguf_pytorch_utils as gguf

    bar = gguf.tqdm
    gguf.tqdm = partial(bar, disable=True)
    try:
        yield
    finally:
        gguf.tqdm = bar


def _load_backbone_config(config: EncoderConfig, model_path: str) -> PretrainedConfig:
    """The backbone's configuration alone (no weights, no modelling code imported)."""
    from transformers import AutoConfig

    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    try:
        return AutoConfig.from_pretrained(model_path, **extra)
    except (OSError, ValueError) as err:
        raise InputError(
            f"model {config.model!r}", f"cannot load it ({model_path}): {str(err).splitlines()[0]}"
        ) from err


def _looks_local(path: str) -> bool:
    """Paths (absolute, ./relative, ~) are local; "org/name" with no such folder is taken as a hub id."""
    return path.startswith(("/", ".", "~")) or Path(path).exists()


def _apply_lora(backbone: PreTrainedModel, adapter: str, merge: bool) -> PreTrainedModel:
    from peft import PeftModel

    if _looks_local(adapter) and not Path(adapter).exists():
        raise InputError(adapter, "LoRA adapter folder does not exist")
    with peft_quietly():
        model = PeftModel.from_pretrained(backbone, adapter)
    return model.merge_and_unload() if merge else model


@contextmanager
def peft_quietly() -> Iterator[None]:
    """Wrapping a model with peft: its read of transformers' deprecated ``is_gradient_checkpointing`` warns
    (FutureWarning) on every run, which is not the user's to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield
