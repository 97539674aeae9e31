"""Resolve what a user names as an encoder: a preset, a preset file, a model folder or an index folder.

Accepted everywhere an encoder is asked for:
- a preset name: ``<name>.json`` in ``$QPR_ENCODERS_DIR`` (user presets, searched first) or one of the shipped
  presets (the repository's top-level ``encoders/`` folder, installed as the package
  ``qpr_pyserini.presets.shipped``);
- a path to such a JSON file;
- a folder holding ``qpr_encoder.json`` (a model trained by ``qpr_pyserini.train``);
- an index folder written by ``qpr_pyserini.encode`` (its ``qpr_index.json`` records the encoder);
- a sentence-transformers folder (read through its ``modules.json``, see :mod:`.st_folder`);
- a plain Hugging Face model folder (CLS pooling, no normalisation).

Model locations inside a configuration are resolved by :func:`resolve_model_path`: ``pypi:<package>`` for
models shipped in PyPI packages, local paths (relative ones against the configuration's folder), else a hub id.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from qpr_pyserini.config import CONFIG_FILE, EncoderConfig
from qpr_pyserini.index.record import INDEX_RECORD, recorded_encoder
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.presets.st_folder import is_st_folder, read_st_folder

log = logging.getLogger(__name__)

PACKAGED_PRESETS = Path(str(resources.files("qpr_pyserini.presets.shipped")))
DEFAULT_ENCODER = "minilm"


def preset_dirs() -> list[Path]:
    extra = os.environ.get("QPR_ENCODERS_DIR")
    return ([Path(extra)] if extra else []) + [PACKAGED_PRESETS]


def available_presets() -> list[str]:
    return sorted({p.stem for d in preset_dirs() if d.is_dir() for p in d.glob("*.json")})


def resolve_encoder(spec: str | Path | EncoderConfig | None = None, **overrides: Any) -> EncoderConfig:
    """The EncoderConfig that ``spec`` names, with ``overrides`` (non-None values) applied."""
    config = spec if isinstance(spec, EncoderConfig) else _load(str(spec or DEFAULT_ENCODER))
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(config, **changes) if changes else config


def _load(spec: str) -> EncoderConfig:
    path = Path(spec).expanduser()
    if path.is_file():
        return _absolutise(EncoderConfig.from_file(path), path.parent)
    if path.is_dir():
        if (path / INDEX_RECORD).is_file():
            return recorded_encoder(path)
        if (path / CONFIG_FILE).is_file():
            return _absolutise(EncoderConfig.from_file(path / CONFIG_FILE), path)
        if is_st_folder(path):
            return read_st_folder(path)
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return _plain_model_folder(path)
        raise InputError(
            str(path), f"neither an encoder folder ({CONFIG_FILE}) nor a Hugging Face model folder"
        )
    for folder in preset_dirs():
        candidate = folder / f"{spec}.json"
        if candidate.is_file():
            return EncoderConfig.from_file(candidate)
    raise InputError(
        f"encoder {spec!r}",
        f"no such preset, file or folder (presets: {', '.join(available_presets()) or 'none'})",
    )


def _absolutise(config: EncoderConfig, base: Path) -> EncoderConfig:
    """Make relative local paths in a saved configuration absolute, so it can be recorded elsewhere."""
    changes = {}
    for name in ("model", "lora", "tokenizer"):
        value = getattr(config, name)
        if value and not value.startswith("pypi:") and (base / value).exists():
            changes[name] = str((base / value).resolve())
    return replace(config, **changes)


def _plain_model_folder(path: Path) -> EncoderConfig:
    log.warning("%s has no %s nor sentence-transformers modules.json: using CLS pooling", path, CONFIG_FILE)
    return EncoderConfig(model=str(path.resolve()), name=path.name, pooling="cls", normalize=False)


def resolve_model_path(model: str) -> str:
    """A loadable location for ``model``: ``pypi:pkg`` -> the package's model folder; else unchanged."""
    if not model.startswith("pypi:"):
        return model
    package, _, inner = model[len("pypi:") :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model {model!r}", f"the Python package {package!r} is not installed (pip install it)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    if inner:
        return str(root / inner)
    if (root / "model" / "config.json").is_file():
        return str(root / "model")
    if (root / "config.json").is_file() or any(root.glob("*.gguf")):
        return str(root)  # the package folder is the model folder; importing it may need extra packages
    module = importlib.import_module(package)
    if hasattr(module, "get_model_path"):
        return str(module.get_model_path())
    raise InputError(f"model {model!r}", f"no model files found in the package {package!r} ({root})")
