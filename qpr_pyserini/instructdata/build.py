"""Build the SciFact attribute-instruction set: FollowIR-layout dev/test splits and Promptriever training rows.

For a topic (a title word, see :mod:`.topics`) and an attribute (see :mod:`.attributes`), the on-topic documents
split into those with the attribute and those without. An evaluation query is the topic word with two
instructions: ``instruction_og`` admits every on-topic document, ``instruction_changed`` admits only one side
("only X" or "exclude X"), so the other side's documents turn non-relevant (what p-MRR measures). Each topic x
attribute pair gives one query per polarity. Training rows carry one polarity's instruction, that side as
positives and the other side as ``new_negatives`` (Promptriever's instruction negatives), plus one plain row per
topic (the topic word alone, every on-topic document positive). See docs/instruction-data.md.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qpr_pyserini.instructdata.attributes import (
    ATTRIBUTES,
    BY_NAME,
    ORIGINAL,
    POLARITIES,
    SPLITS,
    instructions,
    label_documents,
)
from qpr_pyserini.instructdata.topics import MAX_TITLES, MIN_TITLES, SubjectTopic, find_topics
from qpr_pyserini.io.corpus import Document, iter_corpus
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.training_data import Passage, TrainExample, write_training_data

FRACTIONS = {"train": 0.65, "dev": 0.15, "test": 0.20}  # of the topics
HELD_OUT = {"dev": "pediatric", "test": "review"}  # attribute seen only in that split
MIN_EACH_SIDE = {"train": 1, "dev": 2, "test": 2}  # on-topic documents with and without the attribute
HARD_NEGATIVES = 16


@dataclass(frozen=True)
class Pair:
    """A topic crossed with an attribute: its on-topic documents with (``has``) and without (``lacks``) it."""

    topic: SubjectTopic
    attribute: str
    has: frozenset[str]
    lacks: frozenset[str]

    def sides(self, polarity: str) -> tuple[frozenset[str], frozenset[str]]:
        """(relevant, violating) on-topic documents under "``polarity`` ``attribute``"."""
        return (self.has, self.lacks) if polarity == "only" else (self.lacks, self.has)


def split_topics(topics: Sequence[SubjectTopic], seed: int) -> dict[str, list[SubjectTopic]]:
    """Disjoint train / dev / test topic lists (``FRACTIONS``), shuffled by ``seed``, each sorted by word."""
    order = sorted(topics, key=lambda t: t.word)
    random.Random(seed).shuffle(order)
    n_train = round(FRACTIONS["train"] * len(order))
    n_dev = round(FRACTIONS["dev"] * len(order))
    parts = {"train": order[:n_train], "dev": order[n_train : n_train + n_dev], "test": order[n_train + n_dev :]}
    return {split: sorted(part, key=lambda t: t.word) for split, part in parts.items()}


def split_attributes(split: str) -> list[str]:
    """The attributes a split uses: those held out by no split, plus the split's own held-out one."""
    shared = [a.name for a in ATTRIBUTES if a.name not in HELD_OUT.values()]
    return shared + ([HELD_OUT[split]] if split in HELD_OUT else [])


def pairs_of(topics: Iterable[SubjectTopic], labels: dict[str, set[str]], split: str) -> list[Pair]:
    """The split's topic x attribute pairs with at least ``MIN_EACH_SIDE[split]`` documents on each side."""
    least = MIN_EACH_SIDE[split]
    pairs = []
    for topic in topics:
        for name in split_attributes(split):
            has, lacks = topic.on_topic & labels[name], topic.on_topic - labels[name]
            if len(has) >= least and len(lacks) >= least:
                pairs.append(Pair(topic, name, frozenset(has), frozenset(lacks)))
    return pairs


def write_eval_split(folder: Path, split: str, pairs: Sequence[Pair], corpus: Path) -> int:
    """queries.jsonl, qrels_{og,changed,topic}.tsv and a corpus.jsonl link in FollowIR layout; returns #queries."""
    folder.mkdir(parents=True)
    held_out = HELD_OUT[split]
    queries, og, changed, topic_qrels = [], [], [], []
    for pair in pairs:
        for polarity in POLARITIES:
            qid = f"{pair.topic.word}-{pair.attribute}-{polarity}"
            relevant, violating = pair.sides(polarity)
            queries.append(
                {
                    "_id": qid,
                    "text": pair.topic.word,
                    "instruction_og": ORIGINAL[split],
                    "instruction_changed": instructions(BY_NAME[pair.attribute], split, polarity)[0],
                    "topic": pair.topic.word,
                    "attribute": pair.attribute,
                    "polarity": polarity,
                    "attribute_seen": "no" if pair.attribute == held_out else "yes",
                }
            )
            on_topic = sorted(pair.topic.on_topic)
            og += [(qid, d, 1) for d in on_topic]
            topic_qrels += [(qid, d, 1) for d in on_topic]
            changed += [(qid, d, int(d in relevant)) for d in on_topic]
            assert len(relevant) >= MIN_EACH_SIDE[split] and violating
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    for name, rows in (("og", og), ("changed", changed), ("topic", topic_qrels)):
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (folder / f"qrels_{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "corpus.jsonl").symlink_to(corpus.resolve())
    return len(queries)


def training_rows(
    topics: Sequence[SubjectTopic], pairs: Sequence[Pair], labels: dict[str, set[str]], docs: dict[str, Document], seed: int
) -> list[TrainExample]:
    """One plain row per topic, then one row per pair and polarity (wording drawn by ``seed``).

    Hard negatives (``HARD_NEGATIVES``) are off-topic: documents that never mention the topic word. For an
    instruction row half of them satisfy the instruction (so only the topic rules them out), the rest are
    random; a plain row's are random. Positives and instruction negatives are stored in a seeded random order,
    so a trainer that takes the first n of them (as Promptriever does) takes a random subset.
    """
    rng = random.Random(seed)
    all_ids = sorted(docs)
    passage = {d: Passage(d, docs[d].title, docs[d].text) for d in all_ids}

    def off_topic(topic: SubjectTopic, wanted: set[str] | None, k: int) -> list[str]:
        pool = [d for d in all_ids if d not in topic.mentions and (wanted is None or d in wanted)]
        return rng.sample(pool, min(k, len(pool)))

    def shuffled(ids: Iterable[str]) -> list[str]:
        ordered = sorted(ids)
        return rng.sample(ordered, len(ordered))

    rows = []
    for topic in topics:
        negatives = off_topic(topic, None, HARD_NEGATIVES)
        positives = shuffled(topic.on_topic)
        rows.append(_row(f"{topic.word}-plain", topic.word, None, positives, [], negatives, passage))
    for pair in pairs:
        for polarity in POLARITIES:
            relevant, violating = pair.sides(polarity)
            label = labels[pair.attribute]
            satisfying = label if polarity == "only" else set(all_ids) - label
            negatives = off_topic(pair.topic, satisfying, HARD_NEGATIVES // 2)
            rest = [d for d in off_topic(pair.topic, None, HARD_NEGATIVES) if d not in negatives]
            negatives += rest[: HARD_NEGATIVES - len(negatives)]
            instruction = rng.choice(instructions(BY_NAME[pair.attribute], "train", polarity))
            qid = f"{pair.topic.word}-{pair.attribute}-{polarity}"
            positives, instruction_negatives = shuffled(relevant), shuffled(violating)
            rows.append(_row(qid, pair.topic.word, instruction, positives, instruction_negatives, negatives, passage))
    return rows


def _row(
    qid: str,
    query: str,
    instruction: str | None,
    positives: Sequence[str],
    instruction_negatives: Sequence[str],
    negatives: Sequence[str],
    passage: dict[str, Passage],
) -> TrainExample:
    return TrainExample(
        query_id=qid,
        query=query,
        instruction=instruction,
        positives=[passage[d] for d in positives],
        negatives=[passage[d] for d in negatives],
        instruction_negatives=[passage[d] for d in instruction_negatives],
    )


def build(scifact: Path, output: Path, *, seed: int = 0, overwrite: bool = False) -> dict:
    """Write the set to ``output`` (replaced only when complete) and return its manifest (also written)."""
    corpus = Path(scifact) / "corpus.jsonl"
    if not corpus.is_file():
        raise InputError(str(scifact), "no corpus.jsonl in the SciFact folder")
    output = Path(output)
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise InputError(str(output), "exists and is not empty (pass --overwrite to replace it)")
    docs = {doc.docid: doc for doc in iter_corpus(corpus)}
    labels = label_documents(docs.values())
    topics = split_topics(find_topics(docs.values()), seed)
    pairs = {split: pairs_of(topics[split], labels, split) for split in SPLITS}
    _check_enough(scifact, len(docs), topics, pairs)
    tmp = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rows = training_rows(topics["train"], pairs["train"], labels, docs, seed)
        write_training_data(tmp / "train.jsonl.gz", rows)
        queries = {split: write_eval_split(tmp / split, split, pairs[split], corpus) for split in ("dev", "test")}
        manifest = _manifest(seed, corpus, labels, topics, pairs, rows, queries)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        labels_tsv = ["docid\t" + "\t".join(labels)] + [
            d + "\t" + "\t".join(str(int(d in ids)) for ids in labels.values()) for d in sorted(docs)
        ]
        (tmp / "labels.tsv").write_text("\n".join(labels_tsv) + "\n", encoding="utf-8")
        if output.is_dir():
            shutil.rmtree(output)
        elif output.exists():
            output.unlink()
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _check_enough(
    scifact: Path, documents: int, topics: dict[str, list[SubjectTopic]], pairs: dict[str, list[Pair]]
) -> None:
    """Too little data (a cut-down corpus) is an InputError saying what every split needs."""
    empty = [split for split in SPLITS if not pairs[split]]
    if not empty:
        return
    found = sum(len(part) for part in topics.values())
    raise InputError(
        str(scifact),
        f"too little data: the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} got no topic x "
        f"attribute pair. {documents} documents gave {found} topics (title words shared by {MIN_TITLES} to "
        f"{MAX_TITLES} titles, split {', '.join(f'{int(100 * f)}% {s}' for s, f in FRACTIONS.items())}); every "
        f"split needs a topic with at least {max(MIN_EACH_SIDE.values())} on-topic documents with an attribute "
        "and as many without it (the full SciFact corpus, 5,183 documents, gives enough)",
    )


def _manifest(
    seed: int,
    corpus: Path,
    labels: dict[str, set[str]],
    topics: dict[str, list[SubjectTopic]],
    pairs: dict[str, list[Pair]],
    rows: Sequence[TrainExample],
    queries: dict[str, int],
) -> dict:
    """Counts and settings of a built set."""

    def per_query(split: str) -> dict[str, float]:
        relevant = [len(p.sides(pol)[0]) for p in pairs[split] for pol in POLARITIES]
        return {"min": min(relevant), "mean": round(sum(relevant) / len(relevant), 2), "max": max(relevant)}

    return {
        "seed": seed,
        "corpus": str(corpus.resolve()),
        "documents_labelled": {name: len(ids) for name, ids in labels.items()},
        "held_out": HELD_OUT,
        "attributes": {split: split_attributes(split) for split in SPLITS},
        "topics": {split: len(part) for split, part in topics.items()},
        "pairs": {split: len(part) for split, part in pairs.items()},
        "pairs_per_attribute": {
            split: {name: sum(p.attribute == name for p in part) for name in split_attributes(split)}
            for split, part in pairs.items()
        },
        "train_rows": {
            "plain": sum(r.instruction is None for r in rows),
            "instruction": sum(r.instruction is not None for r in rows),
        },
        "eval_queries": queries,
        "changed_relevant_per_query": {split: per_query(split) for split in ("dev", "test")},
        "hard_negatives": "off-topic documents (never mention the topic word); for instruction rows half of "
        "them satisfy the instruction",
    }
