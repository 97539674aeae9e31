"""Encoding on a Ray cluster (``python -m qpr_pyserini.encode ... --ray-workers N``): one Ray task per shard.

Task I encodes shard I of N (the split of ``--shard-id I --shard-num N``) with :func:`encode_corpus` into
``INDEX/shard-I-of-N``, a complete index folder written atomically by its own IndexWriter. The shards are
searched as they are, or merged with ``python -m qpr_pyserini.index merge --shards INDEX/shard-* --index OUT``,
which gives the index a one-shot encode writes. Every node must see the corpus, the encoder's files and
``INDEX`` at the same paths (a shared file system), and have qpr_pyserini installed. Ray is an optional
dependency (``pip install 'qpr_pyserini[ray]'``), imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.encode.corpus_index import encode_corpus
from qpr_pyserini.io.errors import InputError, check_positive
from qpr_pyserini.presets import resolve_encoder


def shard_folders(index: str | Path, workers: int) -> list[Path]:
    """The shard folders of ``index`` that ``workers`` Ray workers write, in shard order (names sort so)."""
    width = len(str(workers - 1))
    return [Path(index) / f"shard-{i:0{width}d}-of-{workers}" for i in range(workers)]


def encode_with_ray(
    corpus: str | Path,
    index: str | Path,
    encoder: str | EncoderConfig | None = None,
    *,
    workers: int,
    address: str | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    backend: str = "torch",
) -> list[Path]:
    """Encode ``corpus`` into ``workers`` shard indexes under ``index`` on Ray; returns their folders.

    Joins the cluster at ``address`` (else ``$RAY_ADDRESS``, else starts a local Ray). Each task takes one
    GPU with a ``cuda`` device (``auto``: when the cluster has GPUs), else one CPU. The other options are
    :func:`encode_corpus`'s, applied to every shard (``resume`` also skips shards that are complete).
    """
    check_positive(ray_workers=workers)
    config = resolve_encoder(encoder, passage_max_length=max_length)  # once, so every worker gets the same
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray-workers", "needs Ray, which is not installed (pip install 'qpr_pyserini[ray]')"
        ) from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="warning")
    try:
        gpu = device.startswith("cuda") or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
        task = ray.remote(_encode_shard).options(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)
        folders = shard_folders(index, workers)
        options = {
            "encoder": config,
            "batch_size": batch_size,
            "shard_num": workers,
            "device": "cuda" if gpu else device,  # Ray shows a task only its own GPU
            "overwrite": overwrite,
            "resume": resume,
            "progress": False,
            "backend": backend,
        }
        pending = [
            task.remote(str(corpus), str(folder), shard_id=i, **options) for i, folder in enumerate(folders)
        ]
        with tqdm(total=workers, desc="shards", unit="shard", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                _get(ray, done[0])
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
    return folders


def _encode_shard(corpus: str, folder: str, **options: Any) -> str:
    """One Ray task: encode one shard into its folder."""
    return str(encode_corpus(corpus, folder, **options))


def _get(ray: Any, ref: Any) -> Any:
    """A task's result; a task's bad-input error is raised as itself (one line in the CLI), not wrapped."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, InputError | OSError):
            raise err.cause from None
        raise
