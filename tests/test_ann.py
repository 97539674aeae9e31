"""ANN index types: `index convert` to HNSW / IVF-PQ, search settings (--ef-search, --nprobe), Pyserini."""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index import __main__ as index_cli
from qpr_pyserini.index.ann import convert_index, default_factory
from qpr_pyserini.index.record import INDEX_RECORD
from qpr_pyserini.index.store import IndexWriter, load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.search.__main__ import main
from qpr_pyserini.search.searcher import search_topics


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> Path:
    folder = tmp_path_factory.mktemp("ann")
    corpus = write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": f"d{i}", "text": f"fruit number {i} " * (1 + i % 5)} for i in range(40)],
    )
    return encode_corpus(corpus, folder / "flat", tiny_encoder, progress=False)


@pytest.fixture(scope="module")
def converted(flat: Path) -> dict[str, Path]:
    return {kind: convert_index(flat, flat.parent / kind, kind) for kind in ("hnsw", "ivfpq")}


def ranking(path: Path) -> dict[str, list[str]]:
    return {qid: sorted(hits, key=hits.get, reverse=True) for qid, hits in read_run(path).items()}


def test_default_factories() -> None:
    assert default_factory("hnsw", 384, 10) == "HNSW32"
    assert default_factory("ivfpq", 384, 200_000) == "IVF2048,PQ96x8np"
    assert default_factory("ivfpq", 384, 5_000) == "IVF128,PQ96x8np"
    assert default_factory("ivfpq", 32, 40) == "IVF1,PQ8x5np"  # too few vectors for 256 centroids
    assert default_factory("ivfpq", 6, 1000) == "IVF16,PQ1x8np"


def test_converted_folders_are_index_folders_with_a_record(flat: Path, converted: dict[str, Path]) -> None:
    source = load_index(flat)
    for kind, folder in converted.items():
        assert sorted(p.name for p in folder.iterdir()) == ["docid", "index", INDEX_RECORD]
        loaded = load_index(folder)
        assert loaded.docids == source.docids and loaded.encoder == source.encoder
        assert loaded.record["ann"] == {
            "type": kind,
            "factory": default_factory(kind, 32, 40),
            "converted_from": str(flat),
        }
        assert loaded.record["corpus"] == source.record["corpus"] and loaded.record["documents"] == 40
    hnsw, ivf = (load_index(converted[k]).faiss_index for k in ("hnsw", "ivfpq"))
    assert isinstance(hnsw, faiss.IndexHNSWFlat) and hnsw.hnsw.efSearch == 128
    assert (
        isinstance(ivf, faiss.IndexIVFPQ)
        and ivf.nprobe == 1
        and ivf.metric_type == faiss.METRIC_INNER_PRODUCT
    )
    assert sorted(p.name for p in flat.parent.iterdir()) == ["corpus.jsonl", "flat", "hnsw", "ivfpq"]


def test_hnsw_search_finds_the_flat_ranking_on_a_small_index(
    flat: Path, converted: dict[str, Path], tiny_topics: Path, tmp_path: Path
) -> None:
    options = {"instruction_field": "inst", "hits": 10, "progress": False}
    search_topics(flat, tiny_topics, tmp_path / "flat.trec", **options)
    search_topics(converted["hnsw"], tiny_topics, tmp_path / "hnsw.trec", ef_search=64, **options)
    assert ranking(tmp_path / "hnsw.trec") == ranking(tmp_path / "flat.trec")


def test_rerank_reads_vectors_of_both_types(
    flat: Path, converted: dict[str, Path], tiny_topics: Path, tmp_path: Path
) -> None:
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"qid": "q1", "pid": ["d3", "d30", "d7", "d12"]}])
    options = {"candidates": candidates, "instruction_field": "inst", "progress": False}
    search_topics(flat, tiny_topics, tmp_path / "flat.trec", **options)
    search_topics(converted["hnsw"], tiny_topics, tmp_path / "hnsw.trec", **options)
    search_topics(converted["ivfpq"], tiny_topics, tmp_path / "ivf.trec", **options)
    assert (tmp_path / "hnsw.trec").read_text() == (tmp_path / "flat.trec").read_text()  # exact vectors
    assert sorted(read_run(tmp_path / "ivf.trec")["q1"]) == ["d12", "d3", "d30", "d7"]  # PQ-approximated


def test_search_settings_override_the_stored_ones(
    converted: dict[str, Path], tiny_topics: Path, tmp_path: Path
) -> None:
    hnsw, ivf = load_index(converted["hnsw"]), load_index(converted["ivfpq"])
    search_topics(hnsw, tiny_topics, tmp_path / "a.trec", ef_search=7, progress=False)
    search_topics(ivf, tiny_topics, tmp_path / "b.trec", nprobe=3, progress=False)
    assert hnsw.faiss_index.hnsw.efSearch == 7 and ivf.faiss_index.nprobe == 3
    stored = convert_index(converted["hnsw"].parent / "flat", tmp_path / "h", "hnsw", ef_search=50)
    assert load_index(stored).faiss_index.hnsw.efSearch == 50


@pytest.mark.parametrize(
    ("index", "extra", "fragment"),
    [
        ("hnsw", ["--nprobe", "4"], "--nprobe: applies to IVF indexes; {path} is an IndexHNSWFlat index"),
        (
            "flat",
            ["--ef-search", "4"],
            "--ef-search: applies to HNSW indexes; {path} is an IndexFlatIP index",
        ),
        ("ivfpq", ["--nprobe", "0"], "--nprobe: must be at least 1, got 0"),
    ],
)
def test_settings_of_another_index_type_are_input_errors(
    converted: dict[str, Path],
    flat: Path,
    tiny_topics: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    index: str,
    extra: list[str],
    fragment: str,
) -> None:
    def no_model(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(DenseEncoder, "load", no_model)
    path = flat if index == "flat" else converted[index]
    argv = ["--index", str(path), "--topics", str(tiny_topics), "--output", str(tmp_path / "r.trec"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.strip() == "error: " + fragment.format(path=path)
    assert not (tmp_path / "r.trec").exists()


def test_convert_cli_and_its_errors(
    flat: Path, converted: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "convert",
        "--index",
        str(flat),
        "--output",
        str(out),
        "--type",
        "ivfpq",
        "--factory",
        "IVF2,PQ4x4",
    ]
    assert index_cli.main([*argv, "--nprobe", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out} (IVF2,PQ4x4, ivfpq)"
    assert load_index(out).faiss_index.nprobe == 2

    def error(*args: str) -> str:
        assert index_cli.main(list(args)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert "--overwrite" in error(*argv)
    other = ["--output", str(tmp_path / "x"), "--type"]
    assert error("convert", "--index", str(converted["hnsw"]), *other, "hnsw") == (
        f"error: {converted['hnsw']}: is an IndexHNSWFlat index; convert from a flat index"
    )
    assert error("convert", "--index", str(flat), *other, "ivfpq", "--factory", "IVF1,Bogus").startswith(
        "error: --factory: faiss cannot build an index from 'IVF1,Bogus'"
    )
    assert error("convert", "--index", str(flat), *other, "ivfpq", "--factory", "IVF64,PQ8").startswith(
        "error: --factory: cannot train 'IVF64,PQ8' on 40 vectors"
    )
    assert error("convert", "--index", str(flat), *other, "ivfpq", "--ef-search", "9") == (
        "error: --ef-search: applies to HNSW indexes; --type ivfpq (IVF1,PQ8x5np) is an IndexIVFPQ index"
    )
    assert error("convert", "--index", str(tmp_path / "absent"), *other, "hnsw").startswith(
        f"error: {tmp_path / 'absent'}: not a Pyserini FAISS index folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing partial left behind
    with pytest.raises(InputError, match="^--type: "):
        convert_index(flat, tmp_path / "y", "pq")


@pytest.mark.parametrize(
    ("kind", "factory", "builds"),
    [
        ("hnsw", "IVF2,Flat", "an IndexIVFFlat index"),
        ("ivfpq", "Flat", "an IndexFlat index"),
        ("ivfpq", "HNSW8", "an IndexHNSWFlat index"),
    ],
)
def test_convert_refuses_a_factory_of_another_type(
    flat: Path, tmp_path: Path, kind: str, factory: str, builds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The record's ``ann.type`` is what search and users go by: it must be the index's."""
    argv = [
        "convert",
        "--index",
        str(flat),
        "--output",
        str(tmp_path / "out"),
        "--type",
        kind,
        "--factory",
        factory,
    ]
    assert index_cli.main(argv) == 2
    assert (
        capsys.readouterr().err
        == f"error: --factory: {factory!r} builds {builds}, not a --type {kind} index{' (that is --type hnsw)' if kind == 'ivfpq' and factory.startswith('HNSW') else ''}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_ivfpq_on_a_tiny_index_blames_the_type_not_an_unasked_factory(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with IndexWriter(tmp_path / "one", 8, None) as writer:
        writer.add(["a"], np.ones((1, 8), dtype=np.float32))
    argv = ["convert", "--index", str(tmp_path / "one"), "--output", str(tmp_path / "out"), "--type", "ivfpq"]
    assert index_cli.main(argv) == 2
    (line,) = capfd.readouterr().err.splitlines()
    assert (
        line.startswith("error: --type: cannot train 'IVF1,PQ2x1np' on 1 vectors") and "--type hnsw" in line
    )
    assert "Clustering.cpp" not in line and "--factory" in line.split(";")[-1]


def test_training_on_few_points_prints_faiss_note_once(
    flat: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        convert_index(flat, tmp_path / "out", "ivfpq", factory="IVF1,PQ8x4")
    assert "training points" not in capfd.readouterr().err  # faiss's own lines, one per sub-quantizer
    (note,) = [r.getMessage() for r in caplog.records if "training points" in r.getMessage()]
    assert note.startswith("faiss: WARNING clustering 40 points to 16 centroids") and note.endswith(
        "(8 times)"
    )


def test_convert_refuses_an_empty_index(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    with IndexWriter(tmp_path / "empty", 32, tiny_encoder):
        pass
    with pytest.raises(InputError, match="index holds no vectors"):
        convert_index(tmp_path / "empty", tmp_path / "out", "hnsw")


@pytest.mark.java
def test_pyserini_faiss_searcher_reads_converted_indexes(
    converted: dict[str, Path], tiny_topics: Path, tmp_path: Path
) -> None:
    from qpr_pyserini.compat import prepare_pyserini

    prepare_pyserini()
    from pyserini.search.faiss import FaissSearcher

    from qpr_pyserini.io.topics import read_topics
    from qpr_pyserini.search.pyserini_encoders import InstructionQueryEncoder

    topics = read_topics(tiny_topics)
    queries = [{"query": t.query, "instruction": t.fields["inst"]} for t in topics]
    for kind, folder in converted.items():
        search_topics(
            folder, tiny_topics, tmp_path / f"{kind}.trec", instruction_field="inst", hits=5, progress=False
        )
        ours = read_run(tmp_path / f"{kind}.trec")
        searcher = FaissSearcher(str(folder), InstructionQueryEncoder(str(folder)))
        assert type(searcher.index) is type(load_index(folder).faiss_index)
        results = searcher.batch_search(queries, [t.qid for t in topics], k=5)
        for qid, hits in results.items():
            assert [h.docid for h in hits] == ranking(tmp_path / f"{kind}.trec")[qid], (kind, qid)
            np.testing.assert_allclose([h.score for h in hits], [ours[qid][h.docid] for h in hits], atol=1e-5)
