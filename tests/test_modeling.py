"""The model layer: the text pipeline on its own, position limits and devices as clear input errors."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import write_rows

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import __main__ as encode_cli
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import DenseEncoder, resolve_device
from qpr_pyserini.model.text import TextPipeline
from qpr_pyserini.presets import resolve_encoder

QUERIES = ["apple fruit", "longest river?"]
INSTRUCTIONS = ["only red ones", None]


@pytest.fixture(scope="module")
def model(tiny_encoder: EncoderConfig) -> DenseEncoder:
    return DenseEncoder.load(tiny_encoder)


def test_text_pipeline_works_without_a_model(tiny_encoder: EncoderConfig, model: DenseEncoder) -> None:
    text = TextPipeline.load(replace(tiny_encoder, query_prefix="q: ", template="instruction-first"))
    assert not any(isinstance(v, torch.nn.Module) for v in vars(text).values())
    formatted = text.format_queries(QUERIES, INSTRUCTIONS)
    assert [f.text for f in formatted] == [
        "q: Instruct: only red ones\nQuery: apple fruit",
        "q: longest river?",
    ]
    assert [f.query for f in formatted] == QUERIES
    spans = [(f.query_start, f.query_end) for f in formatted]
    batch = text.tokenize([f.text for f in formatted], 64, spans)
    assert batch.span_mask is not None and batch.span_mask.shape == batch.input_ids.shape
    assert len(pickle.dumps(text)) < 2_000_000  # a tokenizer, not a model's weights
    # DenseEncoder's text side is such a pipeline: same texts, same ids
    same = model.text.tokenize(model.text.format_passages(["a b", "c"], ["T", ""]), 64)
    ours = TextPipeline.load(model.config).tokenize(text.format_passages(["a b", "c"], ["T", ""]), 64)
    assert torch.equal(same.input_ids, ours.input_ids)
    assert model.tokenizer is model.text.tokenizer and model.template is model.text.template


def test_group_collator_holds_text_only(model: DenseEncoder, tmp_path: Path) -> None:
    from qpr_pyserini.io.training_data import read_training_data
    from qpr_pyserini.train.data import GroupSampler
    from qpr_pyserini.train.trainer import GroupCollator

    groups = GroupSampler(read_training_data(write_rows(tmp_path / "rows.jsonl")), group_size=2, seed=0)
    collator = GroupCollator(model.text, originals=True)
    batch = collator([groups[0], groups[1]])
    assert set(batch) == {"query", "has_instruction", "original", "passage"}
    assert not any(isinstance(v, torch.nn.Module) for v in vars(collator).values())


def test_max_length_above_the_position_limit_is_an_input_error(
    tiny_encoder: EncoderConfig, model: DenseEncoder
) -> None:
    assert model.max_positions == 128
    with pytest.raises(InputError, match=r"position limit .*\(128 tokens\)"):
        model.embed(["short"], 100000)
    with pytest.raises(InputError, match="passage_max_length: 100000 tokens is above"):
        DenseEncoder(replace(tiny_encoder, passage_max_length=100000), model.backbone, model.tokenizer)
    np.testing.assert_equal(model.embed(["short"], 128).shape, (1, 32))


def test_minilm_refuses_lengths_above_512() -> None:
    with pytest.raises(InputError, match=r"\(512 tokens\)"):
        DenseEncoder.load(resolve_encoder("minilm", passage_max_length=100000))


def test_encode_cli_with_too_long_max_length_fails_cleanly(
    tiny_bert: Path, tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "idx"
    argv = ["--corpus", str(tiny_corpus), "--index", str(index), "--encoder", str(tiny_bert), "--quiet"]
    assert encode_cli.main([*argv, "--max-length", "100000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "128" in err
    assert not index.exists()


@pytest.mark.parametrize("device", ["gpu0", "cuda:x", "banana"])
def test_unknown_device_names_the_accepted_forms(device: str) -> None:
    with pytest.raises(InputError, match=r"--device: .* use auto, cpu, cuda, cuda:N"):
        resolve_device(device)


def test_device_cli_error_is_one_line(
    tiny_bert: Path, tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--encoder", str(tiny_bert)]
    assert encode_cli.main([*argv, "--device", "gpu0", "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("error: --device: 'gpu0'")
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None).type in ("cpu", "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no CUDA GPU"):
        resolve_device("cuda:0")


def test_embed_batches_by_token_count_not_characters(
    model: DenseEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long words split into many tokens: character length and token count disagree on the order.
    texts = ["a b c d e f g h i j k l", "pneumonoultramicroscopic", "x y z", "antidisestablishmentarian words"]
    counts = [len(row) for row in model.text.token_rows(texts, 64)[0]]
    assert sorted(range(4), key=lambda i: -len(texts[i])) != sorted(range(4), key=lambda i: -counts[i])
    widths = []
    forward = model.hidden_states
    monkeypatch.setattr(model, "hidden_states", lambda batch: widths.append(batch.input_ids.shape[1]) or forward(batch))
    vectors = model.embed(texts, max_length=64, batch_size=2)
    ranked = sorted(counts, reverse=True)
    assert widths == [ranked[0], ranked[2]]  # each batch pads only to its own longest
    one_by_one = np.stack([model.embed([t], max_length=64)[0] for t in texts])
    assert np.allclose(vectors, one_by_one, atol=1e-5)


def test_gguf_loading_shows_no_de_quantizing_bar(
    tiny_encoder: EncoderConfig, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """transformers' GGUF loader draws its own tqdm bar (``--quiet`` did not reach it): it is silenced for the
    load (simulated here: the real GGUF model takes ~20 s to de-quantize) and restored after."""
    from transformers import AutoModel
    from transformers import modeling_gguf_pytorch_utils as gguf

    from qpr_pyserini.model.encoder import _load_backbone

    load = AutoModel.from_pretrained
    original = gguf.tqdm

    def with_bar(path: str, **kwargs: object) -> object:
        assert kwargs.pop("gguf_file") == "model.gguf"
        for _ in gguf.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        return load(path, **kwargs)

    monkeypatch.setattr(AutoModel, "from_pretrained", with_bar)
    capfd.readouterr()
    _load_backbone(replace(tiny_encoder, gguf_file="model.gguf"), tiny_encoder.model)
    assert "de-quantizing" not in capfd.readouterr().err
    assert gguf.tqdm is original
