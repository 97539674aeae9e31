"""The per-query group sampler: which passages make one training query's group at each epoch."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from torch.utils.data import Dataset

from qpr_pyserini.io.errors import InputError, check_positive
from qpr_pyserini.io.training_data import Passage, TrainExample


@dataclass
class TrainGroup:
    """One query's passages for one step: the positive first, then ``group_size - 1`` negatives."""

    example: TrainExample
    passages: list[Passage]


NEGATIVES_ORDERS = ("random", "promptriever", "stored", "reference")
POSITIVE_CHOICES = ("rotate", "reference")
INSTRUCTION_NEGATIVE_ROWS = ("instruction", "all")


class GroupSampler(Dataset):
    """Promptriever / Tevatron training groups, deterministic per ``(seed, epoch, index)``.

    Each group is one positive and ``group_size - 1`` negatives. ``positive``: ``rotate`` (a fixed random
    start per row, then one positive further each epoch) or ``reference`` (``positives[(i + seed + epoch) %
    n]``, the QPR reference's ``Idea3TrainDataset``). The first ``min(instruction_negatives, available)``
    slots are instruction negatives, for rows with an instruction (``instruction_rows="instruction"``) or for
    every row (``"all"``, the reference's); the rest hard negatives. ``order`` says how they are picked:

    - ``random``: both drawn at random without replacement; when a pool is smaller than its slots, its
      shuffled passages are repeated in order (cycled), so each repeats at most one more time than any other.
    - ``promptriever``: the first instruction negatives in stored order (Promptriever's
      ``--negatives_first_n``), hard negatives drawn as under ``random``.
    - ``stored``: instruction negatives and then hard negatives, both in stored order; hard negatives drawn
      with replacement only when there are fewer than their slots.
    - ``reference``: as ``stored``, except that a row with fewer hard negatives than ``group_size - 1``
      draws all its hard-negative slots with replacement (``random.choices``), as the reference does. Its
      draws come from the process-wide ``random`` state; ours from a per-row generator, so the draws differ
      but follow the same rule.

    A row with instruction negatives but no hard negative fills the rest with its instruction negatives
    (cycled). A row with no usable negative at all is an error at construction.
    """

    def __init__(
        self,
        examples: Sequence[TrainExample],
        group_size: int = 16,
        instruction_negatives: int = 3,
        seed: int = 42,
        order: str = "random",
        positive: str = "rotate",
        instruction_rows: str = "instruction",
    ) -> None:
        check_positive(group_size=group_size)
        if instruction_negatives < 0:
            raise InputError("--instruction-negatives", f"must be >= 0, got {instruction_negatives}")
        for option, value, choices in (
            ("--negatives-order", order, NEGATIVES_ORDERS),
            ("--positive-choice", positive, POSITIVE_CHOICES),
            ("--instruction-negatives-rows", instruction_rows, INSTRUCTION_NEGATIVE_ROWS),
        ):
            if value not in choices:
                raise InputError(option, f"must be one of {', '.join(choices)}, not {value!r}")
        self.examples = examples
        self.group_size = group_size
        self.instruction_negatives = instruction_negatives
        self.seed = seed
        self.order = order
        self.positive = positive
        self.instruction_rows = instruction_rows
        self.epoch = 0
        for example in examples:
            if not example.positives:
                raise InputError("--train-data", f"query {example.query_id!r} has no positive passage")
            if group_size > 1 and not example.negatives and not self._instruction_pool(example):
                raise InputError(
                    "--train-data",
                    f"query {example.query_id!r} has no negative passage to fill groups of {group_size}; "
                    "mine hard negatives first",
                )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose groups ``__getitem__`` returns."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> TrainGroup:
        example = self.examples[i]
        start = i + self.seed if self.positive == "reference" else _offset(self.seed, i)
        positive = example.positives[(start + self.epoch) % len(example.positives)]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
        slots = self.group_size - 1
        instruction_pool = self._instruction_pool(example)
        taken = min(self.instruction_negatives, len(instruction_pool), slots)
        if self.order == "random":
            negatives = rng.sample(instruction_pool, taken)
        else:
            negatives = instruction_pool[:taken]
        hard = example.negatives or instruction_pool
        if self.order == "reference" and len(example.negatives) < slots:
            negatives += rng.choices(hard, k=slots - taken)
        elif self.order in ("stored", "reference"):
            negatives += _stored(hard, slots - taken, rng)
        else:
            negatives += _draw(hard, slots - taken, rng)
        return TrainGroup(example, [positive, *negatives])

    def _instruction_pool(self, example: TrainExample) -> list[Passage]:
        """A row's instruction negatives, if they count for it (all rows, or rows with an instruction)."""
        if self.instruction_rows == "all" or (example.instruction and example.instruction.strip()):
            return example.instruction_negatives
        return []


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
