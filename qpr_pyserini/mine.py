"""Hard negatives from a dense index: top-k minus the positives (``python -m qpr_pyserini.mine``).

Reads training rows (Tevatron or Promptriever JSONL, see qpr_pyserini.train.data), searches each row's plain
query in the index, and writes the rows back with ``negative_passages`` = the best-ranked documents that are
neither positives nor instruction negatives (after skipping the top ``--skip`` hits, which are the most likely
unjudged positives). Passage texts come from the corpus, streamed, keeping only the mined ids in memory.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .cli import add_encoder_options, run_cli
from .index import load_index
from .io.corpus import iter_corpus
from .io.errors import InputError
from .io.topics import Topic
from .search import BATCHES_PER_ENCODE, query_encoder_for, retrieve
from .train.data import Passage, TrainExample, read_training_data, write_training_data


def mine_negatives(
    examples: list[TrainExample],
    index: str | Path,
    corpus: str | Path,
    *,
    encoder: str | None = None,
    depth: int = 100,
    skip: int = 0,
    keep: int = 30,
    batch_size: int = 64,
    device: str = "cpu",
    backend: str = "torch",
) -> list[TrainExample]:
    """Replace each example's hard negatives with ``keep`` mined ones (ranked ``skip+1 .. depth``)."""
    dense = load_index(index)
    model = query_encoder_for(dense, encoder, None, device, backend=backend)
    topics = [Topic(e.query_id, e.query, {}) for e in examples]
    mined: list[list[str]] = []
    step = batch_size * BATCHES_PER_ENCODE  # several batches per embed call, as search_topics encodes
    for start in range(0, len(topics), step):
        chunk = topics[start : start + step]
        vectors = model.embed_queries([t.query for t in chunk], batch_size=batch_size)
        mined += [[docid for docid, _ in hits] for hits in retrieve(dense, vectors, depth)]
    chosen = []
    for example, ranked in zip(examples, mined, strict=True):
        known = {p.docid for p in example.positives + example.instruction_negatives}
        chosen.append([d for d in ranked[skip:] if d not in known][:keep])
    texts = _passages(corpus, {d for ids in chosen for d in ids})
    return [replace(e, negatives=[texts[d] for d in ids]) for e, ids in zip(examples, chosen, strict=True)]


def _passages(corpus: str | Path, wanted: set[str]) -> dict[str, Passage]:
    found = {d.docid: Passage(d.docid, d.title, d.text) for d in iter_corpus(corpus) if d.docid in wanted}
    missing = wanted - set(found)
    if missing:
        raise InputError(
            str(corpus), f"{len(missing)} indexed doc ids are not in the corpus, e.g. {sorted(missing)[:3]}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qpr_pyserini.mine", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--train-data", required=True, help="training rows (Tevatron/Promptriever JSONL[.gz])"
    )
    parser.add_argument("--index", required=True, help="index folder to search")
    parser.add_argument(
        "--corpus", required=True, help="the corpus the index was built from (for passage texts)"
    )
    parser.add_argument(
        "--output", required=True, help="training JSONL to write, with mined negative_passages"
    )
    parser.add_argument("--depth", type=int, default=100, help="hits searched per query (default 100)")
    parser.add_argument("--skip", type=int, default=0, help="top hits to skip as likely false negatives")
    parser.add_argument("--keep", type=int, default=30, help="negatives kept per row (default 30)")
    add_encoder_options(
        parser,
        encoder_help="query encoder (default: the index's recorded encoder)",
        batch_help="queries",
        batch_size=64,
    )
    args = parser.parse_args(argv)

    def action() -> str:
        examples = read_training_data(args.train_data)
        mined = mine_negatives(
            examples,
            args.index,
            args.corpus,
            encoder=args.encoder,
            depth=args.depth,
            skip=args.skip,
            keep=args.keep,
            batch_size=args.batch_size,
            device=args.device,
            backend=args.backend,
        )
        return f"wrote {write_training_data(args.output, mined)} rows with mined negatives to {args.output}"

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
