"""Corpus -> Pyserini FAISS index (``python -m qpr_pyserini.encode``), streaming and atomic."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .cli import add_encoder_options, add_output_options, run_cli
from .config import EncoderConfig
from .index import IndexWriter
from .index_record import read_index_record
from .io.corpus import Document, count_documents, iter_corpus_shard, shard_rows
from .io.errors import InputError
from .modeling import DenseEncoder
from .presets import DEFAULT_ENCODER, available_presets, resolve_encoder

log = logging.getLogger(__name__)


def encode_corpus(
    corpus: str | Path,
    index: str | Path,
    encoder: str | EncoderConfig | None = None,
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    shard_id: int = 0,
    shard_num: int = 1,
    device: str = "cpu",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    model: DenseEncoder | None = None,
    backend: str = "torch",
) -> Path:
    """Encode ``corpus`` (BEIR/Pyserini JSONL, a folder of them, or ``irds:<id>``) into the index folder ``index``.

    The encoder is ``encoder`` (default: the ``minilm`` preset), or ``model`` if given: then ``encoder`` may be
    left out, and if given must equal ``model.config``. ``max_length`` overrides the passage length either way.
    The index records exactly the configuration that encoded it. Documents are read and encoded
    ``batch_size`` at a time, in chunks of ``16 * batch_size`` written straight to the index file, so memory
    does not grow with the corpus. The folder appears only once complete. Returns its path.

    ``resume`` continues a run of the same settings (encoder, corpus, shard, batch size) that was killed or
    interrupted, after its last complete chunk; the result is byte for byte what one uninterrupted run writes.
    Without such a run it starts afresh, and if the index is already complete it returns it untouched.
    ``backend`` (see qpr_pyserini.backends) applies to the model loaded here.
    """
    if batch_size < 1:
        raise InputError("--batch-size", f"must be at least 1, got {batch_size}")
    config = _encoder_config(encoder, max_length, model)
    if config.passage_encoder is not None:
        log.warning(
            "%s was trained query-side against a fixed index; encoding passages with it uses the trained "
            "backbone, not the passage encoder it was trained against (%s)",
            config.name or config.model,
            config.passage_encoder.get("name") or config.passage_encoder.get("model"),
        )
    documents = iter_corpus_shard(corpus, shard_id, shard_num)
    total = count_documents(corpus)
    shard = {"id": shard_id, "num": shard_num} if shard_num > 1 else None
    extra = {"corpus": str(corpus), "shard": shard, "backend": model.backend if model is not None else backend}
    if resume and _is_complete(index, config, extra):
        log.warning("%s is already complete; nothing to resume", index)
        return Path(index)
    model = model or DenseEncoder.load(config, device, backend)
    with IndexWriter(
        index,
        model.dimension,
        config,
        overwrite=overwrite,
        extra=extra,
        resume=resume,
        resume_key={"batch_size": batch_size, "corpus_documents": total},
    ) as writer:
        expected = None if total is None else len(shard_rows(total, shard_id, shard_num))
        bar = tqdm(
            total=expected,
            initial=writer.count,
            desc=f"encoding {Path(str(corpus)).name}",
            unit="doc",
            disable=not progress,
        )
        with bar:
            # Chunks of many batches let the encoder group passages of similar length (see DenseEncoder.embed);
            # each chunk is a checkpoint of the writer, so a resumed run skips the chunks it already holds.
            for batch in _batches(itertools.islice(documents, writer.count, None), batch_size * 16):
                texts, titles = [d.text for d in batch], [d.title for d in batch]
                vectors = model.embed_passages(
                    texts, titles, batch_size=batch_size, max_length=config.passage_max_length
                )
                try:
                    writer.add([d.docid for d in batch], vectors)
                except ValueError as err:
                    raise InputError(str(corpus), str(err)) from err
                bar.update(len(batch))
    return Path(index)


def _encoder_config(
    encoder: str | EncoderConfig | None, max_length: int | None, model: DenseEncoder | None
) -> EncoderConfig:
    """What will encode: the named encoder, or the passed model's configuration; ``max_length`` applied."""
    if model is None:
        return resolve_encoder(encoder, passage_max_length=max_length)
    actual = resolve_encoder(model.config, passage_max_length=max_length)
    if encoder is not None:
        named = resolve_encoder(encoder, passage_max_length=max_length).to_dict()
        differing = [name for name, value in actual.to_dict().items() if named[name] != value]
        if differing:
            raise InputError(
                "encoder",
                f"{encoder if isinstance(encoder, str) else 'the configuration given'} differs from the passed "
                f"model's in {', '.join(differing)}; leave it out to encode with the model",
            )
    return actual


def _is_complete(index: str | Path, config: EncoderConfig, extra: dict[str, Any]) -> bool:
    """Whether ``index`` is a finished index of this encoder, corpus and shard."""
    record = read_index_record(index) if Path(index).is_dir() else None
    return (
        record is not None
        and record.get("encoder") == config.to_dict()
        and all(record.get(key) == value for key, value in extra.items())
    )


def _batches(documents: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while batch := list(itertools.islice(documents, size)):
        yield batch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qpr_pyserini.encode",
        description="Encode a corpus into a Pyserini FAISS index folder (index + docid + qpr_index.json). "
        "Pyserini's FaissSearcher loads the result; qpr_pyserini.search reads the recorded encoder.",
    )
    parser.add_argument(
        "--corpus",
        required=True,
        help="BEIR corpus.jsonl (_id,title,text), Pyserini JSONL (id,contents), a BEIR dataset folder "
        "(only its corpus.jsonl[.gz] is read), another folder (all its .jsonl[.gz] files, in name order), "
        "or irds:<ir_datasets id>",
    )
    parser.add_argument("--index", required=True, help="output index folder (written atomically)")
    parser.add_argument("--max-length", type=int, help="passage max tokens (default: the encoder's)")
    parser.add_argument(
        "--shard-id", type=int, default=0, help="which shard of the corpus to encode (0-based)"
    )
    parser.add_argument(
        "--shard-num",
        type=int,
        default=1,
        help="number of shards; merge them with 'python -m qpr_pyserini.index merge'",
    )
    add_encoder_options(
        parser,
        encoder_help=f"preset name, preset JSON, encoder or model folder (default: {DEFAULT_ENCODER}; "
        f"presets: {', '.join(available_presets())})",
        batch_help="passages",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a run of the same settings that was killed or interrupted, after its last complete "
        "chunk (16 x --batch-size documents); without one, start afresh; an index already complete is kept",
    )
    ray = parser.add_argument_group("ray (see docs/scale-encoding.md)")
    ray.add_argument(
        "--ray-workers",
        type=int,
        help="encode on a Ray cluster with N workers (one per GPU with --device cuda, else one per CPU): "
        "--index becomes a folder of N shard indexes shard-I-of-N, to search as shards or merge",
    )
    ray.add_argument(
        "--ray-address",
        help="address of a running Ray cluster (default: $RAY_ADDRESS, else a local Ray on this machine)",
    )
    add_output_options(parser, overwrite="replace an existing index folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def action() -> str:
        options = {
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "device": args.device,
            "overwrite": args.overwrite,
            "resume": args.resume,
            "progress": not args.quiet,
            "backend": args.backend,
        }
        if args.ray_workers is not None:
            if args.shard_num != 1 or args.shard_id != 0:
                raise InputError(
                    "--ray-workers", "splits the corpus itself: leave out --shard-id/--shard-num"
                )
            from .distributed_encode import encode_with_ray  # imported only here: ray is an optional extra

            shards = encode_with_ray(
                args.corpus,
                args.index,
                args.encoder or DEFAULT_ENCODER,
                workers=args.ray_workers,
                address=args.ray_address,
                **options,
            )
            return f"wrote {len(shards)} shards to {args.index}"
        out = encode_corpus(
            args.corpus,
            args.index,
            args.encoder or DEFAULT_ENCODER,
            shard_id=args.shard_id,
            shard_num=args.shard_num,
            **options,
        )
        return f"wrote {out}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
