"""Training arguments (Tevatron v2 layout): model, data, regularizer and Trainer arguments as dataclasses.

Every field is a command-line option (``--name value``) and a key of the optional JSON/YAML config file that
``python -m qpr_pyserini.train CONFIG [--name value ...]`` (or ``--config NAME|FILE``) reads first; options
given on the command line override it. ``--config qpr-reference`` is the QPR reference's whole run, shipped
in ``qpr_pyserini/train/configs/``; ``--print-config`` prints the resolved settings as JSON.

``--qpr-preset reference`` sets every option of the QPR reference (the authors' configuration, see
docs/method.md) that is not given explicitly: see ``REFERENCE_PRESET``. Regularizer options left unset take
the defaults of the backbone (``BACKBONE_DEFAULTS``), resolved once the encoder is loaded.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import HfArgumentParser

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError, check_finite, check_positive
from qpr_pyserini.presets import resolve_encoder
from qpr_pyserini.train.data import INSTRUCTION_NEGATIVE_ROWS, NEGATIVES_ORDERS, POSITIVE_CHOICES
from qpr_pyserini.train.loss import QPRConfig

MODES = ("full", "query-side")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
COMMAND_LINE = "command line"
CONFIG_FOLDER = "configs"  # package data of qpr_pyserini.train
SCORE_DTYPES = ("float32", "model")
INSTRUCTION_TEXTS = ("stripped", "raw")
QPR_ROWS = ("text", "flag")
# A Hugging Face hub model id ("owner/name"), accepted as --encoder for a plain backbone.
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")

# The QPR reference's objective (deu05232/Inst_IR_QPR, DenseModel_Idea3_reduced_KL and Idea3TrainDataset):
# Promptriever's query text "query:  {q}{?} {i}", raw cosines, the last token of "query:  {q}{?}" as the
# student, the row's own group, cross-entropy to the stopped teacher, weight 1; every instruction negative
# first (group_size - 1 at most), then hard negatives in stored order (drawn with replacement when a row has
# fewer than group_size - 1). The rest of their run (backbone, lengths, precision, the teacher's passage pass,
# rows by flag, raw instructions, positive choice, data order, batch geometry, schedule) is the shipped
# configuration configs/qpr-reference.yaml (--config qpr-reference).
REFERENCE_PRESET: dict[str, dict[str, Any]] = {
    "model": {"template": "promptriever", "query_prefix": "query:  "},
    "data": {"negatives_order": "reference"},
    "qpr": {
        "qpr_weight": 1.0,
        "qpr_temperature": 1.0,
        "qpr_direction": "cross-entropy",
        "qpr_stop_gradient": True,
        "qpr_candidates": "group",
        "qpr_span_pooling": "last",
        "qpr_span_mark": True,
    },
}
QPR_PRESETS = ("reference",)

# Regularizer defaults per backbone (see docs/method.md, "Defaults"): causal decoders take the reference's
# choices; bidirectional encoders keep the settings of the SciFact-stance experiments (the measurements do not
# separate the two there). A temperature of None means the contrastive --temperature.
BACKBONE_DEFAULTS: dict[bool, dict[str, Any]] = {
    True: {"temperature": 1.0, "candidates": "group", "span_pooling": "last", "span_mark": True},
    False: {"temperature": None, "candidates": "batch", "span_pooling": "mean", "span_mark": False},
}
DEFAULT_INSTRUCTION_NEGATIVES = 3


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
    passage_format: str | None = field(
        default=None,
        metadata={
            "help": "Override how passages are formed: joined (prefix + title + separator + text) or "
            "tevatron (f'{prefix} {title.strip()} {text.strip()}'.strip(), the QPR reference's)."
        },
    )
    padding_side: str | None = field(default=None, metadata={"help": "Override the padding side."})
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
        check_finite_fields(self)
        if self.merge_lora and not self.lora:
            raise InputError("--merge-lora", "needs --lora (there is no adapter to merge)")

    def encoder_config(self) -> EncoderConfig:
        """The starting EncoderConfig with the overrides applied; a hub id (``owner/name``) that is not a
        local path is a plain backbone (the overrides say how to pool and format)."""
        spec: str | EncoderConfig = self.encoder
        if _HUB_ID.fullmatch(self.encoder) and not Path(self.encoder).exists():
            spec = EncoderConfig(model=self.encoder, name=self.encoder.rsplit("/", 1)[-1])
        return resolve_encoder(
            spec,
            pooling=self.pooling,
            normalize=self.normalize,
            template=self.template,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            passage_format=self.passage_format,
            padding_side=self.padding_side,
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
    instruction_negatives: int | None = field(
        default=None,
        metadata={
            "help": "At most this many of the negatives are instruction negatives (default 3; "
            "--qpr-preset reference: all, up to group_size - 1)."
        },
    )
    negatives_order: str | None = field(
        default=None,
        metadata={
            "help": "How negatives are picked: random (default), promptriever (the first instruction "
            "negatives in stored order), reference (instruction then hard negatives, all in stored order)."
        },
    )
    positive_choice: str | None = field(
        default=None,
        metadata={
            "help": "Which positive a row gives each epoch: rotate (default: a random start per row, one "
            "further each epoch) or reference (positives[(row + seed + epoch) % n], the QPR reference's)."
        },
    )
    instruction_negatives_rows: str | None = field(
        default=None,
        metadata={
            "help": "Rows whose instruction negatives go first: instruction (default: rows with an "
            "instruction) or all (every row, the QPR reference's)."
        },
    )
    instruction_text: str | None = field(
        default=None,
        metadata={
            "help": "stripped (default) or raw: the instruction as the row gives it, appended after a space "
            "even when blank on a row flagged has_instruction (the QPR reference's)."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})

    def __post_init__(self) -> None:
        check_positive(group_size=self.group_size)
        for option, value, choices in (
            ("--negatives-order", self.negatives_order, NEGATIVES_ORDERS),
            ("--positive-choice", self.positive_choice, POSITIVE_CHOICES),
            ("--instruction-negatives-rows", self.instruction_negatives_rows, INSTRUCTION_NEGATIVE_ROWS),
            ("--instruction-text", self.instruction_text, INSTRUCTION_TEXTS),
        ):
            _check_choice(option, value, choices)

    def sampler_options(self) -> dict[str, Any]:
        """GroupSampler's instruction_negatives, order, positive and instruction_rows, defaults filled in."""
        return {
            "instruction_negatives": (
                DEFAULT_INSTRUCTION_NEGATIVES
                if self.instruction_negatives is None
                else self.instruction_negatives
            ),
            "order": self.negatives_order or "random",
            "positive": self.positive_choice or "rotate",
            "instruction_rows": self.instruction_negatives_rows or "instruction",
        }


@dataclass
class QPRArguments:
    """The query-preserving regularizer (see qpr_pyserini.train.loss.QPRConfig); weight 0 disables it.

    Unset options take the preset's value (``--qpr-preset``), else the backbone's default.
    """

    _argument_group_name = "query-preserving regularizer"

    qpr_preset: str | None = field(
        default=None,
        metadata={
            "help": "'reference': every choice of the QPR reference (query text, loss, negatives) that is "
            "not given explicitly."
        },
    )
    qpr_weight: float | None = field(
        default=None, metadata={"help": "lambda: the weight of the regularizer (default 0: off)."}
    )
    qpr_temperature: float | None = field(
        default=None,
        metadata={
            "help": "Temperature of the two distributions (default: 1, raw cosines, for causal decoders; "
            "--temperature for bidirectional encoders)."
        },
    )
    qpr_direction: str | None = field(
        default=None,
        metadata={"help": "forward (KL, default), reverse, symmetric, or cross-entropy (the reference's)."},
    )
    qpr_stop_gradient: bool | None = field(
        default=None,
        metadata={
            "help": "Compute the teacher (original query and its passages) without gradient (default)."
        },
    )
    qpr_candidates: str | None = field(
        default=None,
        metadata={
            "help": "Candidate passages: 'group' (the row's own; default for causal decoders) or 'batch' "
            "(all, gathered; default for bidirectional encoders)."
        },
    )
    qpr_span_pooling: str | None = field(
        default=None,
        metadata={"help": "Pooling over the query span: last (causal decoders) or mean (bidirectional)."},
    )
    qpr_span_mark: bool | None = field(
        default=None,
        metadata={
            "help": "Count Promptriever's '?' after the query as part of its span (causal decoders: true)."
        },
    )
    qpr_teacher_passages: str | None = field(
        default=None,
        metadata={
            "help": "Passages the teacher scores: shared (default: the student's passage embeddings, "
            "detached; no second pass) or reencode (a second passage pass without gradient, its own "
            "dropout draw: the QPR reference's)."
        },
    )
    qpr_rows: str | None = field(
        default=None,
        metadata={
            "help": "Rows regularised: text (default: a non-blank instruction) or flag (the row's "
            "has_instruction flag, the QPR reference's)."
        },
    )

    def __post_init__(self) -> None:
        check_finite_fields(self)
        _check_choice("--qpr-preset", self.qpr_preset, QPR_PRESETS)
        _check_choice("--qpr-rows", self.qpr_rows, QPR_ROWS)

    def to_config(self, causal: bool = False) -> QPRConfig:
        """The QPRConfig: options given (or set by the preset), else the defaults of the backbone."""
        defaults = BACKBONE_DEFAULTS[causal]

        def pick(name: str, default: Any) -> Any:
            value = getattr(self, f"qpr_{name}")
            return default if value is None else value

        return QPRConfig(
            weight=pick("weight", 0.0),
            temperature=pick("temperature", defaults["temperature"]),
            direction=pick("direction", "forward"),
            stop_gradient=pick("stop_gradient", True),
            candidates=pick("candidates", defaults["candidates"]),
            span_pooling=pick("span_pooling", defaults["span_pooling"]),
            span_mark=pick("span_mark", defaults["span_mark"]),
            teacher_passages=pick("teacher_passages", "shared"),
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
    score_dtype: str = field(
        default="float32",
        metadata={
            "help": "Precision of embeddings and scores in the loss: float32 (default) or model (the "
            "backbone's dtype, e.g. bf16 as the QPR reference)."
        },
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Rows per optimizer step over all processes: sets --gradient-accumulation-steps to "
            "GLOBAL / (per-device batch x WORLD_SIZE)."
        },
    )
    qpr_log_gradients: bool = field(
        default=True,
        metadata={
            "help": "At each logging step, log the gradient norm of each loss term and the regularizer's "
            "share (qpr_grad_share; two extra backward passes on one micro-batch; not under DeepSpeed)."
        },
    )
    qpr_inert_warning_steps: int = field(
        default=5,
        metadata={
            "help": "Warn once when the regularizer stays within 1%% of ln K with under 1%% of the gradient "
            "for this many first logging steps (0: never)."
        },
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator needs all."}
    )

    def __post_init__(self) -> None:
        check_finite_fields(self)
        _check_choice("--score-dtype", self.score_dtype, SCORE_DTYPES)
        if self.global_batch_size is not None:
            self.gradient_accumulation_steps = accumulation_for(
                self.global_batch_size,
                self.per_device_train_batch_size,
                int(os.environ.get("WORLD_SIZE", "1")),
            )
        if self.mode not in MODES:
            raise InputError("--mode", f"must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mode == "query-side" and not self.index:
            raise InputError(
                "--mode", "'query-side' needs --index (the fixed passage index to train against)"
            )
        if not self.temperature > 0:
            raise InputError("--temperature", f"must be > 0, got {self.temperature}")
        if not torch.accelerator.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for
            if self.bf16 or self.fp16:
                self.use_cpu = True  # transformers accepts half-precision autocast on CPU only when told
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                # Multi-process on CPU: accelerate sets up DDP (MULTI_CPU, gloo) only when told to use the
                # CPU; otherwise every rank would train unsynchronised.
                self.use_cpu = True
                self.ddp_backend = self.ddp_backend or "gloo"
        super().__post_init__()


def accumulation_for(global_batch: int, per_device: int, world: int) -> int:
    """Gradient accumulation steps that make ``global_batch`` rows per optimizer step."""
    rows = per_device * world
    if global_batch < 1 or global_batch % rows:
        raise InputError(
            "--global-batch-size",
            f"{global_batch} is not a positive multiple of per-device batch {per_device} x {world} "
            "process(es)",
        )
    return global_batch // rows


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise InputError(option, f"must be one of {', '.join(choices)}, not {value!r}")


def check_finite_fields(arguments: Any) -> None:
    """Every float option of an argument dataclass must be finite (NaN or infinity trains garbage)."""
    check_finite(
        **{f.name: value for f in fields(arguments) if isinstance(value := getattr(arguments, f.name), float)}
    )


ARGUMENT_CLASSES = (ModelArguments, DataArguments, QPRArguments, TrainingArguments)
Arguments = tuple[ModelArguments, DataArguments, QPRArguments, TrainingArguments]


class ArgumentParser(HfArgumentParser):
    """HfArgumentParser over the four argument classes that raises InputError instead of exiting."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ARGUMENT_CLASSES, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(COMMAND_LINE, message)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML mapping of argument names to values."""
    path = Path(path)
    text = path.read_text()
    if path.suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(str(path), f"not valid JSON ({err.msg})", err.lineno) from err
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InputError(str(path), f"not valid YAML ({' '.join(str(err).split())})") from err
    if not isinstance(values, dict):
        raise InputError(str(path), "expected a mapping of argument names to values")
    return values


def shipped_configs() -> list[str]:
    """Names of the run configurations shipped with the package (``--config NAME``)."""
    folder = resources.files(__package__) / CONFIG_FOLDER
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def config_path(spec: str) -> Path:
    """``--config``: a JSON/YAML file, or the name of a shipped configuration."""
    if Path(spec).is_file():
        return Path(spec)
    shipped = resources.files(__package__) / CONFIG_FOLDER / f"{spec}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    raise InputError(
        "--config", f"{spec!r} is neither a file nor a shipped configuration ({shipped_configs()})"
    )


def split_config_options(argv: list[str]) -> tuple[str | None, bool, list[str]]:
    """(``--config`` value or a leading CONFIG file, whether ``--print-config`` was given, the other options)."""
    config, printing, rest = None, False, []
    tokens = iter(argv)
    for token in tokens:
        if token in ("--print-config", "--print_config"):
            printing = True
        elif token == "--config":
            config = next(tokens, None)
            if config is None:
                raise InputError("--config", "needs a name or a file")
        elif token.startswith("--config="):
            config = token.partition("=")[2]
        else:
            rest.append(token)
    if config is None and rest and not rest[0].startswith("-") and rest[0].endswith(CONFIG_SUFFIXES):
        config, rest = rest[0], rest[1:]
    return config, printing, rest


def _given(argv: list[str], name: str) -> bool:
    """Whether option ``name`` (either spelling) is on the command line."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    return any(token.split("=", 1)[0] in spellings for token in argv)


def parse_arguments(argv: list[str], parser: ArgumentParser | None = None) -> Arguments:
    """Parse ``[CONFIG_FILE] [--config NAME|FILE] [--name value ...]``: the file supplies defaults, the
    options override them (``--gradient-accumulation-steps`` given explicitly also overrides the file's
    ``global_batch_size``). A ``--qpr-preset`` then fills the options left unset. ``--print-config`` is
    ignored here (see ``resolved_settings``).
    """
    parser = parser or ArgumentParser()
    config, _, argv = split_config_options(argv)
    if config is not None:
        path = config_path(config)
        values = read_config_file(path)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(str(path), f"unknown argument(s): {', '.join(unknown)}")
        if _given(argv, "gradient_accumulation_steps") and not _given(argv, "global_batch_size"):
            values["global_batch_size"] = None
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    try:
        arguments = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except InputError:
        raise
    except ValueError as err:  # transformers.TrainingArguments checks its own options this way
        raise InputError(COMMAND_LINE, " ".join(str(err).split())) from err
    return apply_qpr_preset(arguments)


def resolved_settings(arguments: Arguments) -> dict[str, Any]:
    """Every setting of a run as JSON-ready values, with the starting encoder's configuration resolved
    (without loading it) and the batch geometry; regularizer options still None take the backbone's
    defaults (docs/method.md)."""
    model_args, data_args, qpr_args, train_args = arguments
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = train_args.per_device_train_batch_size * train_args.gradient_accumulation_steps
    return {
        "encoder": model_args.encoder_config().to_dict(),
        "model": asdict(model_args),
        "data": {**asdict(data_args), "sampler": data_args.sampler_options()},
        "qpr": asdict(qpr_args),
        "training": json.loads(train_args.to_json_string()),
        "batch": {"world_size": world, "rows_per_optimizer_step": per_step * world},
    }


def apply_qpr_preset(arguments: Arguments) -> Arguments:
    """Fill the options that the chosen ``--qpr-preset`` sets and that were not given explicitly."""
    model_args, data_args, qpr_args, _ = arguments
    if qpr_args.qpr_preset != "reference":
        return arguments
    for target, values in zip((model_args, data_args, qpr_args), REFERENCE_PRESET.values(), strict=True):
        for name, value in values.items():
            if getattr(target, name) is None:
                setattr(target, name, value)
    if data_args.instruction_negatives is None:
        data_args.instruction_negatives = data_args.group_size - 1
    return arguments
