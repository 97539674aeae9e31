"""Tests for qpr_pyserini.io: every format, every error's file:line, atomic run writing, shards, irds."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from qpr_pyserini.io import (
    Document,
    InputError,
    Topic,
    atomic_output,
    count_documents,
    instruction_of,
    iter_corpus,
    iter_corpus_shard,
    read_candidates,
    read_qrels,
    read_run,
    read_topics,
    write_run,
)


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (gzipped when the name ends in .gz) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def jsonl(*records: Any) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def error_of(call: Callable[[], Any]) -> str:
    """The message of the InputError that ``call`` raises."""
    with pytest.raises(InputError) as excinfo:
        call()
    return str(excinfo.value)


def assert_error_at(call: Callable[[], Any], path: Path | str, line: int, *words: str) -> None:
    message = error_of(call)
    assert f"{path}:{line}: " in message, message
    for word in words:
        assert word in message, message


# ---------------------------------------------------------------- corpus


def test_document_joined() -> None:
    assert Document("d", "Title", "Body").joined() == "Title Body"
    assert Document("d", "Title", "Body").joined("\n") == "Title\nBody"
    assert Document("d", "", "Body").joined() == "Body"


def test_corpus_beir_jsonl(tmp_path: Path) -> None:
    path = write(
        tmp_path / "corpus.jsonl",
        jsonl({"_id": "d1", "title": "T1", "text": "x1"}, {"_id": 2, "title": "", "text": "x2"}) + "\n  \n",
    )
    assert list(iter_corpus(path)) == [Document("d1", "T1", "x1"), Document("2", "", "x2")]
    assert list(iter_corpus(str(path))) == list(iter_corpus(path))
    assert count_documents(path) == 2


def test_corpus_pyserini_jsonl_and_gzip(tmp_path: Path) -> None:
    records = jsonl(
        {"id": "a", "contents": "alpha"},
        {"docid": "b", "contents": "beta", "title": "B"},
        {"id": "c", "text": "c"},
    )
    expected = [Document("a", "", "alpha"), Document("b", "B", "beta"), Document("c", "", "c")]
    assert list(iter_corpus(write(tmp_path / "plain.jsonl", records))) == expected
    gz = write(tmp_path / "packed.jsonl.gz", records)
    assert list(iter_corpus(gz)) == expected
    assert count_documents(gz) == 3


def test_corpus_folder_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "docs" / "b.jsonl.gz", jsonl({"id": "b1", "contents": "x"}))
    write(tmp_path / "docs" / "a.jsonl", jsonl({"id": "a1", "contents": "x"}, {"id": "a2", "contents": "x"}))
    write(tmp_path / "docs" / "notes.txt", "not a corpus file")
    assert [doc.docid for doc in iter_corpus(tmp_path / "docs")] == ["a1", "a2", "b1"]
    assert count_documents(tmp_path / "docs") == 3


def test_corpus_is_streamed(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", jsonl({"_id": "1", "text": "x"}, {"_id": "2", "text": "y"}) + "{bad\n")
    docs = iter_corpus(path)
    assert [next(docs).docid, next(docs).docid] == ["1", "2"]
    assert_error_at(lambda: next(docs), path, 3, "malformed JSON")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('{"_id": "1", "text": "x"}\n{"_id": "2", "text": \n', 2, ["malformed JSON"]),
        ('{"_id": "1", "text": "x"}\n\n["_id", "2"]\n', 3, ["expected a JSON object"]),
        ('{"title": "t", "text": "x"}\n', 1, ["missing doc id"]),
        ('{"_id": "1", "text": "x"}\n{"_id": "2", "title": "t"}\n', 2, ["'2'", "no text"]),
        ('{"_id": "1", "text": 3}\n', 1, ["must be strings"]),
        ('{"_id": "a b", "text": "x"}\n', 1, ["doc id", "whitespace"]),
        (
            '{"_id": "1", "text": "x"}\n{"_id": "2", "text": "y"}\n\n{"_id": "1", "text": "z"}\n',
            4,
            ["'1'", "line 1"],
        ),
    ],
)
def test_corpus_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = write(tmp_path / "corpus.jsonl", text)
    assert_error_at(lambda: list(iter_corpus(path)), path, line, *words)


def test_undecodable_and_corrupt_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"_id": "1", "text": "a"}\n{"_id": "2", "text": "caf\xe9"}\n')
    assert_error_at(lambda: list(iter_corpus(latin)), latin, 2, "not UTF-8")
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"not gzip")
    assert_error_at(lambda: read_topics(corrupt), corrupt, 1, "cannot read")


def test_corpus_duplicate_across_folder_files(tmp_path: Path) -> None:
    first = write(
        tmp_path / "docs" / "a.jsonl", jsonl({"id": "x", "contents": "1"}, {"id": "dup", "contents": "2"})
    )
    second = write(tmp_path / "docs" / "b.jsonl", jsonl({"id": "dup", "contents": "3"}))
    assert_error_at(lambda: list(iter_corpus(tmp_path / "docs")), second, 1, f"first seen at {first}:2")


def test_corpus_empty_and_missing_sources(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.jsonl", "\n \n")
    assert error_of(lambda: list(iter_corpus(empty))) == f"{empty}: empty file"
    assert "no such file" in error_of(lambda: list(iter_corpus(tmp_path / "absent.jsonl")))
    (tmp_path / "nothing").mkdir()
    assert "no *.jsonl" in error_of(lambda: list(iter_corpus(tmp_path / "nothing")))


def test_a_beir_dataset_folder_is_read_for_its_corpus_only(tmp_path: Path) -> None:
    for corpus in ("corpus.jsonl", "corpus.jsonl.gz"):
        folder = tmp_path / corpus.replace(".", "-")
        write(folder / corpus, jsonl({"_id": "d1", "text": "x"}))
        write(folder / "queries.jsonl", jsonl({"_id": "q1", "text": "a question"}))
        write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
        assert [doc.docid for doc in iter_corpus(folder)] == ["d1"]
        assert count_documents(folder) == 1


def test_counting_a_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "corpus.jsonl.gz"
    corrupt.write_bytes(b"not gzip")
    assert error_of(lambda: count_documents(corrupt)).startswith(f"{corrupt}: cannot read")


def test_an_empty_corpus_or_shard_is_refused_up_front(tmp_path: Path) -> None:
    blank = write(tmp_path / "blank.jsonl", "\n \n")
    assert error_of(lambda: iter_corpus_shard(blank, 0, 1)) == f"{blank}: no documents"
    two = write(tmp_path / "two.jsonl", jsonl({"_id": "1", "text": "x"}, {"_id": "2", "text": "y"}))
    assert error_of(lambda: iter_corpus_shard(two, 1, 3)).startswith(
        "--shard-num: shard 1 of 3 would hold no documents (the corpus has 2"
    )
    assert [doc.docid for doc in iter_corpus_shard(two, 2, 3)] == ["1", "2"]


def test_low_level_readers_never_call_back_up() -> None:
    import ast

    import qpr_pyserini.io._read as low

    tree = ast.parse(Path(low.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name for name in imported if name and name.startswith("qpr_pyserini")} == {
        "qpr_pyserini.io.errors"
    }


@pytest.mark.parametrize("shard_num", [1, 2, 3])
def test_shards_concatenate_to_corpus(tmp_path: Path, shard_num: int) -> None:
    path = write(tmp_path / "c.jsonl", jsonl(*({"_id": f"d{i}", "text": str(i)} for i in range(7))))
    shards = [list(iter_corpus_shard(path, shard_id, shard_num)) for shard_id in range(shard_num)]
    assert [doc for shard in shards for doc in shard] == list(iter_corpus(path))
    size = 7 // shard_num  # Pyserini's split: equal blocks, the last shard takes the remainder
    assert [len(shard) for shard in shards] == [size] * (shard_num - 1) + [7 - size * (shard_num - 1)]


def test_shard_arguments_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path / "c.jsonl", jsonl({"_id": "1", "text": "x"}))
    for shard_id, shard_num in [(1, 1), (-1, 2), (0, 0)]:
        with pytest.raises(ValueError, match="shard_id"):
            iter_corpus_shard(path, shard_id, shard_num)


# ---------------------------------------------------------------- topics


def test_topics_beir_with_instruction_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "queries.jsonl",
        jsonl(
            {"_id": "3", "text": "claim", "metadata": {}, "stance": "SUPPORT", "instruction_og": "either"},
            {"_id": 1, "text": "other", "instruction_og": "x"},
        ),
    )
    topics = read_topics(path)
    assert topics == [
        Topic("3", "claim", {"stance": "SUPPORT", "instruction_og": "either"}),
        Topic("1", "other", {"instruction_og": "x"}),
    ]
    assert (topics[0].source, topics[0].line, topics[1].line) == (str(path), 1, 2)
    assert len({topics[0], topics[1]}) == 2  # hashable despite the fields dict


@pytest.mark.parametrize(
    "record",
    [
        {"id": "q", "title": "text"},
        {"qid": "q", "query": "text"},
        {"query_id": "q", "query": "text"},
        {"id": "q", "query": "text"},
        {"_id": "q", "text": "text"},
    ],
)
def test_topics_jsonl_layouts(tmp_path: Path, record: dict[str, str]) -> None:
    assert read_topics(write(tmp_path / "q.jsonl", jsonl(record))) == [Topic("q", "text")]


@pytest.mark.parametrize("header", ["", "qid\tquery\n", "query-id\ttext\n"])
def test_topics_tsv(tmp_path: Path, header: str) -> None:
    path = write(tmp_path / "topics.tsv", header + "1\tfirst query\n\n2\tsecond query\r\n")
    assert read_topics(path) == [Topic("1", "first query"), Topic("2", "second query")]


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{"_id": "2", "text": "b"\n', 2, ["malformed JSON"]),
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{"text": "b"}\n', 2, ["missing qid"]),
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{"_id": "7", "metadata": {}}\n', 2, ["'7'", "no query text"]),
        ("q.jsonl", '{"_id": "1", "text": "a"}\n{"_id": "7", "text": "  "}\n', 2, ["'7'", "blank"]),
        (
            "q.jsonl",
            '{"_id": "1", "text": "a"}\n\n{"_id": "1", "text": "b"}\n',
            3,
            ["duplicate qid '1'", "line 1"],
        ),
        ("q.tsv", "1\ta\n2 b\n", 2, ["2 tab-separated columns"]),
        ("q.tsv", "1\ta\n2\tb\tc\n", 2, ["got 3"]),
        ("q.tsv", "1\ta\n5\t \n", 2, ["'5'", "blank"]),
        ("q.tsv", "1\ta\n1\tb\n", 2, ["duplicate qid"]),
    ],
)
def test_topic_errors_name_file_and_line(
    tmp_path: Path, name: str, text: str, line: int, words: list[str]
) -> None:
    path = write(tmp_path / name, text)
    assert_error_at(lambda: read_topics(path), path, line, *words)


def test_topics_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "q.tsv", "")
    assert error_of(lambda: read_topics(path)) == f"{path}: empty file"


def test_instruction_of(tmp_path: Path) -> None:
    path = write(
        tmp_path / "q.jsonl",
        jsonl({"_id": "1", "text": "a", "instruction_og": "og", "stance": "S"}, {"_id": "2", "text": "b"}),
    )
    first, second = read_topics(path)
    assert instruction_of(first, "instruction_og", "default") == "og"
    assert instruction_of(first, None, "default") == "default"
    assert instruction_of(first, None, None) is None
    assert_error_at(
        lambda: instruction_of(first, "instruction_changed", None), path, 1, "instruction_og, stance"
    )
    assert_error_at(lambda: instruction_of(second, "instruction_og", None), path, 2, "'2'", "none")


# ---------------------------------------------------------------- qrels


@pytest.mark.parametrize(
    "text",
    [
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n\nq2\td1\t2\n",
        "q1\td1\t1\nq1\td2\t0\nq2\td1\t2\n",
        "q1 0 d1 1\nq1 0 d2 0\nq2 Q0 d1 2\n",
    ],
)
def test_qrels_formats(tmp_path: Path, text: str) -> None:
    assert read_qrels(write(tmp_path / "qrels.txt", text)) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d1": 2}}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n", 3, ["expected 3 columns"]),
        ("q1 0 d1 1\nq1 0 d2 1 extra\n", 2, ["expected 4 columns"]),
        ("q1\td1\n", 1, ["got 2"]),
        ("q1\td1\t1\nq1\td2\t0.5\n", 2, ["integer", "'0.5'"]),
        ("q1\td1\t1\nq1\td1\t0\n", 2, ["judged 1 earlier, now 0"]),
    ],
)
def test_qrels_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = write(tmp_path / "qrels.tsv", text)
    assert_error_at(lambda: read_qrels(path), path, line, *words)


def test_qrels_empty(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.tsv", "")
    assert error_of(lambda: read_qrels(empty)) == f"{empty}: empty file"
    header = write(tmp_path / "header.tsv", "query-id\tcorpus-id\tscore\n")
    assert "no judgements" in error_of(lambda: read_qrels(header))


# ---------------------------------------------------------------- runs


def test_write_and_read_run(tmp_path: Path) -> None:
    path = tmp_path / "out" / "deep" / "run.trec"
    results = [("q1", [("d1", 2.5), ("d2", 1.0 / 3)]), ("q2", []), ("q3", [("d9", -1.0)])]
    assert write_run(path, results, tag="test") == 3
    assert path.read_text().splitlines() == [
        "q1 Q0 d1 1 2.500000 test",
        "q1 Q0 d2 2 0.333333 test",
        "q3 Q0 d9 1 -1.000000 test",
    ]
    assert read_run(path) == {"q1": {"d1": 2.5, "d2": 0.333333}, "q3": {"d9": -1.0}}
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.trec"]


def test_write_run_failure_leaves_nothing(tmp_path: Path) -> None:
    def results() -> Iterator[tuple[str, list[tuple[str, float]]]]:
        yield "q1", [("d1", 1.0)]
        raise RuntimeError("encoder crashed")

    path = tmp_path / "run.trec"
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_run(path, results())
    assert list(tmp_path.iterdir()) == []

    path.write_text("previous complete run\n")
    with pytest.raises(ValueError, match="docid"):
        write_run(path, [("q1", [("d1", 1.0), ("bad id", 0.5)])])
    assert [p.name for p in tmp_path.iterdir()] == ["run.trec"]
    assert path.read_text() == "previous complete run\n"


def test_atomic_output_for_any_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "table.json"
    with atomic_output(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"
    with pytest.raises(KeyError), atomic_output(target) as tmp:
        tmp.write_text("partial")
        raise KeyError("stop")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["table.json"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("q1 Q0 d1 1 1.0 t\nq1 Q0 d2 2 0.5\n", 2, ["expected 6 columns"]),
        ("q1 Q0 d1 1 1.0 t\n\nq1 Q0 d2 2 high t\n", 3, ["'high'"]),
        ("q1 Q0 d1 first 1.0 t\n", 1, ["rank must be an integer"]),
        ("q1 Q0 d1 1 1.0 t\nq1 Q0 d1 2 0.5 t\n", 2, ["duplicate", "'q1'", "'d1'"]),
    ],
)
def test_run_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = write(tmp_path / "run.trec", text)
    assert_error_at(lambda: read_run(path), path, line, *words)


# ---------------------------------------------------------------- candidates


@pytest.mark.parametrize(
    "text",
    [
        jsonl(
            {"qid": "q1", "pid": "d2"},
            {"qid": "q1", "pid": "d1"},
            {"qid": "q2", "pid": 5},
            {"qid": "q1", "pid": "d2"},
        ),
        jsonl(
            {"query-id": "q1", "corpus-id": "d2"},
            {"query_id": "q1", "doc_id": "d1"},
            {"query-id": "q2", "corpus-id": "5"},
        ),
        jsonl({"qid": "q1", "pid": ["d2", "d1", "d2"]}, {"qid": "q2", "pid": ["5"]}),
        "qid\tdocid\nq1\td2\nq1\td1\nq2\t5\nq1\td1\n",
        "q1\td2\nq1\td1\nq2\t5\n",
        "q1 Q0 d2 1 9.0 bm25\nq1 Q0 d1 2 8.0 bm25\nq2 Q0 5 1 3.0 bm25\n",
    ],
)
def test_candidates_formats(tmp_path: Path, text: str) -> None:
    assert read_candidates(write(tmp_path / "top_ranked.txt", text)) == {"q1": ["d2", "d1"], "q2": ["5"]}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (jsonl({"qid": "q1", "pid": "d1"}, {"qid": "q1"}), 2, ["expected a qid"]),
        ('{"qid": "q1", "pid": "d1"}\n{"qid": \n', 2, ["malformed JSON"]),
        (jsonl({"qid": "q1", "pid": ["d1", None]}), 1, ["doc id"]),
        ("q1\td1\nq1\td2\textra\n", 2, ["got 3"]),
        ("q1 d1 1\n", 1, ["got 3"]),
    ],
)
def test_candidate_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = write(tmp_path / "cands", text)
    assert_error_at(lambda: read_candidates(path), path, line, *words)


# ---------------------------------------------------------------- irds: (a local dataset, no network)


class TitledDoc(NamedTuple):
    doc_id: str
    title: str
    body: str

    def default_text(self) -> str:
        return f"{self.title} {self.body}"


class TrecStyleQuery(NamedTuple):
    query_id: str
    title: str
    description: str

    def default_text(self) -> str:
        return self.title


@pytest.fixture
def irds_source(tmp_path: Path) -> str:
    """Register a tiny ir_datasets dataset over local files and return its ``irds:`` source."""
    from ir_datasets import registry
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    docs = write(tmp_path / "docs.tsv", "d1\tFirst\tbody one\nd2\t\tbody two\nd3\tThird\tbody three\n")
    queries = write(tmp_path / "queries.tsv", "q1\tshort one\tlong one\nq2\tshort two\tlong two\n")
    qrels = write(tmp_path / "qrels.txt", "q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n")
    name = f"qpr-io-test/{uuid.uuid4().hex}"
    dataset = Dataset(
        TsvDocs(LocalDownload(docs), doc_cls=TitledDoc),
        TsvQueries(LocalDownload(queries), query_cls=TrecStyleQuery),
        TrecQrels(LocalDownload(qrels), {0: "not relevant", 1: "relevant", 2: "very relevant"}),
    )
    registry.register(name, dataset)
    return f"irds:{name}"


def test_irds_readers(irds_source: str) -> None:
    docs = list(iter_corpus(irds_source))
    assert docs == [
        Document("d1", "First", "body one"),
        Document("d2", "", "body two"),
        Document("d3", "Third", "body three"),
    ]
    assert [doc for shard in range(2) for doc in iter_corpus_shard(irds_source, shard, 2)] == docs
    assert read_topics(irds_source) == [
        Topic("q1", "short one", {"description": "long one"}),
        Topic("q2", "short two", {"description": "long two"}),
    ]
    assert read_qrels(irds_source) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


def test_irds_unknown_id() -> None:
    assert "unknown ir_datasets id" in error_of(lambda: read_topics("irds:qpr-io-test/no-such-dataset"))


# ---------------------------------------------------------------- real data


def test_real_scifact(shared_data: Path) -> None:
    scifact = shared_data / "scifact"
    assert count_documents(scifact / "corpus.jsonl") == 5183
    assert sum(1 for _ in iter_corpus(scifact / "corpus.jsonl")) == 5183
    assert len(read_topics(scifact / "queries.jsonl")) == 1109
    qrels = read_qrels(scifact / "qrels" / "test.tsv")
    assert (len(qrels), sum(map(len, qrels.values()))) == (300, 339)
    stance = read_topics(shared_data / "scifact-stance" / "test" / "queries.jsonl")
    assert len(stance) == 188
    assert all(
        {"instruction_og", "instruction_changed", "instruction_matching"} <= set(t.fields) for t in stance
    )
    assert instruction_of(stance[0], "instruction_og", None) == stance[0].fields["instruction_og"]
