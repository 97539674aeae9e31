"""Search on a tiny random-weight BERT: one source of truth, faiss threads, bad input, rerank ordering."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import faiss
import numpy as np
import pytest
from conftest import write_jsonl

import qpr_pyserini
from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.io.topics import Topic
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.search import __main__ as search_cli
from qpr_pyserini.search import searcher as search_module
from qpr_pyserini.search.__main__ import main
from qpr_pyserini.search.searcher import search_topics


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> Path:
    folder = tmp_path_factory.mktemp("search")
    words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honeydew", "iris", "jade", "kiwi"]
    corpus = write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": f"d{i}", "text": f"{w} fruit number {i}"} for i, w in enumerate(words)],
    )
    return encode_corpus(corpus, folder / "idx", tiny_encoder, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def model(built: Path) -> DenseEncoder:
    return DenseEncoder.load(load_index(built).encoder)


def ranked(path: Path) -> dict[str, list[tuple[str, float]]]:
    run = read_run(path)
    return {qid: sorted(hits.items(), key=lambda h: -h[1]) for qid, hits in run.items()}


# ---------------------------------------------------------------- one name, one thing


def test_search_is_the_module_and_search_topics_the_function() -> None:
    code = (
        "import types, qpr_pyserini\n"
        "f = qpr_pyserini.search_topics\n"
        "from qpr_pyserini import search\n"
        "assert isinstance(search, types.ModuleType), search\n"
        "assert f is search.search_topics\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    assert isinstance(qpr_pyserini.search, ModuleType)
    assert "search" not in qpr_pyserini.__all__ and "search_topics" in qpr_pyserini.__all__


# ---------------------------------------------------------------- model object vs. other arguments


def test_model_with_an_encoder_name_is_an_error(
    built: Path, tiny_topics: Path, tmp_path: Path, model
) -> None:
    with pytest.raises(InputError, match="encoder"):
        search_topics(built, tiny_topics, tmp_path / "r.trec", encoder="minilm", model=model, progress=False)
    assert not (tmp_path / "r.trec").exists()


def test_template_with_a_model_is_applied_as_with_a_name(
    built: Path, tiny_topics: Path, tmp_path: Path, model: DenseEncoder
) -> None:
    """template/prefix/max_length are query-side overrides, applied to a passed model as to a named one."""
    options = {"instruction_field": "inst", "progress": False, "hits": 11}
    search_topics(built, tiny_topics, tmp_path / "named.trec", template="instructir", **options)
    search_topics(built, tiny_topics, tmp_path / "model.trec", template="instructir", model=model, **options)
    search_topics(built, tiny_topics, tmp_path / "plain.trec", model=model, **options)
    named, given, plain = (ranked(tmp_path / f"{n}.trec") for n in ("named", "model", "plain"))
    for qid in named:
        assert [d for d, _ in named[qid]] == [d for d, _ in given[qid]]
        np.testing.assert_allclose([s for _, s in named[qid]], [s for _, s in given[qid]], atol=1e-5)
    assert named != plain
    assert model.config.template == "concat"  # the caller's model is left as it was


# ---------------------------------------------------------------- faiss threads


class CountingThreads:
    """A faiss index stand-in that records faiss's thread setting at search time."""

    def __init__(self, index: Any) -> None:
        self.index, self.seen = index, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.index, name)

    def search(self, *args: Any) -> Any:
        self.seen.append(faiss.omp_get_max_threads())
        return self.index.search(*args)


def test_threads_apply_during_search_and_are_restored(built: Path, tiny_topics: Path, tmp_path: Path) -> None:
    dense = load_index(built)
    dense.faiss_index = CountingThreads(dense.faiss_index)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    try:
        search_topics(dense, tiny_topics, tmp_path / "a.trec", progress=False)
        assert faiss.omp_get_max_threads() == 3  # the default leaves faiss's setting alone
        search_topics(dense, tiny_topics, tmp_path / "b.trec", threads=2, progress=False)
        assert faiss.omp_get_max_threads() == 3  # restored
        assert dense.faiss_index.seen == [3, 2]
    finally:
        faiss.omp_set_num_threads(before)
    assert read_run(tmp_path / "a.trec") == read_run(tmp_path / "b.trec")


def test_queries_are_encoded_several_batches_at_a_time_with_the_same_run(
    built: Path, model: DenseEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding BATCHES_PER_ENCODE batches per call (embed sorts them by length) ranks as batch by batch."""
    words = ["apple", "banana pie", "cherry", "date palm tree", "fig", "grape juice", "kiwi", "jade stone"]
    topics = [
        Topic(f"q{i}", " ".join([words[i % 8]] * (1 + i % 5)), {"inst": f"only {words[(i * 3) % 8]}"})
        for i in range(20)
    ]
    sizes: list[int] = []
    embed_queries = model.embed_queries

    def counted(queries: list[str], *args: Any) -> np.ndarray:
        sizes.append(len(queries))
        return embed_queries(queries, *args)

    monkeypatch.setattr(model, "embed_queries", counted)
    options: dict[str, Any] = {"model": model, "instruction_field": "inst", "hits": 11, "progress": False}
    monkeypatch.setattr(search_module, "BATCHES_PER_ENCODE", 4)
    search_topics(built, topics, tmp_path / "grouped.trec", batch_size=2, **options)
    assert sizes == [8, 8, 4]
    monkeypatch.setattr(search_module, "BATCHES_PER_ENCODE", 1)
    search_topics(built, topics, tmp_path / "single.trec", batch_size=1, **options)
    assert sizes[3:] == [1] * 20
    grouped, single = ranked(tmp_path / "grouped.trec"), ranked(tmp_path / "single.trec")
    assert [[d for d, _ in grouped[q]] for q in grouped] == [[d for d, _ in single[q]] for q in grouped]
    for qid, hits in grouped.items():
        np.testing.assert_allclose([s for _, s in hits], [s for _, s in single[qid]], atol=1e-5)


# ---------------------------------------------------------------- bad input


def cli(built: Path, topics: Path, output: Path, *extra: str) -> list[str]:
    return ["--index", str(built), "--topics", str(topics), "--output", str(output), "--quiet", *extra]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--hits", "0"], "--hits: must be at least 1, got 0"),
        (["--hits", "-1"], "--hits: must be at least 1, got -1"),
        (["--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
        (["--threads", "0"], "--threads: must be at least 1, got 0"),
        (["--tag", "my run"], "tag: must be non-empty and free of whitespace, got 'my run'"),
        pytest.param(
            ["--faiss-device", "cuda"],
            "--faiss-device: cuda needs faiss-gpu",
            marks=pytest.mark.skipif(hasattr(faiss, "StandardGpuResources"), reason="faiss-gpu is installed"),
        ),
    ],
)
def test_bad_options_are_input_errors(
    built: Path,
    tiny_topics: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    fragment: str,
) -> None:
    assert main(cli(built, tiny_topics, tmp_path / "r.trec", *extra)) == 2
    err = capsys.readouterr().err
    monkeypatch.setattr(search_cli, "run_cli", lambda action: action())
    with pytest.raises(InputError):  # not any ValueError: the CLIs show those with a traceback, as bugs
        main(cli(built, tiny_topics, tmp_path / "r.trec", *extra))
    assert err.count("\n") == 1 and f"error: {fragment}" in err
    assert list(tmp_path.iterdir()) == [tiny_topics]


def test_bad_numbers_via_the_api_are_input_errors(built: Path, tiny_topics: Path, tmp_path: Path) -> None:
    for option in ({"hits": 0}, {"batch_size": -2}, {"threads": 0}):
        with pytest.raises(InputError, match="must be at least 1"):
            search_topics(built, tiny_topics, tmp_path / "r.trec", progress=False, **option)


def test_output_naming_a_folder_fails_before_searching(
    built: Path, tiny_topics: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(DenseEncoder, "load", no_model)
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError) as err:
        search_topics(built, tiny_topics, tmp_path / "out", progress=False)
    assert str(err.value) == f"{tmp_path / 'out'}: is a folder; expected a file path (--output)"
    assert list((tmp_path / "out").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(
        InputError, match=f"^{tmp_path / 'file' / 'r.trec'}: cannot be written: {tmp_path / 'file'} is"
    ):
        search_topics(built, tiny_topics, tmp_path / "file" / "r.trec", progress=False)


def test_numeric_instruction_is_used_as_text(built: Path, tmp_path: Path, model: DenseEncoder) -> None:
    topics = write_jsonl(tmp_path / "t.jsonl", [{"_id": "q1", "text": "apple", "inst": 42}])
    as_text = write_jsonl(tmp_path / "s.jsonl", [{"_id": "q1", "text": "apple", "inst": "42"}])
    options = {"instruction_field": "inst", "model": model, "progress": False}
    search_topics(built, topics, tmp_path / "a.trec", **options)
    search_topics(built, as_text, tmp_path / "b.trec", **options)
    assert read_run(tmp_path / "a.trec") == read_run(tmp_path / "b.trec")


def test_header_only_topics_are_an_error(built: Path, tmp_path: Path, capsys) -> None:
    topics = tmp_path / "t.tsv"
    topics.write_text("qid\tquery\n")
    assert main(cli(built, topics, tmp_path / "r.trec")) == 2
    assert f"error: {topics}: no topics (only a header)" in capsys.readouterr().err
    assert not (tmp_path / "r.trec").exists()
    with pytest.raises(InputError, match="no topics"):
        search_topics(built, [], tmp_path / "r.trec", progress=False)


def test_empty_index_is_an_error(
    tmp_path: Path, tiny_topics: Path, tiny_encoder: EncoderConfig, capsys
) -> None:
    from qpr_pyserini.index.store import IndexWriter

    with IndexWriter(tmp_path / "empty", 32, tiny_encoder):
        pass
    assert main(cli(tmp_path / "empty", tiny_topics, tmp_path / "r.trec")) == 2
    assert f"error: {tmp_path / 'empty'}: index holds no vectors" in capsys.readouterr().err
    assert not (tmp_path / "r.trec").exists()


# ---------------------------------------------------------------- rerank


def test_rerank_orders_by_score_and_keeps_candidate_order_on_ties(
    built: Path, tmp_path: Path, model: DenseEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = write_jsonl(
        tmp_path / "t.jsonl", [{"_id": "q1", "text": "apple"}, {"_id": "q2", "text": "kiwi"}]
    )
    order = ["d7", "d2", "d9", "d0", "d4"]
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"qid": "q1", "pid": order}, {"qid": "q2", "pid": order}])
    search_topics(built, topics, tmp_path / "r.trec", candidates=candidates, model=model, progress=False)
    run = ranked(tmp_path / "r.trec")
    dense = load_index(built)
    for qid, query in (("q1", "apple"), ("q2", "kiwi")):
        scores = dense.vectors(dense.rows_of(order)) @ model.embed_queries([query])[0]
        assert [d for d, _ in run[qid]] == [order[i] for i in np.argsort(-scores, kind="stable")]
        assert [s for _, s in run[qid]] == sorted((s for _, s in run[qid]), reverse=True)

    # all-equal scores (a zero query vector): the run keeps the candidates' order
    monkeypatch.setattr(
        DenseEncoder, "embed_queries", lambda self, q, *a, **k: np.zeros((len(q), self.dimension), np.float32)
    )
    search_topics(built, topics, tmp_path / "tie.trec", candidates=candidates, model=model, progress=False)
    lines = [line.split() for line in (tmp_path / "tie.trec").read_text().splitlines()]
    assert [(q, d) for q, _, d, *_ in lines] == [(q, d) for q in ("q1", "q2") for d in order]


def test_unknown_candidate_is_named_before_the_model_loads(
    built: Path, tiny_topics: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidates = write_jsonl(
        tmp_path / "c.jsonl", [{"qid": "q1", "pid": ["d1"]}, {"qid": "q3", "pid": ["nope"]}]
    )

    def no_model(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded before the candidates were checked")

    monkeypatch.setattr(DenseEncoder, "load", no_model)
    with pytest.raises(InputError) as err:
        search_topics(built, tiny_topics, tmp_path / "r.trec", candidates=candidates, progress=False)
    assert (
        str(err.value).startswith(f"{candidates}: ")
        and "'nope'" in str(err.value)
        and "'q3'" in str(err.value)
    )
    assert not (tmp_path / "r.trec").exists()


def test_candidates_for_no_topic_are_refused_and_for_some_warned(
    built: Path,
    tiny_topics: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Candidates whose qids match no topic used to write an empty run (exit 0)."""
    candidates = write_jsonl(
        tmp_path / "c.jsonl", [{"qid": "Q1", "pid": ["d1"]}, {"qid": "Q2", "pid": ["d2"]}]
    )
    argv = [
        "--index",
        str(built),
        "--topics",
        str(tiny_topics),
        "--output",
        str(tmp_path / "r.trec"),
        "--quiet",
    ]
    assert main([*argv, "--candidates", str(candidates)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {candidates}: has candidates for none of the 3 topics' query ids "
        "(its first: 'Q1'; the topics' first: 'q1')\n"
    )
    assert not (tmp_path / "r.trec").exists()
    some = write_jsonl(tmp_path / "some.jsonl", [{"qid": "q1", "pid": ["d1", "d2"]}])
    assert main([*argv, "--candidates", str(some)]) == 0
    assert "2 of 3 topics have no candidates and get no results (first: q2)" in caplog.text
    assert set(read_run(tmp_path / "r.trec")) == {"q1"}


def test_passed_model_keeps_its_settings_when_none_given(model: DenseEncoder) -> None:
    from qpr_pyserini.search.query_encoder import with_settings

    assert with_settings(model) is model
    changed = with_settings(model, template="instructir", query_max_length=16)
    assert changed.backbone is model.backbone and changed.config == replace(
        model.config, template="instructir", query_max_length=16
    )
