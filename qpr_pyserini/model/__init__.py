"""The model: a backbone with pooling and normalisation (DenseEncoder), its text side (TextPipeline), the
inference backends that run its backbone, and saving it as a model folder."""

from qpr_pyserini.model.encoder import DenseEncoder, pool, resolve_device
from qpr_pyserini.model.folders import save_sentence_transformers_folder
from qpr_pyserini.model.text import Batch, TextPipeline

__all__ = ["Batch", "DenseEncoder", "TextPipeline", "pool", "resolve_device", "save_sentence_transformers_folder"]
