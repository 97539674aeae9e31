"""Encoding: a corpus into a Pyserini FAISS index folder, streamed, resumable, reused when already built, and
sharded over a Ray cluster."""

from qpr_pyserini.encode.corpus_index import encode_corpus, encode_or_reuse, is_index_of
from qpr_pyserini.encode.ray import encode_with_ray

__all__ = ["encode_corpus", "encode_or_reuse", "encode_with_ray", "is_index_of"]
