"""Instruction templates: how a query and its instruction become one input text.

Every template also reports where the query's characters sit inside the formatted text, so the
training code can pool exactly the query's tokens (the "query component" of the query-preserving
regularizer). Templates are plain format strings with ``{query}`` and ``{instruction}`` fields;
``{?}`` stands for Promptriever's question mark, added only when the query lacks end punctuation.
Without an instruction every template falls back to the plain query: ``prefix + query``, followed by the
``{?}`` mark when the pattern puts it right after ``{query}`` (Promptriever's ``format_query`` adds it to
plain queries too: ``"query:  {q}{?}"``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

# Named templates. The "position" of the query matters for the regularizer: with a causal backbone,
# a query placed before the instruction never sees it, so its span embedding ignores the instruction.
NAMED_TEMPLATES: dict[str, str] = {
    # Promptriever: f"{query}{'?' if no end punctuation} {instruction}" after the "query:  " prefix.
    "promptriever": "{query}{?} {instruction}",
    # E5-Mistral / Qwen3-Embedding style: the instruction first, so the query can attend to it.
    "instruction-first": "Instruct: {instruction}\nQuery: {query}",
    # InstructIR's instances: "instruction [SEP] query".
    "instructir": "{instruction} [SEP] {query}",
    # The simplest baseline: the query followed by the instruction.
    "concat": "{query} {instruction}",
}

END_PUNCTUATION = tuple(".?!")
_FIELDS = {"query", "instruction", "?"}


@dataclass(frozen=True)
class FormattedQuery:
    """An encoder input text and the [start, end) character span of the query inside it.

    ``marked_end`` is the end of the query including the ``{?}`` mark that follows it (``query_end`` when
    there is none): the query component of Promptriever's text ``"query:  {q}{?}"`` ends there.
    """

    text: str
    query_start: int
    query_end: int
    marked_end: int

    @property
    def query(self) -> str:
        return self.text[self.query_start : self.query_end]


@dataclass(frozen=True)
class InstructionTemplate:
    """A query + instruction format string (see the module docstring), with an optional prefix."""

    pattern: str
    prefix: str = ""
    name: str = "custom"

    def __post_init__(self) -> None:
        fields = [f for _, f, _, _ in string.Formatter().parse(self.pattern) if f is not None]
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(
                f"template {self.pattern!r}: unknown field(s) {sorted(unknown)}; "
                "use {query}, {instruction} and optionally {?}"
            )
        if fields.count("query") != 1 or fields.count("instruction") != 1:
            raise ValueError(
                f"template {self.pattern!r} must contain {{query}} and {{instruction}} once each"
            )

    @property
    def query_first(self) -> bool:
        """True when the query comes before the instruction (in a causal model it never sees it)."""
        return self.pattern.index("{query}") < self.pattern.index("{instruction}")

    def format(self, query: str, instruction: str | None = None, raw: bool = False) -> FormattedQuery:
        """Format ``query`` (and ``instruction`` when it is non-empty) into one text with the query's span.

        ``raw`` keeps the instruction as given, unstripped and even blank (the QPR reference's training text
        ``f"{plain} {instruction}"`` for a row flagged ``has_instruction``); only None means no instruction.
        """
        query = query.strip()
        mark = "" if query.endswith(END_PUNCTUATION) else "?"
        start = len(self.prefix)
        if instruction is None or (not raw and not instruction.strip()):
            text = self.prefix + query + (mark if self.mark_follows_query else "")
            return FormattedQuery(text, start, start + len(query), len(text))
        parts: list[str] = [self.prefix]
        end = marked_end = -1
        for literal, field, _, _ in string.Formatter().parse(self.pattern):
            parts.append(literal)
            if field == "query":
                start = sum(map(len, parts))
                parts.append(query)
                end = marked_end = start + len(query)
            elif field == "instruction":
                parts.append(instruction if raw else instruction.strip())
            elif field == "?":
                parts.append(mark)
                if self.mark_follows_query:
                    marked_end = end + len(mark)
        return FormattedQuery("".join(parts), start, end, marked_end)

    @property
    def mark_follows_query(self) -> bool:
        """True when the pattern puts the ``{?}`` mark right after ``{query}`` (Promptriever's template)."""
        return "{query}{?}" in self.pattern


def resolve_template(name_or_pattern: str, prefix: str = "") -> InstructionTemplate:
    """A named template (see NAMED_TEMPLATES) or a user format string with {query} and {instruction}."""
    if name_or_pattern in NAMED_TEMPLATES:
        return InstructionTemplate(NAMED_TEMPLATES[name_or_pattern], prefix, name_or_pattern)
    if "{query}" not in name_or_pattern:
        raise ValueError(
            f"unknown template {name_or_pattern!r}: use one of {sorted(NAMED_TEMPLATES)} "
            "or a format string with {query} and {instruction}"
        )
    return InstructionTemplate(name_or_pattern, prefix)
