"""Training arguments (Tevatron v2 layout): model, data, regularizer and Trainer arguments as dataclasses.

Every field is a command-line option (``--name value``) and a key of the optional JSON/YAML config file that
``python -m qpr_pyserini.train CONFIG [--name value ...]`` reads first; options given after it override it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import HfArgumentParser

from ..config import EncoderConfig
from ..presets import resolve_encoder
from .loss import QPRConfig

MODES = ("full", "query-side")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass
class ModelArguments:
    """Which encoder to start from, the overrides applied to it, and LoRA."""

    _argument_group_name = "model: the starting encoder and LoRA"

    encoder: str = field(
        default="minilm",
        metadata={
            "help": "Starting encoder: a preset name, a qpr_encoder.json file or folder, a model folder."
        },
    )
    pooling: str | None = field(default=None, metadata={"help": "Override pooling: cls, mean or last."})
    normalize: bool | None = field(default=None, metadata={"help": "Override L2 normalisation (true/false)."})
    template: str | None = field(
        default=None, metadata={"help": "Override the instruction template (a name or a format string)."}
    )
    query_prefix: str | None = field(default=None, metadata={"help": "Override the query prefix."})
    passage_prefix: str | None = field(default=None, metadata={"help": "Override the passage prefix."})
    query_max_length: int | None = field(default=None, metadata={"help": "Override the query max length."})
    passage_max_length: int | None = field(
        default=None, metadata={"help": "Override the passage max length."}
    )
    append_eos: bool | None = field(default=None, metadata={"help": "Override appending EOS (true/false)."})
    dtype: str | None = field(
        default=None, metadata={"help": "Weights dtype to load: float32, bfloat16 or float16."}
    )
    lora: bool = field(default=False, metadata={"help": "Train a LoRA adapter instead of the full backbone."})
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.1
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Module names to adapt. Default: q/k/v/o/gate/up/down_proj for decoders, "
            "query/key/value/dense for BERT-style encoders."
        },
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "Also save the adapter merged into the backbone, under OUTPUT_DIR/merged."},
    )

    def __post_init__(self) -> None:
        if self.merge_lora and not self.lora:
            raise ValueError("--merge_lora needs --lora (there is no adapter to merge)")

    def encoder_config(self) -> EncoderConfig:
        """The starting EncoderConfig with the overrides applied."""
        return resolve_encoder(
            self.encoder,
            pooling=self.pooling,
            normalize=self.normalize,
            template=self.template,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            query_max_length=self.query_max_length,
            passage_max_length=self.passage_max_length,
            append_eos=self.append_eos,
            dtype=self.dtype,
        )


@dataclass
class DataArguments:
    """Training rows and how they are grouped."""

    _argument_group_name = "data"

    train_data: str = field(
        metadata={"help": "Training data: Tevatron / Promptriever JSONL, a save_to_disk folder or a hub id."}
    )
    train_split: str = "train"
    group_size: int = field(
        default=16, metadata={"help": "Passages per query: 1 positive + group_size-1 negatives."}
    )
    instruction_negatives: int = field(
        default=3, metadata={"help": "At most this many of the negatives are instruction negatives."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size must be at least 1, got {self.group_size}")


@dataclass
class QPRArguments:
    """The query-preserving regularizer (see qpr_pyserini.train.loss.QPRConfig); weight 0 disables it."""

    _argument_group_name = "query-preserving regularizer"

    qpr_weight: float = field(default=0.0, metadata={"help": "lambda: the weight of the KL term (0: off)."})
    qpr_temperature: float | None = field(
        default=None, metadata={"help": "Temperature of the two distributions (default: --temperature)."}
    )
    qpr_direction: str = field(
        default="forward", metadata={"help": "KL direction: forward, reverse, symmetric."}
    )
    qpr_stop_gradient: bool = field(
        default=True, metadata={"help": "Detach the original query's distribution."}
    )
    qpr_candidates: str = field(
        default="batch",
        metadata={"help": "Candidate passages: 'batch' (all, gathered) or 'group' (own group)."},
    )
    qpr_span_pooling: str = field(
        default="mean", metadata={"help": "Pooling over the query span: mean or last."}
    )

    def to_config(self) -> QPRConfig:
        return QPRConfig(
            weight=self.qpr_weight,
            temperature=self.qpr_temperature,
            direction=self.qpr_direction,
            stop_gradient=self.qpr_stop_gradient,
            candidates=self.qpr_candidates,
            span_pooling=self.qpr_span_pooling,
        )


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    """Hugging Face TrainingArguments plus the contrastive temperature and the training mode."""

    _argument_group_name = "training (Hugging Face TrainingArguments plus the contrastive settings)"

    temperature: float = field(default=0.01, metadata={"help": "InfoNCE temperature (Promptriever: 0.01)."})
    mode: str = field(
        default="full",
        metadata={
            "help": "'full': encode passages with the trained encoder; 'query-side': score against the fixed "
            "vectors of --index, so the trained model searches that index unchanged."
        },
    )
    index: str | None = field(
        default=None, metadata={"help": "Index folder (required for --mode query-side)."}
    )
    allow_vacuous: bool = field(
        default=False,
        metadata={
            "help": "Allow QPR with a causal backbone and a query-first template (a no-op regularizer)."
        },
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator needs all."}
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "query-side" and not self.index:
            raise ValueError("mode 'query-side' needs --index (the fixed passage index to train against)")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not torch.accelerator.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                # Multi-process on CPU: accelerate sets up DDP (MULTI_CPU, gloo) only when told to use the
                # CPU; otherwise every rank would train unsynchronised.
                self.use_cpu = True
                self.ddp_backend = self.ddp_backend or "gloo"
        super().__post_init__()


ARGUMENT_CLASSES = (ModelArguments, DataArguments, QPRArguments, TrainingArguments)
Arguments = tuple[ModelArguments, DataArguments, QPRArguments, TrainingArguments]


class ArgumentParser(HfArgumentParser):
    """HfArgumentParser over the four argument classes that raises ValueError instead of exiting."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ARGUMENT_CLASSES, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML mapping of argument names to values."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values")
    return values


def parse_arguments(argv: list[str], parser: ArgumentParser | None = None) -> Arguments:
    """Parse ``[CONFIG_FILE] [--name value ...]``: the file supplies defaults, the options override them."""
    parser = parser or ArgumentParser()
    if argv and not argv[0].startswith("-") and argv[0].endswith(CONFIG_SUFFIXES):
        values = read_config_file(argv[0])
        argv = argv[1:]
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown argument(s) in the config file: {', '.join(unknown)}")
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    return parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
