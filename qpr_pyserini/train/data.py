"""Training rows (Tevatron / Promptriever JSONL, Hugging Face datasets) and the per-query group sampler.

Row schemas, detected per row:

- Tevatron: ``query_id``, ``query``, ``positive_passages``, ``negative_passages``; no instruction.
- Promptriever (``samaya-ai/msmarco-w-instructions``): the Tevatron fields, with ``query`` holding query +
  instruction, plus ``only_query``, ``only_instruction``, ``has_instruction`` and ``new_negatives`` (the
  instruction negatives). A row with ``only_query`` takes its query from it.
- The QPR reference's rows (``deu05232/promptriever-ours-v8-vanilla``): the Promptriever fields plus
  ``d_inst_negatives``, read as instruction negatives placed before ``new_negatives``.

Passages are ``{docid, title, text}``; ``docid`` may be missing (read as "") and ``title`` defaults to "".
"""

from __future__ import annotations

import gzip
import itertools
import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from qpr_pyserini.io._read import as_id, iter_json_records
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import atomic_output

# Files written by ``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
_SAVED_DATASET = "state.json"
_SAVED_DATASET_DICT = "dataset_dict.json"
# A Hugging Face dataset id: "name" or "owner/name".
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_FILE_SUFFIXES = (".jsonl", ".json", ".gz", ".parquet", ".tsv", ".txt")


@dataclass(frozen=True)
class Passage:
    """One training passage; ``docid`` is "" when the source row has none."""

    docid: str
    title: str
    text: str


@dataclass
class TrainExample:
    """One training query: the query alone, its instruction (None without one) and its passages."""

    query_id: str
    query: str
    instruction: str | None
    positives: list[Passage]
    negatives: list[Passage]
    instruction_negatives: list[Passage] = field(default_factory=list)


def read_training_data(
    source: str | Path, *, split: str = "train", limit: int | None = None
) -> list[TrainExample]:
    """Read training rows from a JSONL[.gz] file, a ``.parquet`` file, a ``save_to_disk`` folder or a hub id.

    A local path always wins; anything else that looks like ``owner/name`` goes to
    ``datasets.load_dataset(source, split=split)`` (needs network). ``split`` also picks the split of a
    saved ``DatasetDict``. ``limit`` keeps the first rows only. Bad rows raise InputError with file and line.
    """
    if limit is not None and limit < 0:
        raise InputError("--limit", f"must be >= 0, got {limit}")
    path = Path(source)
    if path.is_dir():
        rows = _saved_dataset_rows(path, split)
    elif path.is_file():
        rows = _parquet_rows(path) if path.suffix == ".parquet" else iter_json_records(path)
    elif _HUB_ID.fullmatch(str(source)) and not str(source).endswith(_FILE_SUFFIXES):
        rows = _hub_rows(str(source), split)
    else:
        raise InputError(str(source), "no such file or folder")
    where = f"{source}[{split}]" if not path.exists() or path.is_dir() else str(path)
    return [_parse_example(record, where, line_no) for line_no, record in itertools.islice(rows, limit)]


def _parse_example(record: Mapping[str, Any], where: str, line_no: int) -> TrainExample:
    """A TrainExample from one Tevatron or Promptriever row (see the module docstring)."""
    if record.get("query_id") is None:
        raise InputError(where, "missing 'query_id'", line_no)
    query_id = as_id(record["query_id"], "query_id", where, line_no)
    instruction = None
    if record.get("only_query") is not None:
        query = _text(record["only_query"], "only_query", query_id, where, line_no)
        if record.get("has_instruction", True) and record.get("only_instruction"):
            instruction = _text(record["only_instruction"], "only_instruction", query_id, where, line_no)
    elif record.get("query") is not None:
        query = _text(record["query"], "query", query_id, where, line_no)
    else:
        raise InputError(where, f"query {query_id!r}: missing 'query'", line_no)
    positives = _passages(record, "positive_passages", query_id, where, line_no)
    if not positives:
        raise InputError(where, f"query {query_id!r} has no positive passage", line_no)
    return TrainExample(
        query_id=query_id,
        query=query,
        instruction=instruction,
        positives=positives,
        negatives=_passages(record, "negative_passages", query_id, where, line_no),
        instruction_negatives=[
            *_passages(record, "d_inst_negatives", query_id, where, line_no),
            *_passages(record, "new_negatives", query_id, where, line_no),
        ],
    )


def write_training_data(path: str | Path, examples: Iterable[TrainExample]) -> int:
    """Write Promptriever-schema JSONL (gzipped for ``*.gz``), atomically; returns the row count.

    ``query`` holds ``"{query} {instruction}"`` for Tevatron readers; this module reads ``only_query`` back.
    """
    count = 0
    with atomic_output(path) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as out:
            for example in examples:
                out.write(json.dumps(_record(example), ensure_ascii=False) + "\n")
                count += 1
    return count


@dataclass
class TrainGroup:
    """One query's passages for one step: the positive first, then ``group_size - 1`` negatives."""

    example: TrainExample
    passages: list[Passage]


NEGATIVES_ORDERS = ("random", "promptriever", "reference")


class GroupSampler(Dataset):
    """Promptriever / Tevatron training groups, deterministic per ``(seed, epoch, index)``.

    Each group is one positive (rotating through the positives from epoch to epoch) and
    ``group_size - 1`` negatives: for rows with an instruction, the first
    ``min(instruction_negatives, available)`` slots are instruction negatives, the rest hard negatives.
    ``order`` says how they are picked:

    - ``random``: both drawn at random without replacement; when a pool is smaller than its slots, its
      shuffled passages are repeated in order (cycled), so each repeats at most one more time than any other.
    - ``promptriever``: the first instruction negatives in stored order (Promptriever's
      ``--negatives_first_n``), hard negatives drawn as under ``random``.
    - ``reference``: instruction negatives and then hard negatives, both in stored order; a row with fewer
      hard negatives than slots fills them by drawing with replacement (the QPR reference's
      ``Idea3TrainDataset``, which also takes every instruction negative: ``instruction_negatives`` at least
      ``group_size - 1``).

    A row with instruction negatives but no hard negative fills the rest with its instruction negatives
    (cycled). A row with no usable negative at all is an error at construction.
    """

    def __init__(
        self,
        examples: list[TrainExample],
        group_size: int = 16,
        instruction_negatives: int = 3,
        seed: int = 42,
        order: str = "random",
    ) -> None:
        if group_size < 1:
            raise InputError("--group-size", f"must be at least 1, got {group_size}")
        if instruction_negatives < 0:
            raise InputError("--instruction-negatives", f"must be >= 0, got {instruction_negatives}")
        if order not in NEGATIVES_ORDERS:
            raise InputError(
                "--negatives-order", f"must be one of {', '.join(NEGATIVES_ORDERS)}, not {order!r}"
            )
        for example in examples:
            if not example.positives:
                raise InputError("--train-data", f"query {example.query_id!r} has no positive passage")
            if group_size > 1 and not example.negatives and not _instruction_pool(example):
                raise InputError(
                    "--train-data",
                    f"query {example.query_id!r} has no negative passage to fill groups of {group_size}; "
                    "mine hard negatives first",
                )
        self.examples = examples
        self.group_size = group_size
        self.instruction_negatives = instruction_negatives
        self.seed = seed
        self.order = order
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose groups ``__getitem__`` returns."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> TrainGroup:
        example = self.examples[i]
        positive = example.positives[(_offset(self.seed, i) + self.epoch) % len(example.positives)]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
        slots = self.group_size - 1
        instruction_pool = _instruction_pool(example)
        taken = min(self.instruction_negatives, len(instruction_pool), slots)
        if self.order == "random":
            negatives = rng.sample(instruction_pool, taken)
        else:
            negatives = instruction_pool[:taken]
        hard = example.negatives or instruction_pool
        if self.order == "reference":
            negatives += _stored(hard, slots - taken, rng)
        else:
            negatives += _draw(hard, slots - taken, rng)
        return TrainGroup(example, [positive, *negatives])


def _instruction_pool(example: TrainExample) -> list[Passage]:
    """Instruction negatives count only for rows that have an instruction."""
    return example.instruction_negatives if example.instruction else []


def _offset(seed: int, i: int) -> int:
    """A fixed per-row start for rotating through the positives."""
    return random.Random(f"{seed}:{i}").randrange(1 << 30)


def _draw(pool: list[Passage], k: int, rng: random.Random) -> list[Passage]:
    """``k`` passages without replacement, or the shuffled pool cycled when it has fewer than ``k``."""
    if k <= len(pool):
        return rng.sample(pool, k)
    shuffled = rng.sample(pool, len(pool))
    return [shuffled[j % len(shuffled)] for j in range(k)]


def _stored(pool: list[Passage], k: int, rng: random.Random) -> list[Passage]:
    """The first ``k`` passages in stored order, or ``k`` drawn with replacement when there are fewer."""
    return pool[:k] if k <= len(pool) else rng.choices(pool, k=k)


def _text(value: Any, key: str, query_id: str, where: str, line_no: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(where, f"query {query_id!r}: {key!r} must be a non-blank string", line_no)
    return value


def _passages(record: Mapping[str, Any], key: str, query_id: str, where: str, line_no: int) -> list[Passage]:
    """The passages under ``key`` (missing or null: none); each needs a string ``text``."""
    items = record.get(key) or []
    if not isinstance(items, list):
        raise InputError(where, f"query {query_id!r}: {key!r} must be a list of passages", line_no)
    passages = []
    for n, item in enumerate(items, start=1):
        text = item.get("text") if isinstance(item, Mapping) else None
        if not isinstance(text, str):
            raise InputError(where, f"query {query_id!r}: passage {n} of {key!r} has no text", line_no)
        docid, title = item.get("docid"), item.get("title")
        passages.append(Passage("" if docid is None else str(docid), title or "", text))
    return passages


def _record(example: TrainExample) -> dict[str, Any]:
    """The Promptriever-schema JSON object of one example."""
    instruction = example.instruction or ""
    return {
        "query_id": example.query_id,
        "query": f"{example.query} {instruction}" if instruction else example.query,
        "only_query": example.query,
        "only_instruction": instruction,
        "has_instruction": bool(instruction),
        "positive_passages": [_passage_record(p) for p in example.positives],
        "negative_passages": [_passage_record(p) for p in example.negatives],
        "new_negatives": [_passage_record(p) for p in example.instruction_negatives],
    }


def _passage_record(passage: Passage) -> dict[str, str]:
    return {"docid": passage.docid, "title": passage.title, "text": passage.text}


def _numbered(rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Number dataset rows from 1, like file lines."""
    return enumerate(rows, start=1)


def _saved_dataset_rows(path: Path, split: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Rows of a ``save_to_disk`` folder (a Dataset, or a DatasetDict from which ``split`` is taken)."""
    if not (path / _SAVED_DATASET).is_file() and not (path / _SAVED_DATASET_DICT).is_file():
        raise InputError(str(path), "folder is not a dataset saved with datasets' save_to_disk")
    import datasets  # imported lazily: slow, and only dataset sources need it

    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
            raise InputError(str(path), f"no split {split!r} (splits: {', '.join(dataset)})")
        dataset = dataset[split]
    return _numbered(dataset)


def _parquet_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    import datasets

    return _numbered(datasets.load_dataset("parquet", data_files=str(path), split="train"))


def _hub_rows(dataset_id: str, split: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """Rows of a Hugging Face hub dataset; a failure to load (e.g. offline) is an InputError."""
    import datasets

    try:
        dataset = datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:  # datasets raises many types (network, missing split, unknown id)
        raise InputError(
            dataset_id, f"not a local path, and loading it from the Hugging Face hub failed: {exc}"
        ) from None
    return _numbered(dataset)
