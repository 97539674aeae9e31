"""Training rows from a SciFact-stance split (FollowIR layout); see docs/training-data.md for the design.

Each claim gives one row per variant: ``plain`` (the claim alone), ``og``, ``matching`` or ``changed`` (the
claim with that instruction). Relevance comes only from the split's qrels, judged per *(claim text,
instruction)*: positives are the documents judged relevant under the row's instruction, instruction negatives
the claim's evidence (relevant under ``og``) judged non-relevant under it. Claims with identical text share
their judgements and give one row per instruction. A row without a positive is dropped: on SciFact every
``changed`` row is (a claim's evidence has one stance), so ``changed`` is not a default variant.

Run ``python -m qpr_pyserini.train.stance --help`` for the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.qrels import Qrels, read_qrels
from qpr_pyserini.io.topics import Topic, instruction_of, read_topics
from qpr_pyserini.io.training_data import Passage, TrainExample, passages_from

VARIANTS = ("plain", "og", "matching", "changed")
DEFAULT_VARIANTS = ("plain", "og", "matching")
_JUDGED = ("og", "matching", "changed")  # variants with a qrels_<variant>.tsv and an instruction_<variant>

Key = tuple[str, str | None]  # (claim text, instruction or None)


@dataclass
class _Row:
    """A planned row: doc ids only, passages are filled in from the corpus afterwards."""

    query_id: str
    key: Key
    claim_ids: list[str]
    positives: list[str]
    instruction_negatives: list[str]


def build_stance_training_rows(
    stance_dir: Path,
    corpus: Path | None = None,
    *,
    hard_negatives: dict[str, list[str]] | None = None,
    variants: Sequence[str] = DEFAULT_VARIANTS,
) -> list[TrainExample]:
    """Training rows ``<qid>-<variant>`` for the claims of ``stance_dir``, claim by claim in file order.

    ``corpus`` defaults to ``stance_dir/corpus.jsonl``. ``hard_negatives`` maps a row id (``<qid>-<variant>``)
    or a claim id to ranked doc ids; the row keeps them in order minus every document judged for the claim
    or for a claim sharing evidence with it. Without them rows have no hard negatives (mine them first).
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise InputError(
            "--variants", f"must be a non-empty subset of {', '.join(VARIANTS)}, got {list(variants)}"
        )
    stance_dir = Path(stance_dir)
    topics = read_topics(stance_dir / "queries.jsonl")
    qrels = {v: read_qrels(stance_dir / f"qrels_{v}.tsv") for v in _JUDGED}
    judged, evidence = _judgements(topics, qrels)
    rows = _plan(topics, judged, evidence, variants)
    if hard_negatives and not any(
        key in hard_negatives for row in rows for key in (row.query_id, *row.claim_ids)
    ):
        raise InputError(
            "--negatives",
            f"none of its {len(hard_negatives)} query ids is a row id (<qid>-<variant>) or claim id of "
            f"{stance_dir} (its first: {next(iter(hard_negatives))!r}; the first claim: {topics[0].qid!r})",
        )
    excluded = _excluded(evidence)
    mined = {row.query_id: _mined(row, hard_negatives or {}, excluded[row.key[0]]) for row in rows}
    judged_ids = {d for row in rows for d in row.positives + row.instruction_negatives}
    mined_ids = {d for ids in mined.values() for d in ids}
    passages = _passages(corpus or stance_dir / "corpus.jsonl", judged_ids, mined_ids)
    return [
        TrainExample(
            query_id=row.query_id,
            query=row.key[0],
            instruction=row.key[1],
            positives=[passages[d] for d in row.positives],
            negatives=[passages[d] for d in mined[row.query_id]],
            instruction_negatives=[passages[d] for d in row.instruction_negatives],
        )
        for row in rows
    ]


def _judgements(
    topics: list[Topic], qrels: dict[str, Qrels]
) -> tuple[dict[Key, dict[str, int]], dict[str, list[str]]]:
    """Judgements per (claim text, instruction), and each claim text's evidence (relevant under og)."""
    judged: dict[Key, dict[str, int]] = {}
    evidence: dict[str, list[str]] = {}
    for topic in topics:
        text = topic.query.strip()
        og = qrels["og"].get(topic.qid, {})
        docs = evidence.setdefault(text, [])
        docs.extend(d for d, score in og.items() if score > 0 and d not in docs)
        judged.setdefault((text, None), {}).update(og)
        for variant in _JUDGED:
            key = (text, instruction_of(topic, f"instruction_{variant}", None))
            judged.setdefault(key, {}).update(qrels[variant].get(topic.qid, {}))
    return judged, evidence


def _plan(
    topics: list[Topic],
    judged: dict[Key, dict[str, int]],
    evidence: dict[str, list[str]],
    variants: Sequence[str],
) -> list[_Row]:
    """One row per claim and variant, skipping repeated (text, instruction) keys and positive-less rows."""
    claim_ids: dict[str, list[str]] = {}
    for topic in topics:
        claim_ids.setdefault(topic.query.strip(), []).append(topic.qid)
    rows: dict[Key, _Row] = {}
    for topic in topics:
        text = topic.query.strip()
        for variant in variants:
            instruction = (
                None if variant == "plain" else instruction_of(topic, f"instruction_{variant}", None)
            )
            key = (text, instruction)
            scores = judged[key]
            positives = [d for d, score in scores.items() if score > 0]
            if key in rows or not positives:
                continue
            negatives = [d for d in evidence[text] if scores.get(d) == 0]
            rows[key] = _Row(f"{topic.qid}-{variant}", key, claim_ids[text], positives, negatives)
    return list(rows.values())


def _excluded(evidence: dict[str, list[str]]) -> dict[str, set[str]]:
    """Per claim text: its evidence and that of every claim sharing an evidence document with it.

    Claims sharing evidence are often each other's negation, so their other evidence likely bears on the
    claim too; keeping it out of the hard negatives avoids likely false negatives.
    """
    texts_of: dict[str, set[str]] = {}
    for text, docs in evidence.items():
        for doc in docs:
            texts_of.setdefault(doc, set()).add(text)
    return {
        text: {d for doc in docs for other in texts_of[doc] for d in evidence[other]} | set(docs)
        for text, docs in evidence.items()
    }


def _mined(row: _Row, hard_negatives: dict[str, list[str]], excluded: set[str]) -> list[str]:
    """The row's hard negatives: its own list, else its claims' lists, in order, minus ``excluded``."""
    lists = [hard_negatives[row.query_id]] if row.query_id in hard_negatives else []
    lists = lists or [hard_negatives.get(qid, []) for qid in row.claim_ids]
    return list(dict.fromkeys(d for ids in lists for d in ids if d not in excluded))


def _passages(corpus: Path, judged: set[str], mined: set[str]) -> dict[str, Passage]:
    """The needed documents, streamed from the corpus; a missing one is an InputError."""
    needed = judged | mined
    passages = passages_from(corpus, needed)
    missing = sorted(needed - passages.keys(), key=lambda d: (d not in judged, d))
    if missing:
        origin = "judged in the qrels" if missing[0] in judged else "from the hard negatives"
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(str(corpus), f"doc {missing[0]!r} {origin} is not in the corpus{more}")
    return passages
