"""sentence-transformers model folders: read one into an EncoderConfig, or write one for an encoder.

Reading goes through ``modules.json``. Supported: a Transformer module, then an optional Pooling module
(cls, mean or lasttoken; both the current ``{"pooling_mode": "mean"}`` and the legacy
``pooling_mode_*_tokens`` keys) and an optional Normalize module. The folder's prompts
(``config_sentence_transformers.json``) become the query and passage prefixes: the "query" prompt for
queries, the first of "document", "passage", "corpus" for passages, else the ``default_prompt_name``'s
prompt (what ``encode`` applies without a prompt name); the maximum length is ``max_seq_length`` of
``sentence_bert_config.json`` (older versions) or the tokenizer's ``model_max_length``; the Transformer's
``tokenizer_args`` may append the EOS token (``append_eos``) and set the padding side. Anything else (Dense
layers, max pooling, prompts excluded from pooling) is refused rather than misread.

Writing (:func:`write_st_files`; ``qpr_pyserini.model.folders`` saves a whole model folder with it) is the inverse, in the legacy
file layout that sentence-transformers 3.x to 6.x load:
``SentenceTransformer(folder).encode(texts, prompt_name="query" | "document")`` then gives our query
(without instruction) and passage vectors. What a folder cannot express is returned and logged as a warning;
docs/model-folders.md lists it per template.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from qpr_pyserini.config import CONFIG_FILE, EncoderConfig
from qpr_pyserini.io._read import read_json_file
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.templates import resolve_template

log = logging.getLogger(__name__)

MODULES_FILE = "modules.json"
SBERT_CONFIG = "sentence_bert_config.json"
ST_CONFIG = "config_sentence_transformers.json"
# the module types as sentence-transformers 3.x-5.x name them (6.x still loads these names)
ST_MODULE_TYPES = {
    "Transformer": "sentence_transformers.models.Transformer",
    "Pooling": "sentence_transformers.models.Pooling",
    "Normalize": "sentence_transformers.models.Normalize",
}
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
# Tokenizer arguments that make a tokenizer append its EOS token, in the order tried: Llama-style tokenizers
# keep their BOS token, tokenizers whose BOS comes from the saved post-processor must be told to keep it.
EOS_TOKENIZER_ARGS = ({"add_eos_token": True}, {"add_eos_token": True, "add_bos_token": True})
TOKENIZER_ARGS = {"add_eos_token", "add_bos_token", "padding_side"}  # those the reader understands
EOS_PROBE = "a probe text, long enough to be truncated by the check"


def is_st_folder(path: Path) -> bool:
    return (path / MODULES_FILE).is_file()


def read_st_folder(path: Path) -> EncoderConfig:
    """The EncoderConfig that reproduces ``SentenceTransformer(path).encode_query/encode_document``."""
    modules = read_json_file(path / MODULES_FILE)
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
            settings["pooling"] = _pooling(pooling_file, read_json_file(pooling_file), bool(prompts))
    length = _max_length(path)
    if length is not None:
        settings["query_max_length"] = settings["passage_max_length"] = length
    settings.update(_tokenizer_settings(path))
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
    file = path / ST_CONFIG
    config = read_json_file(file) if file.is_file() else {}
    prompts = config.get("prompts") or {}
    default = config.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise InputError(str(file), f"default_prompt_name {default!r} names no prompt")
    named = {name: prompt for name, prompt in prompts.items() if prompt != ""}
    return named, prompts[default] if default is not None else ""


def _tokenizer_settings(path: Path) -> dict[str, Any]:
    """``append_eos`` and ``padding_side`` from the Transformer's ``tokenizer_args`` (as written here)."""
    sbert = path / SBERT_CONFIG
    args = (read_json_file(sbert) if sbert.is_file() else {}).get("tokenizer_args") or {}
    unknown = sorted(set(args) - TOKENIZER_ARGS)
    if unknown:
        raise InputError(
            str(sbert), f"tokenizer_args {unknown} are not supported (only {sorted(TOKENIZER_ARGS)})"
        )
    settings: dict[str, Any] = {}
    if "padding_side" in args:
        settings["padding_side"] = args["padding_side"]
    eos_args = {key: args[key] for key in ("add_eos_token", "add_bos_token") if key in args}
    if eos_args:
        if not (eos_args.get("add_eos_token") and _appends_eos(path, eos_args)):
            raise InputError(
                str(sbert), f"tokenizer_args {eos_args} do more than append the EOS token: not supported"
            )
        settings["append_eos"] = True
    return settings


def _max_length(path: Path) -> int | None:
    sbert = path / SBERT_CONFIG
    config = read_json_file(sbert) if sbert.is_file() else {}
    if config.get("do_lower_case"):
        raise InputError(str(sbert), "do_lower_case is not supported (lower-case the texts yourself)")
    if config.get("max_seq_length"):
        return int(config["max_seq_length"])
    tokenizer = path / "tokenizer_config.json"
    length = read_json_file(tokenizer).get("model_max_length") if tokenizer.is_file() else None
    return int(length) if isinstance(length, int | float) and length < HF_UNSET_LENGTH else None


def _appends_eos(folder: Path, args: dict[str, Any]) -> bool:
    """True when the folder's tokenizer loaded with ``args`` gives its plain ids then EOS (as ``append_eos``).

    Checked on a whole text and on a truncated one: a tokenizer that adds EOS itself keeps room for it when
    truncating to N tokens, as our pipeline truncates to N - 1 tokens and then appends it.
    """
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(folder)
    extended = AutoTokenizer.from_pretrained(folder, **args)
    eos = plain.eos_token_id
    if eos is None:
        return False
    whole = extended(EOS_PROBE)["input_ids"] == plain(EOS_PROBE)["input_ids"] + [eos]
    cut = extended(EOS_PROBE, truncation=True, max_length=6)["input_ids"] == plain(
        EOS_PROBE, truncation=True, max_length=5
    )["input_ids"] + [eos]
    return whole and cut


# ----- writing -------------------------------------------------------------------------------------------
def write_st_files(config: EncoderConfig, folder: str | Path, dimension: int) -> list[str]:
    """Write sentence-transformers' module files for ``config`` next to the model and tokenizer in ``folder``.

    Transformer (``max_seq_length``: the passage length; ``tokenizer_args``: padding side, and the EOS token
    when ``append_eos``), Pooling, Normalize when ``normalize``, and the prompts "query" (the query prefix)
    and "document" (the passage prefix). Returns what the folder cannot express (see :func:`st_caveats`),
    logged as a warning, plus the EOS token when the tokenizer cannot be told to append it.
    """
    folder = Path(folder)
    caveats = st_caveats(config)
    tokenizer_args: dict[str, Any] = {"padding_side": config.padding_side}
    if config.append_eos:
        eos_args = next((args for args in EOS_TOKENIZER_ARGS if _appends_eos(folder, args)), None)
        if eos_args is None:
            caveats.append(
                "the tokenizer cannot be told to append its EOS token (add_eos_token): sentence-transformers "
                "pools the last text token instead of EOS, so every vector differs"
            )
        else:
            tokenizer_args.update(eos_args)
    kinds = ["Transformer", "Pooling"] + ["Normalize"] * config.normalize
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    modules = [
        {"idx": n, "name": str(n), "path": paths[kind], "type": ST_MODULE_TYPES[kind]}
        for n, kind in enumerate(kinds)
    ]
    _write_json(folder / MODULES_FILE, modules)
    _write_json(
        folder / SBERT_CONFIG,
        {
            "max_seq_length": config.passage_max_length,
            "do_lower_case": False,
            "tokenizer_args": tokenizer_args,
        },
    )
    mode = next(st for st, ours in POOLING_MODES.items() if ours == config.pooling)
    pooling = {key: name == mode for key, name in LEGACY_POOLING_KEYS.items()}
    (folder / paths["Pooling"]).mkdir(exist_ok=True)
    _write_json(
        folder / paths["Pooling"] / "config.json",
        {"word_embedding_dimension": dimension, **pooling, "include_prompt": True},
    )
    if config.normalize:
        (folder / paths["Normalize"]).mkdir(exist_ok=True)
    _write_json(
        folder / ST_CONFIG,
        {
            "model_type": "SentenceTransformer",
            "prompts": {"query": config.query_prefix, "document": config.passage_prefix},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine" if config.normalize else "dot",
        },
    )
    if caveats:
        log.warning(
            "SentenceTransformer(%s) differs from our encoder class (which reads its %s): %s",
            folder,
            CONFIG_FILE,
            "; ".join(caveats),
        )
    return caveats


def st_caveats(config: EncoderConfig) -> list[str]:
    """What ``SentenceTransformer(folder).encode(..., prompt_name="query" | "document")`` cannot reproduce of
    ``config``, beyond instructions (see :func:`st_query_prompt`); empty when it gives our vectors."""
    caveats = []
    if resolve_template(config.template, config.query_prefix).mark_follows_query:
        caveats.append(
            f"template {config.template!r} ends a query that lacks end punctuation with '?', which a prompt "
            "cannot add: end such queries with '?' yourself"
        )
    if config.query_max_length != config.passage_max_length:
        caveats.append(
            f"one maximum length ({config.passage_max_length} tokens, the passages') for both sides: "
            f"queries of more than {min(config.query_max_length, config.passage_max_length)} tokens are "
            f"cut elsewhere than our {config.query_max_length}"
        )
    if config.passage_encoder is not None:
        name = config.passage_encoder.get("name") or config.passage_encoder.get("model")
        caveats.append(
            f"trained query-side against passages of the encoder {name!r}: encode passages with that "
            "encoder, not with prompt_name='document' here"
        )
    return caveats


def st_query_prompt(config: EncoderConfig, instruction: str) -> str:
    """The sentence-transformers prompt that formats queries with a fixed ``instruction`` as ``config`` does.

    ``SentenceTransformer(folder).encode(queries, prompt=st_query_prompt(config, instruction))`` gives our
    vectors of ``queries`` with that instruction. A prompt is a prefix, so only templates that end with
    ``{query}`` (instruction-first, instructir) can be expressed; the others raise an InputError.
    """
    template = resolve_template(config.template, config.query_prefix)
    if not template.pattern.endswith("{query}") or "{?}" in template.pattern:
        raise InputError(
            f"template {config.template!r}",
            "puts text after the query (or a '?' that depends on it): a sentence-transformers prompt, a "
            "fixed prefix, cannot express it; use our encoder class for queries with instructions",
        )
    formatted = template.format("query", instruction)
    return formatted.text[: formatted.query_start]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
