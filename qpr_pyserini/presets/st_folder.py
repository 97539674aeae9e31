"""Read a sentence-transformers model folder into an EncoderConfig, through its ``modules.json``.

Supported: a Transformer module, then an optional Pooling module (cls, mean or lasttoken; both the current
``{"pooling_mode": "mean"}`` and the legacy ``pooling_mode_*_tokens`` keys) and an optional Normalize module.
The folder's prompts (``config_sentence_transformers.json``) become the query and passage prefixes: the
"query" prompt for queries, the first of "document", "passage", "corpus" for passages, else the
``default_prompt_name``'s prompt (what ``encode`` applies without a prompt name); the maximum length is
``max_seq_length`` of ``sentence_bert_config.json`` (older versions) or the tokenizer's ``model_max_length``.
Anything else (Dense layers, max pooling, prompts excluded from pooling) is refused rather than misread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import EncoderConfig
from ..io.errors import InputError

MODULES_FILE = "modules.json"
# sentence-transformers pooling modes -> ours (the rest have no equivalent here)
POOLING_MODES = {"cls": "cls", "mean": "mean", "lasttoken": "last"}
# the legacy boolean keys of a Pooling config, in sentence-transformers' order
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
QUERY_PROMPTS = ("query",)
PASSAGE_PROMPTS = ("document", "passage", "corpus")  # encode_document's order
HF_UNSET_LENGTH = 10**6  # transformers writes ~1e30 as model_max_length when a tokenizer sets none


def is_st_folder(path: Path) -> bool:
    return (path / MODULES_FILE).is_file()


def read_st_folder(path: Path) -> EncoderConfig:
    """The EncoderConfig that reproduces ``SentenceTransformer(path).encode_query/encode_document``."""
    modules = _read_json(path / MODULES_FILE)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise InputError(str(path / MODULES_FILE), "expected a list of modules, each with a 'type'")
    kinds = [str(m["type"]).rsplit(".", 1)[-1] for m in sorted(modules, key=lambda m: m.get("idx", 0))]
    if kinds[:1] != ["Transformer"] or not set(kinds[1:]) <= {"Pooling", "Normalize"}:
        raise InputError(
            str(path / MODULES_FILE),
            f"modules {kinds} are not supported: only Transformer, then Pooling and/or Normalize",
        )
    prompts, default_prompt = _prompts(path)
    settings: dict[str, Any] = {
        "model": str(path.resolve()),
        "name": path.name,
        "pooling": "cls",  # a Transformer module alone yields its first token
        "normalize": "Normalize" in kinds,
        "query_prefix": next((prompts[n] for n in QUERY_PROMPTS if n in prompts), default_prompt),
        "passage_prefix": next((prompts[n] for n in PASSAGE_PROMPTS if n in prompts), default_prompt),
    }
    for module in modules:
        if str(module["type"]).endswith(".Pooling"):
            pooling_file = path / module.get("path", "") / "config.json"
            settings["pooling"] = _pooling(pooling_file, _read_json(pooling_file), bool(prompts))
    length = _max_length(path)
    if length is not None:
        settings["query_max_length"] = settings["passage_max_length"] = length
    return EncoderConfig.from_dict(settings, str(path))


def _pooling(source: Path, config: dict[str, Any], has_prompts: bool) -> str:
    mode = config.get("pooling_mode")
    if mode is None:
        active = [name for key, name in LEGACY_POOLING_KEYS.items() if config.get(key)]
        mode = active or ["mean"]  # sentence-transformers' default when no legacy key is set
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if not isinstance(mode, str) or mode not in POOLING_MODES:
        raise InputError(
            str(source), f"pooling {mode!r} is not supported: use one of {sorted(POOLING_MODES)}"
        )
    if config.get("include_prompt") is False and has_prompts:
        raise InputError(
            str(source), "pooling that leaves the prompt out (include_prompt: false) is not supported"
        )
    return POOLING_MODES[mode]


def _prompts(path: Path) -> tuple[dict[str, Any], str]:
    """The folder's non-empty prompts by name, and the default prompt ('' when none is named).

    An empty prompt is sentence-transformers' placeholder for "no prompt" (it saves "query" and "document"
    as "" when a model has none), so it does not hide a "passage" prompt or the default one.
    """
    file = path / "config_sentence_transformers.json"
    config = _read_json(file) if file.is_file() else {}
    prompts = config.get("prompts") or {}
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise InputError(str(file), f"default_prompt_name {default!r} names no prompt")
    named = {name: prompt for name, prompt in prompts.items() if prompt != ""}
    return named, prompts[default] if default is not None else ""


def _max_length(path: Path) -> int | None:
    sbert = path / "sentence_bert_config.json"
    config = _read_json(sbert) if sbert.is_file() else {}
    if config.get("do_lower_case"):
        raise InputError(str(sbert), "do_lower_case is not supported (lower-case the texts yourself)")
    if config.get("max_seq_length"):
        return int(config["max_seq_length"])
    tokenizer = path / "tokenizer_config.json"
    length = _read_json(tokenizer).get("model_max_length") if tokenizer.is_file() else None
    return int(length) if isinstance(length, int | float) and length < HF_UNSET_LENGTH else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(str(path), f"not valid JSON ({err.msg})", err.lineno) from err
