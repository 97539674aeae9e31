"""Resumable encoding: a killed encode resumed from its last chunk equals an uninterrupted one, byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import __main__ as encode_cli
from qpr_pyserini.index.record import INDEX_RECORD
from qpr_pyserini.index.store import PROGRESS_FILE, IndexWriter, load_index
from qpr_pyserini.io.errors import InputError

REPO = Path(__file__).resolve().parents[1]
# Encodes with the IndexWriter's add patched to kill the process (SIGKILL: no cleanup runs) after N chunks,
# or resumes and reports how many passages it encoded.
DRIVER = """
import os, sys
from qpr_pyserini import index
from qpr_pyserini.encode import encode_corpus
from qpr_pyserini.model import DenseEncoder
corpus, out, encoder, mode = sys.argv[1:5]
chunks, texts = 0, 0
add, embed = index.IndexWriter.add, DenseEncoder.embed_passages
def add_then_die(self, docids, vectors, **kwargs):
    global chunks
    add(self, docids, vectors, **kwargs)
    chunks += 1
    if mode != "resume" and chunks == int(mode):
        os.kill(os.getpid(), 9)
def counting_embed(self, passages, *args, **kwargs):
    global texts
    texts += len(passages)
    return embed(self, passages, *args, **kwargs)
index.IndexWriter.add, DenseEncoder.embed_passages = add_then_die, counting_embed
encode_corpus(corpus, out, encoder, batch_size=1, progress=False, resume=mode == "resume")
print(texts)
"""


def run_driver(corpus: Path, out: Path, encoder: EncoderConfig, mode: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
    }
    argv = [sys.executable, "-c", DRIVER, str(corpus), str(out), encoder.model, mode]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """50 documents: four chunks of 16 at batch size 1 (the last one short)."""
    rows = [
        {"_id": f"d{i}", "title": f"T{i}", "text": f"passage {i} " + "word " * (i % 7)} for i in range(50)
    ]
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


def test_a_killed_encode_resumes_to_the_uninterrupted_index(
    corpus: Path, tiny_encoder: EncoderConfig, tmp_path: Path
) -> None:
    one_shot = run_driver(corpus, tmp_path / "one", tiny_encoder, "99")
    assert one_shot.returncode == 0, one_shot.stderr[-3000:]
    killed = run_driver(corpus, tmp_path / "two", tiny_encoder, "2")
    assert killed.returncode == -9, killed.stderr[-3000:]
    (partial,) = tmp_path.glob(".two.partial-*")
    assert not (tmp_path / "two").exists() and (partial / PROGRESS_FILE).is_file()
    resumed = run_driver(corpus, tmp_path / "two", tiny_encoder, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert int(resumed.stdout) == 50 - 2 * 16  # only the chunks after the last checkpoint were encoded
    assert not partial.exists()
    for name in ("index", "docid", INDEX_RECORD):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "one", "two"]


def test_resume_rejects_other_settings_and_a_plain_run_discards_the_partial(
    corpus: Path, tiny_encoder: EncoderConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_driver(corpus, tmp_path / "idx", tiny_encoder, "1").returncode == -9
    argv = ["--corpus", str(corpus), "--index", str(tmp_path / "idx"), "--encoder", tiny_encoder.model]
    argv += ["--backend", "torch"]  # the driver's (encode_corpus's default); the CLI's default is auto
    assert encode_cli.main([*argv, "--quiet", "--resume", "--batch-size", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume" in err[0] and "batch_size" in err[0], err
    (partial,) = tmp_path.glob(".idx.partial-*")
    assert encode_cli.main([*argv, "--quiet", "--batch-size", "2"]) == 0  # no --resume: starts over
    assert not partial.exists() and len(load_index(tmp_path / "idx").docids) == 50


def test_resume_keeps_a_complete_index_and_starts_afresh_without_a_partial(
    corpus: Path, tiny_encoder: EncoderConfig, tmp_path: Path
) -> None:
    argv = [
        "--corpus",
        str(corpus),
        "--index",
        str(tmp_path / "idx"),
        "--encoder",
        tiny_encoder.model,
        "--quiet",
    ]
    assert encode_cli.main([*argv, "--resume"]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").iterdir()}
    assert encode_cli.main([*argv, "--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "idx").iterdir()} == before


def test_the_streamed_index_file_is_what_faiss_writes(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    with IndexWriter(tmp_path / "idx", 5, None) as writer:
        writer.add([f"d{i}" for i in range(4)], vectors[:4])
        writer.add([f"d{i}" for i in range(4, 7)], vectors[4:])
    flat = faiss.IndexFlatIP(5)
    flat.add(vectors)
    assert (tmp_path / "idx" / "index").read_bytes() == faiss.serialize_index(flat).tobytes()
    np.testing.assert_array_equal(load_index(tmp_path / "idx").vectors(), vectors)


def test_an_interrupt_keeps_the_partial_for_resume_and_bad_input_does_not(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), IndexWriter(tmp_path / "a", 2, None) as writer:
        writer.add(["x"], np.ones((1, 2), dtype=np.float32))
        raise KeyboardInterrupt
    (partial,) = tmp_path.glob(".a.partial-*")
    with IndexWriter(tmp_path / "a", 2, None, resume=True) as writer:
        assert writer.count == 1
        writer.add(["y"], np.zeros((1, 2), dtype=np.float32))
    assert load_index(tmp_path / "a").docids == ["x", "y"] and not partial.exists()
    with pytest.raises(InputError), IndexWriter(tmp_path / "b", 2, None) as writer:
        raise InputError("corpus", "bad row")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_resume_refuses_a_corpus_whose_encoded_part_changed(
    corpus: Path, tiny_encoder: EncoderConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same path and line count, other documents: resuming would mix two corpora in one index."""
    original = corpus.read_bytes()
    assert run_driver(corpus, tmp_path / "idx", tiny_encoder, "1").returncode == -9
    write_jsonl(corpus, [{"_id": f"e{i}", "title": "", "text": f"other {i}"} for i in range(50)])
    argv = ["--corpus", str(corpus), "--index", str(tmp_path / "idx"), "--encoder", tiny_encoder.model]
    argv += ["--backend", "torch"]  # the driver's (encode_corpus's default); the CLI's default is auto
    assert encode_cli.main([*argv, "--quiet", "--resume", "--batch-size", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume" in err[0] and "first 16 documents" in err[0], err
    (partial,) = tmp_path.glob(".idx.partial-*")  # kept: the original corpus can still resume it
    assert not (tmp_path / "idx").exists()
    corpus.write_bytes(original)
    resumed = run_driver(corpus, tmp_path / "idx", tiny_encoder, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert int(resumed.stdout) == 50 - 16 and not partial.exists()
    assert load_index(tmp_path / "idx").docids == [f"d{i}" for i in range(50)]
