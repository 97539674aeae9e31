"""qpr_pyserini: instruction-aware dense retrieval on Pyserini, with query-preserving regularized training.

The public API is imported lazily so that ``python -m qpr_pyserini.eval`` does not load torch or Pyserini.
Importing the package also installs the import hook of :mod:`qpr_pyserini.compat`, so that a later
``import pyserini...`` works offline and finds Java 21 (``qpr_pyserini.search`` is the module; its function
is ``search_topics``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from qpr_pyserini.compat import install_import_hook
from qpr_pyserini.version import __version__

_EXPORTS = {
    "EncoderConfig": "config",
    "resolve_encoder": "presets",
    "DenseEncoder": "model",
    "InstructionQueryEncoder": "search.pyserini_encoders",
    "InstructionDocumentEncoder": "search.pyserini_encoders",
    "load_query_encoder": "search.pyserini_encoders",
    "load_document_encoder": "search.pyserini_encoders",
    "load_index": "index",
    "merge_indexes": "index",
    "encode_corpus": "encode",
    "search_topics": "search",
    "evaluate": "eval",
    "pmrr": "eval",
    "robustness": "eval",
}

__all__ = ["__version__", *_EXPORTS]


install_import_hook()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'qpr_pyserini' has no attribute {name!r}")
