"""Search: instruction-aware queries encoded and ranked against an index (one folder, shards, or ANN), as TREC
runs; ``search.pyserini_encoders`` (not imported here: it imports Pyserini) puts our encoders behind Pyserini's
QueryEncoder / DocumentEncoder interfaces."""

from qpr_pyserini.search.query_encoder import check_compatible, query_encoder_for, with_settings
from qpr_pyserini.search.searcher import encode_topics, faiss_threads, rerank, retrieve, search_topics
from qpr_pyserini.search.shards import ShardedIndex, open_index

__all__ = [
    "ShardedIndex",
    "check_compatible",
    "encode_topics",
    "faiss_threads",
    "open_index",
    "query_encoder_for",
    "rerank",
    "retrieve",
    "search_topics",
    "with_settings",
]
