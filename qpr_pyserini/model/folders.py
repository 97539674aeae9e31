"""Saving an encoder as a model folder that our tools and sentence-transformers both load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from torch import Tensor

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets.st_folder import write_st_files


def save_sentence_transformers_folder(
    encoder: DenseEncoder,
    folder: str | Path,
    config: EncoderConfig | None = None,
    state_dict: dict[str, Tensor] | None = None,
) -> list[str]:
    """Save ``encoder`` as a folder that our tools and ``SentenceTransformer(folder)`` both load.

    Writes the backbone (or its LoRA adapter; ``state_dict`` replaces its weights, as DeepSpeed / FSDP hand
    them over), the tokenizer, ``config`` as ``qpr_encoder.json`` (default: the encoder's own, with the model
    in the folder), which our loader reads first, and sentence-transformers' files (:func:`write_st_files`).
    Returns what sentence-transformers does differently from our encoder class on this folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder.backbone.save_pretrained(folder, state_dict=state_dict)
    encoder.tokenizer.save_pretrained(folder)
    if config is None:
        config = replace(
            encoder.config, model=".", tokenizer=None, lora=None, merge_lora=False, gguf_file=None
        )
    config.save(folder)
    return write_st_files(config, folder, encoder.dimension)
