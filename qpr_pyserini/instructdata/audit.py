"""Labeler audit: a fixed-seed sample of labelled abstracts to read, and the precision of the read verdicts.

    python -m qpr_pyserini.instructdata.audit --scifact ../shared/data/scifact [--per-attribute 30] [--seed 0]

prints each sampled abstract (title, the rule's matches in context, the abstract's opening) to read and judge.
Verdicts go to a TSV (``rules seed attribute docid verdict note``, verdict ``yes``/``no``); :func:`precision`
scores it.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

from qpr_pyserini.cli import run_cli
from qpr_pyserini.instructdata.attributes import ATTRIBUTES, BY_NAME, label_documents
from qpr_pyserini.io.corpus import Document, iter_corpus
from qpr_pyserini.io.errors import InputError

VERDICTS = ("yes", "no")


def sample_labelled(labels: dict[str, set[str]], per_attribute: int, seed: int) -> dict[str, list[str]]:
    """``per_attribute`` labelled doc ids per attribute (all when fewer), drawn with ``seed``, in draw order."""
    rng = random.Random(seed)
    return {name: rng.sample(sorted(ids), min(per_attribute, len(ids))) for name, ids in labels.items()}


def precision(judgements: Path) -> dict[str, dict[str, dict[str, float]]]:
    """``{rules: {attribute: {read, agree, precision}}}`` from a verdict TSV (header ``rules ... verdict``).

    ``rules`` names the rule version the sample was drawn with (``initial`` before tightening, ``final``).
    """
    counts: dict[tuple[str, str], list[int]] = {}
    with judgements.open(encoding="utf-8", newline="") as handle:
        for line_no, row in enumerate(csv.DictReader(handle, delimiter="\t"), start=2):
            if row.get("attribute") not in BY_NAME or row.get("verdict") not in VERDICTS or not row.get("rules"):
                raise InputError(str(judgements), "need rules, a known attribute and a verdict yes/no", line_no)
            read_agree = counts.setdefault((row["rules"], row["attribute"]), [0, 0])
            read_agree[0] += 1
            read_agree[1] += row["verdict"] == "yes"
    result: dict[str, dict[str, dict[str, float]]] = {}
    for (rules, name), (read, agree) in counts.items():
        result.setdefault(rules, {})[name] = {"read": read, "agree": agree, "precision": round(agree / read, 3)}
    return result


def _excerpt(doc: Document, name: str, width: int = 110) -> str:
    """The title, each rule match with ``width`` characters either side, and the abstract's opening."""
    text = doc.joined()
    spans = [m.span() for m in BY_NAME[name].pattern.finditer(text.lower())][:2]
    contexts = [text[max(0, a - width) : b + width].replace("\n", " ") for a, b in spans]
    lines = [f"## {name} {doc.docid}: {doc.title}", f"   opening: {doc.text[:200]}"]
    return "\n".join(lines + [f"   match: ...{c}..." for c in contexts])


def main(argv: list[str] | None = None) -> int:
    """Print the sample to read; returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m qpr_pyserini.instructdata.audit", description=__doc__)
    parser.add_argument("--scifact", type=Path, required=True, help="folder with corpus.jsonl")
    parser.add_argument("--per-attribute", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attributes", nargs="+", choices=list(BY_NAME), default=list(BY_NAME))
    args = parser.parse_args(argv)

    def action() -> None:
        docs = {doc.docid: doc for doc in iter_corpus(args.scifact / "corpus.jsonl")}
        chosen = [a for a in ATTRIBUTES if a.name in args.attributes]
        sample = sample_labelled(label_documents(docs.values(), chosen), args.per_attribute, args.seed)
        for name, ids in sample.items():
            for docid in ids:
                print(_excerpt(docs[docid], name))

    return run_cli(action)


if __name__ == "__main__":
    sys.exit(main())
