"""Inference backends (qpr_pyserini.model.backends): ONNX Runtime and OpenVINO give torch's vectors and rankings."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from qpr_pyserini import search
from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import __main__ as encode_cli
from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.runs import read_run
from qpr_pyserini.model import backends
from qpr_pyserini.model import encoder as modeling
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.search import __main__ as search_cli

WORDS = (
    "apple river piano volcano coffee moon fibre magma scales beans phases north ash lava keyboard".split()
)


def needs_extra(backend: str) -> None:
    """Skip, naming the extra, when the backend's packages are not installed."""
    missing = [m for m in backends.EXTRAS[backend] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"backend {backend} needs {', '.join(missing)} (pip install 'qpr_pyserini[{backend}]')")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Exports go to a fresh cache per test."""
    monkeypatch.setenv(backends.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def texts(count: int) -> list[str]:
    """Texts of 1 to 40 words, so that batches pad (and some reach the 64-token limit)."""
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 41)))) for _ in range(count)]


def top10(queries: np.ndarray, passages: np.ndarray) -> list[list[int]]:
    return [list(row) for row in np.argsort(-(queries @ passages.T), axis=1, kind="stable")[:, :10]]


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    """A tiny Llama with last-token pooling after an appended EOS, padded on the left."""
    from train_helpers import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"), padding_side="left")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
@pytest.mark.parametrize("kind", ["tiny_encoder", "tiny_decoder"])
def test_fp32_backends_give_torch_vectors_and_top10s(
    kind: str, backend: str, request: pytest.FixtureRequest
) -> None:
    needs_extra(backend)
    config = request.getfixturevalue(kind)
    torch_model = DenseEncoder.load(config)
    exported = DenseEncoder.load(config, backend=backend)
    assert exported.backend == backend and exported.runner is not None
    attention = exported.backbone.config._attn_implementation
    assert attention == torch_model.backbone.config._attn_implementation  # restored after the export
    passages, queries = texts(60), texts(12)
    expected = torch_model.embed_passages(passages, batch_size=7)
    got = exported.embed_passages(passages, batch_size=7)
    cosine = (expected * got).sum(1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 1 - 1e-4
    expected_q, got_q = torch_model.embed_queries(queries), exported.embed_queries(queries)
    assert top10(got_q, got) == top10(expected_q, expected)


def never_export(*args: object) -> None:
    raise AssertionError("exported again")


def test_a_cached_export_is_loaded_without_building_the_torch_backbone(
    tiny_encoder: EncoderConfig, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_extra("onnx")
    first = DenseEncoder.load(tiny_encoder, backend="onnx")
    assert len(list(cache.glob("onnx/*/model.onnx"))) == 1
    monkeypatch.setattr(backends, "_export", never_export)
    monkeypatch.setattr(modeling, "_load_backbone", lambda *a: pytest.fail("built the torch backbone"))
    again = DenseEncoder.load(tiny_encoder, backend="onnx")
    assert (again.dimension, again.device.type, again.dtype) == (first.dimension, "cpu", "float32")
    assert np.array_equal(again.embed_passages(texts(9)), first.embed_passages(texts(9)))
    reconfigured = search.with_settings(again, template="instruction-first")  # still deferred
    assert reconfigured.embed_queries(["q"], ["an instruction"]).shape == (1, first.dimension)


def test_the_deferred_backbone_is_built_for_a_gradient_pass(
    tiny_encoder: EncoderConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_extra("onnx")
    DenseEncoder.load(tiny_encoder, backend="onnx")
    model = DenseEncoder.load(tiny_encoder, backend="onnx")  # from the cache: backbone deferred
    assert "backbone" not in model._modules
    batch = model.tokenize(texts(3), max_length=32)
    model.train()
    model(batch).sum().backward()
    assert model.backbone.training and model.backbone.embeddings.word_embeddings.weight.grad is not None
    assert list(model.parameters())  # registered as a submodule


def test_an_export_is_keyed_by_the_folder_files_and_by_weights_in_memory(
    tiny_encoder: EncoderConfig, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs_extra("onnx")
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_encoder.model, folder)
    config = replace(tiny_encoder, model=str(folder))
    model = DenseEncoder.load(config, backend="onnx")
    with torch.no_grad():  # the same weights changed in memory (as training would): a new export
        model.backbone.encoder.layer[0].output.dense.bias.add_(0.5)
    model.use_backend("onnx")  # keyed by the weights in memory
    exported = backends.export_path(backends.loaded_weights_key(model.backbone))
    assert exported.is_file() and len(list(cache.glob("onnx/*/model.onnx"))) == 2
    model.backbone.save_pretrained(folder)  # ...and saved over the folder's weights: the folder key follows
    monkeypatch.setattr(backends, "_export", never_export)
    with pytest.raises(AssertionError, match="exported again"):
        DenseEncoder.load(config, backend="onnx")
    assert backends.export_path(backends.loaded_weights_key(model.backbone)) == exported  # same in-memory key


def test_training_passes_run_the_torch_backbone(tiny_encoder: EncoderConfig) -> None:
    needs_extra("onnx")
    model = DenseEncoder.load(tiny_encoder, backend="onnx")
    batch = model.tokenize(texts(3), max_length=32)
    model(batch).sum().backward()
    assert model.backbone.embeddings.word_embeddings.weight.grad is not None


def test_openvino_bf16_is_an_approximation_of_fp32(tiny_encoder: EncoderConfig) -> None:
    needs_extra("openvino-bf16")
    passages = texts(30)
    fp32 = DenseEncoder.load(tiny_encoder).embed_passages(passages)
    bf16 = DenseEncoder.load(tiny_encoder, backend="openvino-bf16").embed_passages(passages)
    assert (fp32 * bf16).sum(1).min() > 0.99  # both L2-normalised (equal where the CPU has no bf16 units)


def test_int8_is_an_approximation_of_fp32(tiny_encoder: EncoderConfig) -> None:
    needs_extra("onnx-int8")
    passages = texts(30)
    fp32 = DenseEncoder.load(tiny_encoder).embed_passages(passages)
    int8 = DenseEncoder.load(tiny_encoder, backend="onnx-int8").embed_passages(passages)
    cosine = (fp32 * int8).sum(1)  # both L2-normalised
    assert not np.allclose(fp32, int8, atol=1e-4)
    assert cosine.min() > 0.95


def test_a_missing_extra_names_what_to_install(
    tiny_encoder: EncoderConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ValueError, match=r"--backend: openvino needs openvino and onnx: pip install"):
        DenseEncoder.load(tiny_encoder, backend="openvino")


def test_non_float32_weights_are_refused(tiny_encoder: EncoderConfig) -> None:
    needs_extra("onnx")
    with pytest.raises(ValueError, match="--backend: onnx exports float32 weights"):
        DenseEncoder.load(replace(tiny_encoder, dtype="bfloat16"), backend="onnx")


def test_an_unknown_backend_is_refused(tiny_encoder: EncoderConfig) -> None:
    with pytest.raises(ValueError, match="--backend: 'tensorrt': choose one of torch, onnx"):
        DenseEncoder.load(tiny_encoder).use_backend("tensorrt")


def test_encode_and_search_clis_take_the_backend(
    tiny_bert: Path, tiny_corpus: Path, tiny_topics: Path, tmp_path: Path
) -> None:
    needs_extra("onnx")
    runs = {}
    for backend in ("torch", "onnx"):
        index, run = tmp_path / f"index-{backend}", tmp_path / f"{backend}.trec"
        common = ["--encoder", str(tiny_bert), "--backend", backend, "--quiet"]
        assert encode_cli.main(["--corpus", str(tiny_corpus), "--index", str(index), *common]) == 0
        assert json.loads((index / "qpr_index.json").read_text())["backend"] == backend
        args = ["--index", str(index), "--topics", str(tiny_topics), "--output", str(run), "--hits", "5"]
        assert search_cli.main([*args, *common]) == 0
        runs[backend] = read_run(run)
    assert {q: list(r) for q, r in runs["onnx"].items()} == {q: list(r) for q, r in runs["torch"].items()}
    vectors = {b: load_index(tmp_path / f"index-{b}").vectors() for b in runs}
    assert np.abs(vectors["onnx"] - vectors["torch"]).max() < 1e-4


def test_a_passed_model_keeps_its_backend_when_search_changes_its_template(tiny_encoder: EncoderConfig) -> None:
    needs_extra("onnx")
    model = DenseEncoder.load(tiny_encoder, backend="onnx")
    changed = search.with_settings(model, template="instruction-first")
    assert changed.config.template == "instruction-first"
    assert (changed.backend, changed.runner) == ("onnx", model.runner)
