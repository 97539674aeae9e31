"""Training rows: Tevatron / Promptriever JSONL, Parquet, ``save_to_disk`` folders and hub datasets.

Row schemas, detected per row:

- Tevatron: ``query_id``, ``query``, ``positive_passages``, ``negative_passages``; no instruction.
- Promptriever (``samaya-ai/msmarco-w-instructions``): the Tevatron fields, with ``query`` holding query +
  instruction, plus ``only_query``, ``only_instruction``, ``has_instruction`` and ``new_negatives`` (the
  instruction negatives). A row with ``only_query`` takes its query from it.
- The QPR reference's rows (``deu05232/promptriever-ours-v8-vanilla``): the Promptriever fields plus
  ``d_inst_negatives``, read as instruction negatives placed before ``new_negatives``.

Passages are ``{docid, title, text}``; ``docid`` may be missing (read as "") and ``title`` defaults to "".

Rows stay in Arrow (a memory-mapped Hugging Face ``datasets.Dataset``) and each is parsed into a TrainExample
when it is read, so memory does not grow with the training set (Promptriever's has 980k rows). A JSONL file is
converted once, line by line, into an Arrow table of its lines (each checked on the way, so a bad row is
reported with its file and line before training starts), cached in the ``datasets`` cache
(``$HF_DATASETS_CACHE``) and found again while the file keeps its path, size and modification time.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qpr_pyserini.io._read import HUB_DATASET_ID, as_id, iter_json_records
from qpr_pyserini.io.corpus import iter_corpus
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import atomic_output

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

# Files written by ``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
_SAVED_DATASET = "state.json"
_SAVED_DATASET_DICT = "dataset_dict.json"
_FILE_SUFFIXES = (".jsonl", ".json", ".gz", ".parquet", ".tsv", ".txt")


@dataclass(frozen=True)
class Passage:
    """One training passage; ``docid`` is "" when the source row has none."""

    docid: str
    title: str
    text: str


@dataclass
class TrainExample:
    """One training query: the query alone, its instruction (None without one) and its passages.

    ``instruction`` is kept as the row gives it (unstripped, possibly blank when the row is flagged);
    ``has_instruction`` is the row's own flag (Promptriever's schema; read from a row without one: whether the
    instruction is non-blank), None when not given.
    """

    query_id: str
    query: str
    instruction: str | None
    positives: list[Passage]
    negatives: list[Passage]
    instruction_negatives: list[Passage] = field(default_factory=list)
    has_instruction: bool | None = None


class TrainingRows(Sequence[TrainExample]):
    """Training rows held in Arrow, each parsed into a TrainExample when read (errors name ``where`` and the
    row's line: the file line of a JSONL source, the row number from 1 of a dataset)."""

    def __init__(self, table: datasets.Dataset, where: str, *, lines: bool) -> None:
        """``lines``: ``table`` holds JSONL lines (columns ``line``, ``json``), else the rows themselves."""
        self.table = table
        self.where = where
        self.lines = lines

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> TrainExample:  # type: ignore[override]  (no slices)
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        i %= len(self)
        row = self.table[i]
        if self.lines:
            return _parse_example(json.loads(row["json"]), self.where, row["line"])
        return _parse_example(row, self.where, i + 1)

    def __iter__(self) -> Iterator[TrainExample]:
        return (self[i] for i in range(len(self)))


def read_training_data(source: str | Path, *, split: str = "train", limit: int | None = None) -> TrainingRows:
    """Read training rows from a JSONL[.gz] file, a ``.parquet`` file, a ``save_to_disk`` folder or a hub id.

    A local path always wins; anything else that looks like ``owner/name`` goes to
    ``datasets.load_dataset(source, split=split)`` (needs network). ``split`` also picks the split of a
    saved ``DatasetDict``. ``limit`` keeps the first rows only. The rows stay in Arrow (see the module
    docstring). Bad rows raise InputError with file and line: a JSONL file's here, a dataset's when read.
    """
    if limit is not None and limit < 0:
        raise InputError("--limit", f"must be >= 0, got {limit}")
    path = Path(source)
    if path.is_file() and path.suffix != ".parquet":
        return TrainingRows(_jsonl_lines(path, limit), str(path), lines=True)
    if path.is_dir():
        table = _saved_dataset(path, split)
    elif path.is_file():
        table = _parquet(path)
    elif HUB_DATASET_ID.fullmatch(str(source)) and not str(source).endswith(_FILE_SUFFIXES):
        table = _hub_dataset(str(source), split)
    else:
        raise InputError(str(source), "no such file or folder")
    if limit is not None and limit < len(table):
        table = table.select(range(limit))
    return TrainingRows(table, str(path) if path.is_file() else f"{source}[{split}]", lines=False)


def _jsonl_lines(path: Path, limit: int | None) -> datasets.Dataset:
    """The (first ``limit``) lines of a JSONL[.gz] file as an Arrow table (``line``, ``json``), each row
    checked on the way; cached by ``datasets`` under the file's resolved path, size and modification time."""
    import datasets
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    stat = path.stat()
    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # CLI output stays clean; the conversion is logged instead
    log.info("reading %s into Arrow (once: cached while the file is unchanged)", path)
    try:
        return datasets.Dataset.from_generator(
            _checked_lines,
            features=datasets.Features({"line": datasets.Value("int64"), "json": datasets.Value("string")}),
            gen_kwargs={
                "where": str(path),
                "resolved": str(path.resolve()),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "limit": limit,
            },
        )
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, InputError):
            raise err.__cause__ from None
        raise
    finally:
        if not quiet:
            enable_progress_bars()


def _checked_lines(
    where: str, resolved: str, size: int, mtime_ns: int, limit: int | None
) -> Iterator[dict[str, Any]]:
    """The generator behind :func:`_jsonl_lines` (``size`` and ``mtime_ns`` only key the cache)."""
    for line_no, record in itertools.islice(iter_json_records(Path(resolved)), limit):
        _parse_example(record, where, line_no)
        yield {"line": line_no, "json": json.dumps(record, ensure_ascii=False)}


def _parse_example(record: Mapping[str, Any], where: str, line_no: int) -> TrainExample:
    """A TrainExample from one Tevatron or Promptriever row (see the module docstring)."""
    if record.get("query_id") is None:
        raise InputError(where, "missing 'query_id'", line_no)
    query_id = as_id(record["query_id"], "query_id", where, line_no)
    instruction = None
    flag = record.get("has_instruction")
    if flag is not None and not isinstance(flag, bool):
        raise InputError(where, f"query {query_id!r}: 'has_instruction' must be true or false", line_no)
    if record.get("only_query") is not None:
        query = _text(record["only_query"], "only_query", query_id, where, line_no)
        given = record.get("only_instruction")
        if given is not None and not isinstance(given, str):
            raise InputError(where, f"query {query_id!r}: 'only_instruction' must be a string", line_no)
        # A flagged row keeps its instruction even when blank (the reference regularises it by the flag).
        if given is not None and (flag or (flag is None and given.strip())):
            instruction = given
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
        has_instruction=bool(instruction and instruction.strip()) if flag is None else flag,
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


def passages_from(corpus: str | Path, wanted: set[str]) -> dict[str, Passage]:
    """The documents of ``corpus`` whose ids are ``wanted``, as training passages (streamed: only those are
    kept); ids not in the corpus are absent from the result, for the caller to report."""
    return {d.docid: Passage(d.docid, d.title, d.text) for d in iter_corpus(corpus) if d.docid in wanted}


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
    flag = example.has_instruction
    return {
        "query_id": example.query_id,
        "query": f"{example.query} {instruction}" if instruction else example.query,
        "only_query": example.query,
        "only_instruction": instruction,
        "has_instruction": bool(instruction.strip()) if flag is None else flag,
        "positive_passages": [_passage_record(p) for p in example.positives],
        "negative_passages": [_passage_record(p) for p in example.negatives],
        "new_negatives": [_passage_record(p) for p in example.instruction_negatives],
    }


def _passage_record(passage: Passage) -> dict[str, str]:
    return {"docid": passage.docid, "title": passage.title, "text": passage.text}


def _saved_dataset(path: Path, split: str) -> datasets.Dataset:
    """A ``save_to_disk`` folder's Dataset (of a DatasetDict: its ``split``), memory-mapped."""
    if not (path / _SAVED_DATASET).is_file() and not (path / _SAVED_DATASET_DICT).is_file():
        raise InputError(str(path), "folder is not a dataset saved with datasets' save_to_disk")
    import datasets  # imported lazily: slow, and only dataset sources need it

    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        if split not in dataset:
            raise InputError(str(path), f"no split {split!r} (splits: {', '.join(dataset)})")
        dataset = dataset[split]
    return dataset


def _parquet(path: Path) -> datasets.Dataset:
    import datasets

    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def _hub_dataset(dataset_id: str, split: str) -> datasets.Dataset:
    """A Hugging Face hub dataset's split; a failure to load (e.g. offline) is an InputError."""
    import datasets

    try:
        return datasets.load_dataset(dataset_id, split=split)
    except Exception as exc:  # datasets raises many types (network, missing split, unknown id)
        raise InputError(
            dataset_id, f"not a local path, and loading it from the Hugging Face hub failed: {exc}"
        ) from None
