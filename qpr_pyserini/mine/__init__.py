"""Hard negatives from a dense index: top-k minus the positives (``python -m qpr_pyserini.mine``).

Reads training rows (Tevatron or Promptriever JSONL, see qpr_pyserini.io.training_data), searches each row's plain
query in the index, and writes the rows back with ``negative_passages`` = the best-ranked documents that are
neither positives nor instruction negatives (after skipping the top ``--skip`` hits, which are the most likely
unjudged positives). Passage texts come from the corpus, streamed, keeping only the mined ids in memory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qpr_pyserini.index.store import load_index
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.topics import Topic
from qpr_pyserini.io.training_data import TrainExample, passages_from
from qpr_pyserini.search.query_encoder import query_encoder_for
from qpr_pyserini.search.searcher import encode_topics, retrieve


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
    for _, vectors in encode_topics(model, topics, None, batch_size):
        mined += [[docid for docid, _ in hits] for hits in retrieve(dense, vectors, depth)]
    chosen = []
    for example, ranked in zip(examples, mined, strict=True):
        known = {p.docid for p in example.positives + example.instruction_negatives}
        chosen.append([d for d in ranked[skip:] if d not in known][:keep])
    wanted = {d for ids in chosen for d in ids}
    texts = passages_from(corpus, wanted)
    missing = wanted - texts.keys()
    if missing:
        raise InputError(
            str(corpus), f"{len(missing)} indexed doc ids are not in the corpus, e.g. {sorted(missing)[:3]}"
        )
    return [replace(e, negatives=[texts[d] for d in ids]) for e, ids in zip(examples, chosen, strict=True)]
