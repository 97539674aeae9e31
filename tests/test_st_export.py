"""Encoder folders that sentence-transformers (and so MTEB) loads: ``SentenceTransformer(folder)`` gives our
vectors for queries without instruction (prompt "query") and passages (prompt "document")."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from train_helpers import TEMPLATES, write_rows

from qpr_pyserini.config import CONFIG_FILE, EncoderConfig
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.model.folders import save_sentence_transformers_folder
from qpr_pyserini.presets import resolve_encoder, st_folder
from qpr_pyserini.presets.st_folder import read_st_folder, st_caveats, st_query_prompt

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread each (conftest)

# Queries end with punctuation: Promptriever's template adds '?' to the others, which a prompt cannot do.
QUERIES = [
    "which fruit is red?",
    "a much longer query about rivers, volcanoes and the phases of the moon. " * 3,
]
PASSAGES = ["apples are red", "the nile is the longest river flowing north through africa " * 4]
INSTRUCTION = "Prefer passages written for children."
PREFIXES = {"query_prefix": "query:  ", "passage_prefix": "passage:  "}


def _export(base: EncoderConfig, folder: Path, **settings: object) -> tuple[DenseEncoder, list[str]]:
    """Our encoder (16 tokens a side: the long texts are truncated) and the caveats of its saved folder."""
    config = replace(base, query_max_length=16, passage_max_length=16, **settings)
    encoder = DenseEncoder.load(config)
    return encoder, save_sentence_transformers_folder(encoder, folder)


def _st(folder: Path) -> Any:  # a SentenceTransformer (a test dependency only)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def _assert_same(model: Any, encoder: DenseEncoder, queries: list[str] = QUERIES) -> None:
    np.testing.assert_allclose(
        model.encode(queries, prompt_name="query"), encoder.embed_queries(queries), atol=1e-5
    )
    np.testing.assert_allclose(
        model.encode(PASSAGES, prompt_name="document"), encoder.embed_passages(PASSAGES), atol=1e-5
    )


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("backbone", ["bert", "llama"])
def test_sentence_transformers_gives_our_vectors(
    request: pytest.FixtureRequest, backbone: str, template: str, tmp_path: Path
) -> None:
    encoder, caveats = _export(
        request.getfixturevalue(backbone), tmp_path / "st", template=template, **PREFIXES
    )
    assert (tmp_path / "st" / CONFIG_FILE).is_file()
    assert all("'?'" in caveat for caveat in caveats) and (template == "promptriever") == bool(caveats)
    _assert_same(_st(tmp_path / "st"), encoder)


def test_unnormalised_cls_vectors_are_scored_by_dot_product(bert: EncoderConfig, tmp_path: Path) -> None:
    encoder, caveats = _export(bert, tmp_path / "st", pooling="cls", normalize=False)
    model = _st(tmp_path / "st")
    assert caveats == [] and model.similarity_fn_name == "dot"
    _assert_same(model, encoder)


def test_the_eos_token_comes_from_the_tokenizer_arguments(llama: EncoderConfig, tmp_path: Path) -> None:
    encoder, _ = _export(llama, tmp_path / "st")
    sbert = tmp_path / "st" / "sentence_bert_config.json"
    settings = json.loads(sbert.read_text())
    assert settings["max_seq_length"] == 16 and settings["tokenizer_args"]["add_eos_token"] is True
    _assert_same(_st(tmp_path / "st"), encoder)
    del settings["tokenizer_args"]  # without them sentence-transformers pools the last text token, not EOS
    sbert.write_text(json.dumps(settings))
    without_eos = _st(tmp_path / "st").encode(PASSAGES, prompt_name="document")
    assert not np.allclose(without_eos, encoder.embed_passages(PASSAGES), atol=1e-3)


def test_a_tokenizer_that_cannot_append_eos_is_a_warning(
    llama: EncoderConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(st_folder, "EOS_TOKENIZER_ARGS", ({"add_eos_token": False},))
    with caplog.at_level(logging.WARNING, logger=st_folder.__name__):
        _, caveats = _export(llama, tmp_path / "st")
    assert len(caveats) == 1 and "cannot be told to append its EOS token" in caveats[0]
    assert "cannot be told to append its EOS token" in caplog.text
    settings = json.loads((tmp_path / "st" / "sentence_bert_config.json").read_text())
    assert "add_eos_token" not in settings["tokenizer_args"]


def test_a_question_mark_is_what_promptriever_folders_cannot_add(
    llama: EncoderConfig, tmp_path: Path
) -> None:
    encoder, caveats = _export(llama, tmp_path / "st", template="promptriever", **PREFIXES)
    model = _st(tmp_path / "st")
    plain = ["which fruit is red"]
    assert not np.allclose(model.encode(plain, prompt_name="query"), encoder.embed_queries(plain), atol=1e-3)
    np.testing.assert_allclose(
        model.encode(["which fruit is red?"], prompt_name="query"), encoder.embed_queries(plain), atol=1e-5
    )


@pytest.mark.parametrize("template", TEMPLATES)
def test_instructions_in_sentence_transformers_and_mteb(
    llama: EncoderConfig, template: str, tmp_path: Path
) -> None:
    """Instruction-first templates are fixed prompts (st_query_prompt); "concat" is the query text followed by
    the instruction, which is what MTEB feeds a SentenceTransformer on instruction retrieval tasks."""
    encoder, _ = _export(llama, tmp_path / "st", template=template, **PREFIXES)
    model = _st(tmp_path / "st")
    ours = encoder.embed_queries(QUERIES, [INSTRUCTION] * len(QUERIES))
    with_text = model.encode([f"{q} {INSTRUCTION}" for q in QUERIES], prompt_name="query")
    assert np.allclose(with_text, ours, atol=1e-5) == (template in ("concat", "promptriever"))
    if encoder.template.query_first:
        with pytest.raises(InputError, match="cannot express it"):
            st_query_prompt(encoder.config, INSTRUCTION)
        return
    assert st_query_prompt(encoder.config, "") == "query:  "
    prompt = st_query_prompt(encoder.config, INSTRUCTION)
    np.testing.assert_allclose(model.encode(QUERIES, prompt=prompt), ours, atol=1e-5)


@pytest.mark.parametrize("backbone", ["bert", "llama"])
def test_the_reader_reads_back_what_the_writer_wrote(
    request: pytest.FixtureRequest, backbone: str, tmp_path: Path
) -> None:
    encoder, _ = _export(request.getfixturevalue(backbone), tmp_path / "st", padding_side="left", **PREFIXES)
    (tmp_path / "st" / CONFIG_FILE).unlink()
    read = read_st_folder(tmp_path / "st")
    fields = ("pooling", "normalize", "query_prefix", "passage_prefix", "append_eos", "padding_side")
    assert [getattr(read, f) for f in fields] == [getattr(encoder.config, f) for f in fields]
    assert read.query_max_length == read.passage_max_length == 16


def test_the_reader_refuses_tokenizer_arguments_it_cannot_reproduce(
    bert: EncoderConfig, tmp_path: Path
) -> None:
    _export(bert, tmp_path / "st")
    sbert = tmp_path / "st" / "sentence_bert_config.json"
    settings = json.loads(sbert.read_text())
    for args, message in [({"do_lower_case": True}, "not supported"), ({"add_eos_token": True}, "more than")]:
        sbert.write_text(json.dumps({**settings, "tokenizer_args": args}))  # BERT has no EOS token
        with pytest.raises(InputError, match=message):
            read_st_folder(tmp_path / "st")


def test_caveats_name_lengths_and_query_side_training() -> None:
    config = EncoderConfig(model="m", query_max_length=304, passage_max_length=196)
    assert st_caveats(replace(config, query_max_length=196)) == []
    [lengths] = st_caveats(config)
    assert "196 tokens" in lengths and "our 304" in lengths
    [query_side] = st_caveats(replace(config, passage_max_length=304, passage_encoder={"name": "minilm"}))
    assert "'minilm'" in query_side


@pytest.mark.parametrize(("backbone", "extra"), [("llama", ()), ("bert", ("--lora",))])
def test_trained_folders_and_checkpoints_load_in_sentence_transformers(
    request: pytest.FixtureRequest, backbone: str, extra: tuple[str, ...], tmp_path: Path
) -> None:
    """A full Llama (EOS, last token, instruction-first template) and a LoRA adapter on BERT."""
    from qpr_pyserini.train.__main__ import build_trainer
    from qpr_pyserini.train.arguments import parse_arguments

    base: EncoderConfig = request.getfixturevalue(backbone)
    rows = write_rows(tmp_path / "rows.jsonl")
    out = tmp_path / "out"
    args = [
        *("--encoder", base.model, "--train_data", str(rows), "--output_dir", str(out)),
        *("--group_size", "3", "--per_device_train_batch_size", "6", "--learning_rate", "1e-2"),
        *("--max_steps", "1", "--save_strategy", "steps", "--save_steps", "1", "--disable_tqdm", "true"),
        *extra,
    ]
    trainer = build_trainer(parse_arguments(args))
    trainer.train()
    trainer.save_model()
    trained = trainer.encoder.eval()
    assert not np.allclose(trained.embed_queries(QUERIES), DenseEncoder.load(base).embed_queries(QUERIES))
    for folder in (out, out / "checkpoint-1"):
        _assert_same(_st(folder), trained)
        # our loader still reads qpr_encoder.json first: the same config as without the st files
        config = resolve_encoder(folder)
        assert config.template == base.template and read_st_folder(folder).template == "concat"
        (folder / "modules.json").unlink()
        assert resolve_encoder(folder) == config
