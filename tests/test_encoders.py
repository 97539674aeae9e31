"""The Pyserini encoder classes: one source of truth with a model object, the index check, document vectors,
and ``import qpr_pyserini`` making Pyserini importable offline without loading it eagerly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.search.pyserini_encoders import (
    InstructionDocumentEncoder,
    InstructionQueryEncoder,
    load_query_encoder,
)

QUERIES = ["apple fruit", "kiwi"]
INSTRUCTIONS = ["only red fruit", None]


@pytest.fixture(scope="module")
def model(tiny_encoder: EncoderConfig) -> DenseEncoder:
    return DenseEncoder.load(tiny_encoder)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: EncoderConfig) -> Path:
    folder = tmp_path_factory.mktemp("encoders")
    corpus = write_jsonl(folder / "c.jsonl", [{"_id": f"d{i}", "text": f"fruit {i}"} for i in range(5)])
    return encode_corpus(corpus, folder / "idx", tiny_encoder, progress=False)


def spec_file(folder: Path, config: EncoderConfig) -> str:
    path = folder / f"{config.pooling}-{config.template}.json"
    path.write_text(json.dumps(config.to_dict()))
    return str(path)


# ---------------------------------------------------------------- model object vs. other arguments


@pytest.mark.parametrize("conflict", [{"encoder_dir": "minilm"}, {"tokenizer_name": "bert-base-uncased"}])
def test_query_encoder_model_with_an_encoder_name_is_an_error(model: DenseEncoder, conflict: dict) -> None:
    with pytest.raises(InputError, match=next(iter(conflict))):
        InstructionQueryEncoder(model=model, **conflict)


@pytest.mark.parametrize(
    "settings",
    [{"template": "instructir"}, {"prefix": "query: "}, {"max_length": 4}],
)
def test_query_side_settings_apply_to_a_passed_model(
    tiny_encoder: EncoderConfig, model: DenseEncoder, settings: dict
) -> None:
    named = InstructionQueryEncoder(tiny_encoder, **settings).encode_batch(QUERIES, INSTRUCTIONS)
    given = InstructionQueryEncoder(model=model, **settings).encode_batch(QUERIES, INSTRUCTIONS)
    plain = InstructionQueryEncoder(model=model).encode_batch(QUERIES, INSTRUCTIONS)
    np.testing.assert_allclose(given, named, atol=1e-5)
    assert not np.allclose(given, plain, atol=1e-4)


def test_document_encoder_model_with_a_name_is_an_error(model: DenseEncoder) -> None:
    with pytest.raises(InputError, match="model_name"):
        InstructionDocumentEncoder("minilm", model=model)


# ---------------------------------------------------------------- the index check


def test_load_query_encoder_checks_an_index(
    built: Path, tiny_encoder: EncoderConfig, tmp_path: Path, model: DenseEncoder
) -> None:
    other = spec_file(tmp_path, replace(tiny_encoder, pooling="cls"))
    with pytest.raises(InputError, match="different encoder") as err:
        load_query_encoder(other, index=built)
    assert str(err.value).startswith(f"{built}: ")
    # the index's own encoder, and one that differs only on the query side, are accepted
    assert load_query_encoder(index=built).config == tiny_encoder
    query_side = spec_file(tmp_path, replace(tiny_encoder, template="instructir"))
    assert load_query_encoder(query_side, index=built).config.template == "instructir"
    assert load_query_encoder(model=model, index=built).model is model


# ---------------------------------------------------------------- document encoder


def test_document_encoder_equals_embed_passages(tiny_encoder: EncoderConfig, model: DenseEncoder) -> None:
    texts, titles = ["red apples are sweet", "kiwi is green"], ["Apple", ""]
    encoder = InstructionDocumentEncoder(tiny_encoder)
    expected = model.embed_passages(texts, titles)
    np.testing.assert_allclose(encoder.encode(texts, titles), expected, atol=1e-5)
    assert not np.allclose(encoder.encode(texts), expected, atol=1e-4)  # the title changes the first vector
    np.testing.assert_allclose(encoder.encode(texts), model.embed_passages(texts), atol=1e-5)
    # Pyserini's encode CLI calls encode(**kwargs) with these keywords
    pyserini_call = encoder.encode(texts=texts, titles=titles, fp16=False, max_length=64, add_sep=False)
    np.testing.assert_allclose(pyserini_call, expected, atol=1e-5)
    truncated = encoder.encode(texts=texts, titles=titles, max_length=4)
    np.testing.assert_allclose(truncated, model.embed_passages(texts, titles, max_length=4), atol=1e-5)
    assert (encoder.dimension, encoder.config) == (model.dimension, tiny_encoder)
    assert InstructionDocumentEncoder(model=model).model is model


# ---------------------------------------------------------------- imports


OFFLINE = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env or dict(os.environ)
    )


def test_eval_imports_neither_torch_nor_pyserini() -> None:
    result = python(
        "import sys, qpr_pyserini.eval\n"
        "heavy = sorted(m for m in ('torch', 'pyserini', 'transformers', 'faiss') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.java
def test_import_qpr_pyserini_makes_pyserini_importable_offline() -> None:
    """The import sorter's order: ``import qpr_pyserini`` first, then Pyserini, with the network refused."""
    result = python(
        "import qpr_pyserini\n"
        "from pyserini.search.faiss import FaissSearcher\n"
        "import pyserini.prebuilt_index_info as info\n"
        "print(info.urlopen.__name__, FaissSearcher.__name__)\n",
        OFFLINE,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["offline_tolerant_urlopen", "FaissSearcher"]
    # and without qpr_pyserini the same import fails offline: the test does block the network
    bare = python("import pyserini.prebuilt_index_info\n", OFFLINE)
    assert bare.returncode != 0 and "URLError" in bare.stderr
