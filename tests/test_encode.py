"""encode_corpus: what the index record says, which corpora are refused, and the CLI's help."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import __main__ as encode_cli
from qpr_pyserini.encode import corpus_index as encode
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import DenseEncoder


@pytest.fixture(scope="module")
def model(tiny_encoder: EncoderConfig) -> DenseEncoder:
    return DenseEncoder.load(replace(tiny_encoder, passage_max_length=48, template="instruction-first"))


def test_a_passed_model_is_what_the_record_describes(
    model: DenseEncoder, tiny_corpus: Path, tmp_path: Path
) -> None:
    out = encode_corpus(tiny_corpus, tmp_path / "idx", model=model, progress=False)
    assert load_index(out).record["encoder"] == model.config.to_dict()
    assert load_index(out).encoder == model.config


def test_the_record_has_the_passage_length_actually_used(
    model: DenseEncoder, tiny_corpus: Path, tmp_path: Path
) -> None:
    out = encode_corpus(tiny_corpus, tmp_path / "idx", model=model, max_length=5, progress=False)
    index = load_index(out)
    assert index.encoder == replace(model.config, passage_max_length=5)
    expected = model.embed_passages(["apple fruit number 0 "], ["Apple"], max_length=5)
    np.testing.assert_allclose(index.vectors(np.array([0])), expected, atol=1e-5)


def test_an_encoder_that_conflicts_with_the_passed_model_is_refused(
    model: DenseEncoder, tiny_encoder: EncoderConfig, tiny_corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"passage_max_length.*template|template.*passage_max_length"):
        encode_corpus(tiny_corpus, tmp_path / "idx", tiny_encoder, model=model, progress=False)
    with pytest.raises(InputError, match="minilm"):
        encode_corpus(tiny_corpus, tmp_path / "idx", "minilm", model=model, progress=False)
    assert not (tmp_path / "idx").exists()
    # naming the model's own configuration is no conflict, nor is a length given for both
    out = encode_corpus(
        tiny_corpus, tmp_path / "idx", model.config, model=model, max_length=8, progress=False
    )
    assert load_index(out).encoder.passage_max_length == 8


@pytest.mark.parametrize("text", ["", "\n  \n\n"])
def test_an_empty_corpus_is_an_error_and_writes_nothing(
    text: str, model: DenseEncoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text(text)
    with pytest.raises(InputError, match="no documents"):
        encode_corpus(corpus, tmp_path / "idx", model=model, progress=False)
    assert sorted(tmp_path.iterdir()) == [corpus]
    assert encode_cli.main(["--corpus", str(corpus), "--index", str(tmp_path / "idx"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"error: {corpus}: no documents"
    assert sorted(tmp_path.iterdir()) == [corpus]


def test_a_shard_with_no_documents_is_an_error(model: DenseEncoder, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "x"}, {"_id": "b", "text": "y"}])
    with pytest.raises(InputError, match="shard 0 of 3 would hold no documents"):
        encode_corpus(corpus, tmp_path / "idx", model=model, shard_id=0, shard_num=3, progress=False)
    assert not (tmp_path / "idx").exists()


def test_a_beir_dataset_folder_indexes_only_its_corpus(model: DenseEncoder, tmp_path: Path) -> None:
    beir = tmp_path / "scifact"
    beir.mkdir()
    write_jsonl(beir / "corpus.jsonl", [{"_id": "d1", "title": "", "text": "a document"}])
    write_jsonl(beir / "queries.jsonl", [{"_id": "q1", "text": "a query"}])
    (beir / "qrels").mkdir()
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    out = encode_corpus(beir, tmp_path / "idx", model=model, progress=False)
    assert load_index(out).docids == ["d1"]


def test_help_says_how_a_folder_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        encode_cli.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "only its corpus.jsonl" in help_text


@pytest.mark.parametrize(
    ("option", "value", "where"),
    [("--batch-size", "0", "--batch-size"), ("--shard-id", "2", "--shard-id")],
)
def test_bad_numbers_are_one_line_errors(
    option: str, value: str, where: str, tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--quiet", option, value]
    with pytest.raises(InputError, match=where):
        encode.encode_corpus(
            tiny_corpus,
            tmp_path / "idx",
            batch_size=int(value) if option == "--batch-size" else 32,
            shard_id=int(value) if option == "--shard-id" else 0,
            progress=False,
        )
    assert encode_cli.main(argv) == 2
    assert capsys.readouterr().err.startswith(f"error: {where}: ")
    assert not (tmp_path / "idx").exists()


def test_an_index_is_reused_across_fp32_backends_but_not_lower_precisions(
    tiny_corpus: Path, tiny_encoder: EncoderConfig, tmp_path: Path
) -> None:
    """The reuse rule (benchmark, repro, resume) compares what vectors a backend writes: torch's fp32 index
    serves onnx / openvino, not onnx-int8 (the benchmark CLI's default auto used to refuse a torch index)."""
    from qpr_pyserini.encode import is_index_of

    index = tmp_path / "index"
    encode_corpus(tiny_corpus, index, tiny_encoder, progress=False)
    assert is_index_of(index, tiny_corpus, tiny_encoder, "torch")
    assert is_index_of(index, tiny_corpus, tiny_encoder, "openvino")
    assert not is_index_of(index, tiny_corpus, tiny_encoder, "onnx-int8")
