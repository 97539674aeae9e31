"""Study-design attributes of an abstract, labelled by rules over its title + abstract, and their wordings.

Each :class:`Attribute` is a regular expression with a minimum number of matches (a match in the title always
counts), optionally vetoed by a second expression. The rules were checked by reading a fixed-seed sample of
labelled abstracts (docs/instruction-data.md, "Labeler precision"). Each attribute also carries the noun phrases
that the instruction wordings of each split use: train, dev and test never share a phrase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from qpr_pyserini.io.corpus import Document

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Attribute:
    """A rule-labelled attribute; ``phrases[split]`` are the noun phrases that split's instructions use."""

    name: str
    pattern: re.Pattern[str]
    min_matches: int
    phrases: Mapping[str, tuple[str, ...]]
    veto: re.Pattern[str] | None = None

    def matches(self, doc: Document) -> bool:
        """Whether the rule labels ``doc``: enough matches (or one in the title) and no veto match."""
        text = doc.joined().lower()
        if self.veto is not None and self.veto.search(text):
            return False
        return bool(self.pattern.search(doc.title.lower())) or len(self.pattern.findall(text)) >= self.min_matches


_REVIEW = r"\bsystematic(?:ally)? review|\bmeta-analys[ie]s\b|\bwe review\b|\bthis review\b"

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "animal",
        re.compile(
            r"\b(?:mice|rats|rodents|zebrafish|primates|monkeys?|macaques?|pigs|piglets|dogs|rabbits|hamsters"
            r"|sheep)\b|\b(?:mouse|rat|murine|primate|porcine|canine) models?\b|\bin (?:a |the )?(?:mouse|rat)\b"
        ),
        2,
        {
            "train": ("animal studies", "studies in animals such as mice or rats"),
            "dev": ("experiments on animals",),
            "test": ("research carried out on laboratory animals",),
        },
    ),
    Attribute(
        "in_vitro",
        re.compile(
            r"\bin vitro\b|\bcell lines?\b|\bcultured\b|\bcocultur\w*|\bhela\b|\bhek ?293|\bmcf-?7\b"
            r"|\bsirna\b|\btransfect\w*|\bknockdown\b"
        ),
        2,
        {
            "train": ("in vitro studies", "experiments on cultured cells"),
            "dev": ("cell culture experiments",),
            "test": ("work done on cells grown in the lab",),
        },
    ),
    Attribute(
        "randomized_trial",
        re.compile(r"\brandomi[sz]ed\b|\bplacebo[- ]controlled\b|\brandomly (?:assigned|allocated)\b"),
        2,
        {
            "train": ("randomized controlled trials", "randomized trials"),
            "dev": ("placebo-controlled or randomized studies",),
            "test": ("studies that randomly assign participants to treatment groups",),
        },
        veto=re.compile(_REVIEW + r"|\bselection criteria\b|\bwe searched\b|\bcochrane\b|\b(?:mice|rats)\b"),
    ),
    Attribute(
        "cohort",
        re.compile(
            r"\bcohort stud(?:y|ies)\b|\bcohort analys[ie]s\b|\b(?:prospective|retrospective|population-based"
            r"|observational|historical|inception|longitudinal) cohorts?\b|\blongitudinal stud(?:y|ies)\b"
            r"|\bprospective study\b|\bprospectively followed\b"
        ),
        1,
        {
            "train": ("cohort studies", "prospective or longitudinal cohort studies"),
            "dev": ("studies that follow a cohort over time",),
            "test": ("observational research that follows a group of people over the years",),
        },
        veto=re.compile(_REVIEW),
    ),
    Attribute(
        "review",
        re.compile(_REVIEW),
        1,
        {
            "train": ("reviews", "systematic reviews or meta-analyses"),
            "dev": ("review articles",),
            "test": ("papers that summarise or pool earlier research",),
        },
    ),
    Attribute(
        "pediatric",
        re.compile(
            r"\b(?:children|child|infants?|pediatric|paediatric|adolescents?|newborns?|neonates?|neonatal"
            r"|schoolchildren)\b"
        ),
        2,
        {
            "train": ("studies of children", "pediatric studies"),
            "dev": ("research on infants or children",),
            "test": ("work concerning kids, babies or teenagers",),
        },
    ),
)
BY_NAME = {attribute.name: attribute for attribute in ATTRIBUTES}


def label_documents(docs: Iterable[Document], attributes: Iterable[Attribute] = ATTRIBUTES) -> dict[str, set[str]]:
    """``{attribute name: ids of the documents its rule labels}``."""
    attributes = tuple(attributes)
    labels: dict[str, set[str]] = {attribute.name: set() for attribute in attributes}
    for doc in docs:
        for attribute in attributes:
            if attribute.matches(doc):
                labels[attribute.name].add(doc.docid)
    return labels

POLARITIES = ("only", "exclude")
# Instruction templates per split and polarity ({p}: an attribute phrase of that split). The original
# instruction of an evaluation query admits every study design; the changed one narrows it by an attribute.
TEMPLATES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "train": {
        "only": ("Only {p} are relevant.", "Relevant documents must be {p}; anything else is not relevant."),
        "exclude": ("Exclude {p}.", "Documents that are {p} are not relevant."),
    },
    "dev": {"only": ("Restrict the results to {p}.",), "exclude": ("Leave out {p}.",)},
    "test": {
        "only": ("I am only interested in {p}; nothing else on the subject counts.",),
        "exclude": ("Do not give me {p}; everything else on the subject is fine.",),
    },
}
ORIGINAL = {
    "dev": "Every document on this subject is relevant, whatever its study design.",
    "test": "Anything about this subject is relevant, whatever kind of study it reports.",
}


def instructions(attribute: Attribute, split: str, polarity: str) -> list[str]:
    """Every wording of "``polarity`` ``attribute``" in ``split``: its templates crossed with its phrases."""
    return [t.format(p=p) for t in TEMPLATES[split][polarity] for p in attribute.phrases[split]]
