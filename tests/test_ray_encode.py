"""Encoding on a local Ray with two CPU workers: the merged shards are the one-shot index, byte for byte."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_jsonl

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode import __main__ as encode_cli
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.index.merge import merge_indexes
from qpr_pyserini.index.record import INDEX_RECORD
from qpr_pyserini.index.store import load_index

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with two CPU slots; its workers import this checkout and use one thread, as this process."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'qpr_pyserini[ray]')")
    paths = [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="warning",
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}},
    )
    yield
    ray.shutdown()


def test_two_ray_workers_give_the_one_shot_index(
    local_ray: None, tiny_encoder: EncoderConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"_id": f"d{i}", "title": f"T{i}", "text": f"passage {i} " + "word " * (i % 5)} for i in range(21)
    ]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", rows)
    argv = ["--corpus", str(corpus), "--encoder", tiny_encoder.model, "--batch-size", "1", "--quiet"]
    argv += ["--backend", "torch"]  # as encode_corpus below (the CLI's default is auto)
    assert encode_cli.main([*argv, "--index", str(tmp_path / "shards"), "--ray-workers", "2"]) == 0
    shards = sorted((tmp_path / "shards").iterdir())
    assert [s.name for s in shards] == ["shard-0-of-2", "shard-1-of-2"]
    assert [len(load_index(s).docids) for s in shards] == [10, 11]
    assert [json.loads((s / INDEX_RECORD).read_text())["shard"] for s in shards] == [
        {"id": 0, "num": 2},
        {"id": 1, "num": 2},
    ]
    merged = merge_indexes(shards, tmp_path / "merged")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Ray workers (OMP_NUM_THREADS=1): the same kernels, the same bits
    try:
        one_shot = encode_corpus(corpus, tmp_path / "one", tiny_encoder.model, batch_size=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    for name in ("index", "docid"):
        assert (merged / name).read_bytes() == (one_shot / name).read_bytes(), name
    # a shard's bad input comes back from its worker as the one-line error, not a wrapped traceback
    capsys.readouterr()
    assert encode_cli.main([*argv, "--index", str(tmp_path / "shards"), "--ray-workers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'shards' / 'shard-'}"), err
    assert err[0].endswith("index folder exists and is not empty (pass --overwrite to replace it)"), err


def test_without_ray_the_option_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: importing it raises ImportError
    argv = ["--corpus", str(tiny_corpus), "--index", str(tmp_path / "idx"), "--ray-workers", "2", "--quiet"]
    assert encode_cli.main(argv) == 2
    assert (
        capsys.readouterr().err
        == "error: --ray-workers: needs Ray, which is not installed (pip install 'qpr_pyserini[ray]')\n"
    )
    assert encode_cli.main([*argv, "--shard-num", "2"]) == 2
    assert "leave out --shard-id/--shard-num" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]
