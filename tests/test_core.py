"""Encoders, index folders, encode and search on a tiny random-weight BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import __main__ as encode_cli
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index.merge import merge_indexes
from qpr_pyserini.index.store import IndexWriter, load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.mine import __main__ as mine_cli
from qpr_pyserini.model.encoder import DenseEncoder, pool
from qpr_pyserini.presets import available_presets, resolve_encoder
from qpr_pyserini.search import __main__ as search_cli
from qpr_pyserini.search import searcher as search


@pytest.fixture(scope="module")
def model(tiny_encoder: EncoderConfig) -> DenseEncoder:
    return DenseEncoder.load(tiny_encoder)


def test_pooling_handles_left_and_right_padding() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert pool(hidden, right, "cls").flatten().tolist() == [0.0, 4.0]
    assert pool(hidden, right, "last").flatten().tolist() == [2.0, 5.0]
    assert pool(hidden, right, "mean").flatten().tolist() == [1.0, 4.5]
    assert pool(hidden, left, "cls").flatten().tolist() == [1.0, 6.0]
    assert pool(hidden, left, "last").flatten().tolist() == [3.0, 7.0]


def test_embeddings_do_not_depend_on_batching(model: DenseEncoder) -> None:
    texts = ["short", "a much longer text with many more words in it", "medium length text"]
    together = model.embed(texts, 64, batch_size=3)
    alone = np.vstack([model.embed([t], 64, batch_size=1) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_append_eos_and_left_padding(tiny_encoder: EncoderConfig, tiny_bert: Path) -> None:
    from dataclasses import replace

    base = DenseEncoder.load(tiny_encoder)
    with pytest.raises(ValueError, match="no EOS token"):
        DenseEncoder(replace(tiny_encoder, append_eos=True), base.backbone, base.tokenizer)
    base.tokenizer.eos_token = "[SEP]"
    config = replace(tiny_encoder, append_eos=True, padding_side="left", pooling="last")
    encoder = DenseEncoder(config, base.backbone, base.tokenizer)
    batch = encoder.tokenize(["one", "two three four"], max_length=5)
    eos = encoder.tokenizer.eos_token_id
    assert batch.input_ids[:, -1].tolist() == [eos, eos]
    assert batch.attention_mask[0].tolist()[0] == 0  # left padded
    assert batch.input_ids.shape[1] == 5  # truncated to max_length including the EOS


def test_instruction_changes_the_query_vector(model: DenseEncoder) -> None:
    plain, instructed = model.embed_queries(["apple", "apple"], [None, "only red ones"])
    assert not np.allclose(plain, instructed)
    np.testing.assert_allclose(plain, model.embed_queries(["apple"])[0], atol=1e-6)


def test_presets_resolve() -> None:
    assert {"minilm", "promptriever-llama2-7b", "repllama-llama2-7b", "smollm2-135m"} <= set(
        available_presets()
    )
    minilm = resolve_encoder("minilm")
    assert (minilm.pooling, minilm.normalize, minilm.query_max_length) == ("mean", True, 256)
    assert resolve_encoder("minilm", template="instruction-first").template == "instruction-first"
    with pytest.raises(ValueError, match="no such preset"):
        resolve_encoder("no-such-encoder")


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        DenseEncoder.load(EncoderConfig(model=str(tmp_path / "nope")))


def test_encode_writes_a_complete_index(
    tiny_corpus: Path, tmp_path: Path, tiny_encoder: EncoderConfig
) -> None:
    out = encode_corpus(tiny_corpus, tmp_path / "idx", tiny_encoder, batch_size=4, progress=False)
    index = load_index(out)
    assert index.docids == [f"d{i}" for i in range(11)]
    assert index.record["encoder"] == tiny_encoder.to_dict()
    assert index.dimension == 32
    # reopening the recorded encoder gives the same vectors
    again = DenseEncoder.load(resolve_encoder(str(out)))
    docs = [json.loads(line) for line in tiny_corpus.read_text().splitlines()]
    vectors = again.embed_passages([d["text"] for d in docs], [d["title"] for d in docs])
    np.testing.assert_allclose(index.vectors(), vectors, atol=1e-5)


def test_two_shards_merged_equal_one_shot(
    tiny_corpus: Path, tmp_path: Path, tiny_encoder: EncoderConfig
) -> None:
    whole = load_index(
        encode_corpus(tiny_corpus, tmp_path / "whole", tiny_encoder, batch_size=3, progress=False)
    )
    shards = [
        encode_corpus(
            tiny_corpus,
            tmp_path / f"s{i}",
            tiny_encoder,
            batch_size=3,
            shard_id=i,
            shard_num=2,
            progress=False,
        )
        for i in range(2)
    ]
    assert len(load_index(shards[0]).docids) == 5 and len(load_index(shards[1]).docids) == 6
    merged = load_index(merge_indexes(shards, tmp_path / "merged"))
    assert merged.docids == whole.docids
    np.testing.assert_allclose(merged.vectors(), whole.vectors(), atol=1e-6)


def test_merge_refuses_other_encoders(tiny_corpus: Path, tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    from dataclasses import replace

    a = encode_corpus(tiny_corpus, tmp_path / "a", tiny_encoder, shard_id=0, shard_num=2, progress=False)
    b = encode_corpus(
        tiny_corpus,
        tmp_path / "b",
        replace(tiny_encoder, pooling="cls"),
        shard_id=1,
        shard_num=2,
        progress=False,
    )
    with pytest.raises(InputError, match="different encoder"):
        merge_indexes([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_failed_encode_leaves_no_index(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    rows = [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}, {"_id": "a", "text": "dup"}]
    corpus = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError, match=r"bad\.jsonl:3"):
        encode_corpus(corpus, tmp_path / "idx", tiny_encoder, batch_size=1, progress=False)
    assert list(tmp_path.iterdir()) == [corpus]  # neither the index nor a temporary folder


def test_index_writer_refuses_to_clobber(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "something").write_text("x")
    with pytest.raises(InputError, match="--overwrite"):
        IndexWriter(tmp_path / "idx", 4, None)


def test_encode_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"_id": "a", "text": "x"}\n{not json\n')
    assert encode_cli.main(["--corpus", str(bad), "--index", str(tmp_path / "i"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "c.jsonl:2" in err[0]
    assert not (tmp_path / "i").exists()


@pytest.fixture
def built(tiny_corpus: Path, tmp_path: Path, tiny_encoder: EncoderConfig) -> Path:
    return encode_corpus(tiny_corpus, tmp_path / "idx", tiny_encoder, batch_size=4, progress=False)


def test_search_uses_the_recorded_encoder_and_instructions(
    built: Path, tiny_topics: Path, tmp_path: Path
) -> None:
    plain, instructed = tmp_path / "plain.trec", tmp_path / "inst.trec"
    assert (
        search_cli.main(
            [
                "--index",
                str(built),
                "--topics",
                str(tiny_topics),
                "--output",
                str(plain),
                "--hits",
                "5",
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        search_cli.main(
            [
                "--index",
                str(built),
                "--topics",
                str(tiny_topics),
                "--output",
                str(instructed),
                "--hits",
                "5",
                "--instruction-field",
                "inst",
                "--quiet",
            ]
        )
        == 0
    )
    run, run_i = read_run(plain), read_run(instructed)
    assert set(run) == {"q1", "q2", "q3"} and all(len(h) == 5 for h in run.values())
    assert run != run_i
    line = plain.read_text().splitlines()[0].split()
    assert line[1] == "Q0" and line[3] == "1" and line[5] == "qpr"


def test_search_matches_brute_force(built: Path, tiny_topics: Path, tmp_path: Path) -> None:
    index = load_index(built)
    model = DenseEncoder.load(index.encoder)
    search.search_topics(built, tiny_topics, tmp_path / "r.trec", hits=11, progress=False, model=model)
    run = read_run(tmp_path / "r.trec")
    scores = model.embed_queries(["apple fruit"]) @ index.vectors().T
    expected = [index.docids[i] for i in np.argsort(-scores[0], kind="stable")]
    assert sorted(run["q1"], key=run["q1"].get, reverse=True) == expected


def test_rerank_scores_only_the_candidates(built: Path, tiny_topics: Path, tmp_path: Path) -> None:
    candidates = write_jsonl(
        tmp_path / "top_ranked.jsonl", [{"qid": "q1", "pid": ["d3", "d0", "d7"]}, {"qid": "q2", "pid": "d1"}]
    )
    search.search_topics(built, tiny_topics, tmp_path / "r.trec", candidates=candidates, progress=False)
    run = read_run(tmp_path / "r.trec")
    assert set(run["q1"]) == {"d3", "d0", "d7"} and set(run["q2"]) == {"d1"} and "q3" not in run
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"qid": "q1", "pid": "nope"}])
    with pytest.raises(InputError, match="nope"):
        search.search_topics(built, tiny_topics, tmp_path / "r2.trec", candidates=bad, progress=False)
    assert not (tmp_path / "r2.trec").exists()


def test_search_refuses_a_mismatched_encoder(
    built: Path, tiny_topics: Path, tmp_path: Path, tiny_encoder
) -> None:
    from dataclasses import replace

    other = tmp_path / "other.json"
    other.write_text(json.dumps(replace(tiny_encoder, pooling="cls").to_dict()))
    with pytest.raises(InputError, match="different encoder"):
        search.search_topics(built, tiny_topics, tmp_path / "r.trec", encoder=str(other), progress=False)
    assert not (tmp_path / "r.trec").exists()
    # query-side settings (the template) may differ
    search.search_topics(built, tiny_topics, tmp_path / "r.trec", template="instruction-first", progress=False)


def test_search_cli_errors_are_one_line(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = write_jsonl(tmp_path / "t.jsonl", [{"_id": "q1", "text": "ok"}, {"_id": "q2", "text": "  "}])
    assert search_cli.main(["--index", str(built), "--topics", str(topics), "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "t.jsonl:2" in err[0]
    not_an_index = tmp_path / "plain-folder"  # (tmp_path itself holds the index `built`: a folder of shards)
    not_an_index.mkdir()
    assert (
        search_cli.main(["--index", str(not_an_index), "--topics", str(topics), "--output", str(tmp_path / "r")])
        == 2
    )
    assert "not a Pyserini FAISS index" in capsys.readouterr().err


def test_mine_takes_top_k_minus_positives(built: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    from qpr_pyserini.io.training_data import read_training_data

    row = {
        "query_id": "q1",
        "query": "apple fruit",
        "positive_passages": [{"docid": "d0", "title": "", "text": "a"}],
        "negative_passages": [],
    }
    train = write_jsonl(tmp_path / "train.jsonl", [row])
    out = tmp_path / "mined.jsonl"
    assert (
        mine_cli.main(
            [
                "--train-data",
                str(train),
                "--index",
                str(built),
                "--corpus",
                str(tiny_corpus),
                "--output",
                str(out),
                "--depth",
                "5",
                "--keep",
                "3",
            ]
        )
        == 0
    )
    (example,) = read_training_data(out)
    index = load_index(built)
    model = DenseEncoder.load(index.encoder)
    scores = (model.embed_queries(["apple fruit"]) @ index.vectors().T)[0]
    top = [index.docids[i] for i in np.argsort(-scores, kind="stable")[:5] if index.docids[i] != "d0"][:3]
    assert [p.docid for p in example.negatives] == top
    assert all(p.text for p in example.negatives)


def test_mine_checks_its_output_before_any_work(
    built: Path, tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(DenseEncoder, "load", no_model)
    (tmp_path / "out").mkdir()
    argv = ["--train-data", str(tmp_path / "t.jsonl"), "--index", str(built), "--corpus", str(tiny_corpus)]
    assert mine_cli.main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'out'}: is a folder; expected a file path (--output)\n"
