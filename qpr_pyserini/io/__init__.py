"""Readers and writers for corpora, topics, qrels, TREC runs and candidate lists."""

from qpr_pyserini.io.candidates import read_candidates
from qpr_pyserini.io.corpus import Document, count_documents, iter_corpus, iter_corpus_shard
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.qrels import Qrels, read_qrels
from qpr_pyserini.io.runs import Run, atomic_output, read_run, write_run
from qpr_pyserini.io.topics import Topic, instruction_of, read_topics

__all__ = [
    "Document",
    "InputError",
    "Qrels",
    "Run",
    "Topic",
    "atomic_output",
    "count_documents",
    "instruction_of",
    "iter_corpus",
    "iter_corpus_shard",
    "read_candidates",
    "read_qrels",
    "read_run",
    "read_topics",
    "write_run",
]
