"""Search over shards without merging: equal to searching the merged index, in full and rerank mode."""

from __future__ import annotations

import gc
import shutil
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index import store as index_module
from qpr_pyserini.index.merge import merge_indexes
from qpr_pyserini.index.record import INDEX_RECORD
from qpr_pyserini.index.store import IndexWriter, load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.search import searcher as search_module
from qpr_pyserini.search.__main__ import main
from qpr_pyserini.search.searcher import retrieve, search_topics
from qpr_pyserini.search.shards import ShardedIndex, index_folders

CONFIG = EncoderConfig(model="some/model", name="toy")


def write_vectors(
    path: Path, docids: list[str], vectors: np.ndarray, encoder: EncoderConfig = CONFIG
) -> Path:
    with IndexWriter(path, vectors.shape[1], encoder) as writer:
        writer.add(docids, vectors)
    return path


def split(tmp_path: Path, vectors: np.ndarray, cuts: list[int]) -> tuple[list[Path], Path]:
    """Shard folders of ``vectors`` cut at ``cuts``, and their merged index."""
    bounds = [0, *cuts, len(vectors)]
    shards = [
        write_vectors(tmp_path / f"shard{i}", [f"d{r}" for r in range(a, b)], vectors[a:b])
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]
    return shards, merge_indexes(shards, tmp_path / "merged")


@pytest.mark.parametrize("queries", [3, 45])  # below and above faiss's BLAS threshold (20 queries)
def test_shard_search_equals_merged_search_exactly(tmp_path: Path, queries: int) -> None:
    rng = np.random.default_rng(queries)
    vectors = rng.standard_normal((900, 24)).astype(np.float32)
    shards, merged = split(tmp_path, vectors, [100, 101, 650])
    q = rng.standard_normal((queries, 24)).astype(np.float32)
    for hits in (1, 10, 200, 1000):
        expected = retrieve(load_index(merged), q, hits)
        assert ShardedIndex(shards).search(q, hits, batch_size=32) == expected  # ids and float scores


def test_ties_are_chosen_and_ordered_as_in_the_merged_index(tmp_path: Path) -> None:
    """Duplicated vectors tie exactly: faiss keeps and orders them by where its scan meets them."""
    rng = np.random.default_rng(0)
    for trial in range(40):
        count, distinct = int(rng.integers(20, 300)), int(rng.integers(1, 6))
        vectors = rng.standard_normal((distinct, 8)).astype(np.float32)[rng.integers(0, distinct, count)]
        cuts = sorted(rng.choice(np.arange(1, count), int(rng.integers(1, 5)), replace=False).tolist())
        shards, merged = split(tmp_path / str(trial), vectors, cuts)
        q = rng.standard_normal((int(rng.choice([1, 25])), 8)).astype(np.float32)
        hits = int(rng.integers(1, count))
        assert ShardedIndex(shards).search(q, hits, 32) == retrieve(load_index(merged), q, hits), trial


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> Path:
    """A folder holding three shards (encode --shard-num 3) of a 23-document corpus, and their merge."""
    folder = tmp_path_factory.mktemp("shards")
    corpus = write_jsonl(
        folder / "corpus.jsonl",
        [{"_id": f"d{i}", "text": f"fruit number {i} " * (1 + i % 4)} for i in range(23)],
    )
    for shard in range(3):
        encode_corpus(
            corpus,
            folder / "shards" / f"part{shard}",
            tiny_encoder,
            shard_id=shard,
            shard_num=3,
            progress=False,
        )
    merge_indexes([folder / "shards" / f"part{i}" for i in range(3)], folder / "merged")
    return folder


def test_search_cli_over_shards_writes_the_merged_run(
    encoded: Path, tiny_topics: Path, tmp_path: Path
) -> None:
    common = ["--topics", str(tiny_topics), "--instruction-field", "inst", "--hits", "7", "--batch-size", "2"]
    shards = [str(encoded / "shards" / f"part{i}") for i in range(3)]
    assert main(["--index", str(encoded / "merged"), *common, "--output", str(tmp_path / "m.trec")]) == 0
    assert main(["--index", *shards, *common, "--output", str(tmp_path / "s.trec")]) == 0
    assert main(["--index", str(encoded / "shards"), *common, "--output", str(tmp_path / "f.trec")]) == 0
    merged = (tmp_path / "m.trec").read_text()
    assert len(merged.splitlines()) == 21
    assert (tmp_path / "s.trec").read_text() == merged == (tmp_path / "f.trec").read_text()


def test_rerank_over_shards_equals_merged_rerank(encoded: Path, tiny_topics: Path, tmp_path: Path) -> None:
    pool = [["d20", "d1", "d5", "d13", "d2"], ["d7"], ["d22", "d0", "d21", "d3", "d10", "d11"]]
    candidates = write_jsonl(
        tmp_path / "c.jsonl", [{"qid": f"q{i + 1}", "pid": pids} for i, pids in enumerate(pool)]
    )
    options = {"candidates": candidates, "instruction_field": "inst", "hits": 4, "progress": False}
    search_topics(encoded / "merged", tiny_topics, tmp_path / "m.trec", **options)
    search_topics(encoded / "shards", tiny_topics, tmp_path / "s.trec", **options)
    assert (tmp_path / "s.trec").read_text() == (tmp_path / "m.trec").read_text()
    assert len((tmp_path / "s.trec").read_text().splitlines()) == 4 + 1 + 4


def test_unknown_candidate_in_every_shard_is_an_input_error(
    encoded: Path, tiny_topics: Path, tmp_path: Path
) -> None:
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"qid": "q2", "pid": ["d1", "nope"]}])
    with pytest.raises(InputError, match="candidate doc id 'nope' of qid 'q2'"):
        search_topics(
            encoded / "shards", tiny_topics, tmp_path / "r.trec", candidates=candidates, progress=False
        )
    assert not (tmp_path / "r.trec").exists()


def test_shards_are_loaded_one_at_a_time(
    encoded: Path, tiny_topics: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alive: list[weakref.ref] = []
    real = index_module.load_index

    def load_alone(path: Path, **kwargs: object) -> object:
        gc.collect()
        assert all(ref() is None for ref in alive), "a shard was loaded while another was still held"
        loaded = real(path, **kwargs)
        alive.append(weakref.ref(loaded))
        return loaded

    monkeypatch.setattr("qpr_pyserini.search.shards.load_index", load_alone)
    candidates = write_jsonl(tmp_path / "c.jsonl", [{"qid": "q1", "pid": [f"d{i}" for i in range(23)]}])
    for options in ({}, {"candidates": candidates}):
        alive.clear()
        search_topics(encoded / "shards", tiny_topics, tmp_path / "r.trec", progress=False, **options)
        assert len(alive) == 3


def test_folder_of_shards_is_taken_in_natural_order(tmp_path: Path) -> None:
    for name in ("s10", "s2", "s1"):
        write_vectors(tmp_path / "all" / name, [name], np.ones((1, 4), dtype=np.float32))
    (tmp_path / "all" / "notes").mkdir()  # not an index folder: ignored
    (tmp_path / "all" / ".s3.partial-x").mkdir()  # an unfinished writer's folder: ignored
    assert [p.name for p in index_folders(tmp_path / "all")] == ["s1", "s2", "s10"]
    with pytest.raises(InputError, match="named twice"):
        index_folders([tmp_path / "all" / "s1", tmp_path / "all" / "s2", tmp_path / "all" / "s1"])


@pytest.mark.parametrize("change", ["encoder", "dimension", "no record"])
def test_disagreeing_shards_are_refused(
    tmp_path: Path, tiny_topics: Path, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = write_vectors(tmp_path / "a", ["a"], np.ones((1, 4), dtype=np.float32))
    width, encoder = (5, CONFIG) if change == "dimension" else (4, replace(CONFIG, pooling="cls"))
    other = write_vectors(tmp_path / "b", ["b"], np.ones((1, width), dtype=np.float32), encoder)
    if change == "no record":
        (other / INDEX_RECORD).unlink()
    argv = [
        "--index",
        str(first),
        str(other),
        "--topics",
        str(tiny_topics),
        "--output",
        str(tmp_path / "r.trec"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {other}: ")
    expected = {
        "dimension": "dimension 5 differs",
        "encoder": "different encoder",
        "no record": "no qpr_index.json",
    }
    assert expected[change] in err
    assert not (tmp_path / "r.trec").exists()


def test_a_record_less_shard_of_another_dimension_is_refused_when_loaded(tmp_path: Path) -> None:
    first = write_vectors(tmp_path / "a", ["a"], np.ones((1, 4), dtype=np.float32), None)
    other = write_vectors(tmp_path / "b", ["b"], np.ones((1, 5), dtype=np.float32), None)
    for folder in (first, other):
        (folder / INDEX_RECORD).unlink()
    with pytest.raises(InputError, match=f"^{other}: dimension 5 differs"):
        ShardedIndex([first, other]).search(np.ones((1, 4), dtype=np.float32), 2, 32)


def test_mmap_search_equals_in_memory_search(encoded: Path, tiny_topics: Path, tmp_path: Path) -> None:
    for index in (encoded / "merged", encoded / "shards"):
        runs = []
        for mmap in (False, True):
            run = tmp_path / f"{index.name}-{mmap}.trec"
            options = {"instruction_field": "inst", "hits": 9, "progress": False}
            search_topics(index, tiny_topics, run, mmap=mmap, **options)
            runs.append(run.read_text())
        assert runs[0] == runs[1] and len(runs[0].splitlines()) == 27


def test_mmap_option_maps_the_index(
    encoded: Path, tiny_topics: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    real = search_module.open_index

    def spy(index: object, **kwargs: object) -> object:
        seen.append(bool(kwargs.get("mmap")))
        return real(index, **kwargs)

    monkeypatch.setattr(search_module, "open_index", spy)
    argv = ["--index", str(encoded / "merged"), "--topics", str(tiny_topics), "--quiet"]
    assert main([*argv, "--output", str(tmp_path / "a.trec"), "--mmap"]) == 0
    assert main([*argv, "--output", str(tmp_path / "b.trec")]) == 0
    assert seen == [True, False]


def test_overlapping_shards_are_refused(
    encoded: Path, tiny_topics: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two copies of a shard (or a shard and a converted copy) would write duplicate (qid, docid) lines."""
    shards = encoded / "shards"
    copies = {}
    for name in ("part0", "part1", "part1-copy"):
        copies[name] = shutil.copytree(shards / name.removesuffix("-copy"), tmp_path / name)
    foreign = {}  # the same without records (as Pyserini writes shards): only the doc ids tell
    for name in ("part0", "part1", "part1-copy"):
        foreign[name] = shutil.copytree(copies[name], tmp_path / "foreign" / name)
        (foreign[name] / INDEX_RECORD).unlink()
    cases = [(copies, "is shard 1 of 3, as"), (foreign, "holds doc id 'd7', as")]
    for folders, message in cases:
        argv = ["--index", *map(str, folders.values()), "--topics", str(tiny_topics)]
        assert (
            main([*argv, "--output", str(tmp_path / "r.trec"), "--quiet", "--encoder", str(shards / "part0")])
            == 2
        )
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {folders['part1-copy']}: {message}"), err
        assert not (tmp_path / "r.trec").exists()


def test_a_missing_shard_is_refused_unless_partial_search_is_asked_for(
    encoded: Path, tiny_topics: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = encoded / "shards"
    (tmp_path / "two").mkdir()
    for name in ("part0", "part1"):
        (tmp_path / "two" / name).symlink_to(shards / name)
    common = ["--topics", str(tiny_topics), "--output", str(tmp_path / "r.trec"), "--quiet"]
    for index in ([tmp_path / "two"], [shards / "part0", shards / "part2"], [shards / "part0"]):
        assert main(["--index", *map(str, index), *common]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "of 3 is missing" in err and "--allow-partial" in err, err
        assert not (tmp_path / "r.trec").exists()
    assert main(["--index", str(tmp_path / "two"), *common, "--allow-partial"]) == 0
    found = {line.split()[2] for line in (tmp_path / "r.trec").read_text().splitlines()}
    assert found <= set(load_index(shards / "part0").docids + load_index(shards / "part1").docids)
