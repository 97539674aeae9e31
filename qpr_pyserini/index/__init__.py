"""Pyserini FAISS index folders: writing them atomically, their record, loading, merging shards, and
converting a flat index to HNSW / IVF-PQ."""

from qpr_pyserini.index.ann import ANN_TYPES, convert_index, set_search_parameters
from qpr_pyserini.index.merge import check_shards_agree, merge_indexes
from qpr_pyserini.index.record import INDEX_RECORD, read_index_record, recorded_encoder
from qpr_pyserini.index.store import DOCID_FILE, INDEX_FILE, DenseIndex, IndexWriter, load_index, read_docids

__all__ = [
    "ANN_TYPES",
    "DOCID_FILE",
    "INDEX_FILE",
    "INDEX_RECORD",
    "DenseIndex",
    "IndexWriter",
    "check_shards_agree",
    "convert_index",
    "load_index",
    "merge_indexes",
    "read_docids",
    "read_index_record",
    "recorded_encoder",
    "set_search_parameters",
]
