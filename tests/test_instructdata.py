"""The SciFact attribute-instruction set: labeler rules, topics, splits, FollowIR layout and training rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from qpr_pyserini.eval.metrics import pmrr
from qpr_pyserini.instructdata import __main__ as cli
from qpr_pyserini.instructdata.attributes import ATTRIBUTES, BY_NAME, label_documents
from qpr_pyserini.instructdata.audit import precision
from qpr_pyserini.instructdata.build import HELD_OUT, build
from qpr_pyserini.io import InputError, read_qrels, read_topics
from qpr_pyserini.io.corpus import Document, iter_corpus
from qpr_pyserini.io.topics import instruction_of
from qpr_pyserini.io.training_data import read_training_data

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = {
    "animal": "Experiments were done in mice and rats.",
    "in_vitro": "Cell lines were cultured in vitro.",
    "randomized_trial": "Patients were randomized and randomly assigned to placebo.",
    "cohort": "This prospective cohort study followed adults.",
    "review": "We review the literature in this systematic review.",
    "pediatric": "Children and infants were examined.",
}
# 20 made-up topic words (no "s", so singular folding leaves them alone), 12 abstracts each: every attribute
# labels 2 of a topic's abstracts.
TOPICS = [f"topic{letter}" for letter in "abcdefghijklmnopqrtu"]


@pytest.fixture(scope="module")
def scifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scifact")
    rows = []
    for t, word in enumerate(TOPICS):
        for j in range(12):
            sentence = list(SENTENCES.values())[j % 6]
            rows.append({"_id": str(100 * t + j), "title": f"{word} in clinical practice", "text": sentence})
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def built(scifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sets") / "set"
    build(scifact, out, seed=3)
    return out


def queries(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]


def raw_rows(built: Path) -> list[dict]:
    with gzip.open(built / "train.jsonl.gz", "rt") as handle:
        return [json.loads(line) for line in handle]


def doc(title: str, text: str) -> Document:
    return Document("d", title, text)


def test_rules_label_what_the_audit_accepted() -> None:
    assert BY_NAME["animal"].matches(doc("", "Knockout mice were compared with wild-type rats."))
    assert BY_NAME["animal"].matches(doc("Leptin treatment in obese mice", "Anxiety was measured."))
    # animal-derived cells in culture only: the audit judged these not animal studies
    assert not BY_NAME["animal"].matches(doc("", "Mouse embryonic stem cells and mouse macrophages."))
    assert BY_NAME["randomized_trial"].matches(doc("", "Patients were randomized; randomly assigned."))
    assert not BY_NAME["randomized_trial"].matches(doc("", "A systematic review of randomized trials, randomized."))
    assert not BY_NAME["randomized_trial"].matches(doc("", "Rats were randomized and randomly allocated."))
    assert BY_NAME["cohort"].matches(doc("", "DESIGN Retrospective cohort study."))
    assert not BY_NAME["cohort"].matches(doc("", "A large cohort of tumour samples."))
    labels = label_documents([Document(str(i), "", s) for i, s in enumerate(SENTENCES.values())])
    assert {name: sorted(ids) for name, ids in labels.items()} == {
        name: [str(i)] for i, name in enumerate(SENTENCES)
    }


def test_topic_splits_are_disjoint(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    train = {row["only_query"] for row in raw_rows(built)}
    dev, test = ({q["topic"] for q in queries(built / split)} for split in ("dev", "test"))
    assert train and dev and test
    assert not train & dev and not train & test and not dev & test
    assert train | dev | test == set(TOPICS)
    assert manifest["topics"] == {"train": len(train), "dev": len(dev), "test": len(test)}


def test_held_out_attributes_and_wordings_never_seen_in_training(built: Path) -> None:
    rows = raw_rows(built)
    train_attributes = {row["query_id"].split("-")[1] for row in rows if row["has_instruction"]}
    train_instructions = {row["only_instruction"] for row in rows if row["has_instruction"]}
    for split in ("dev", "test"):
        split_queries = queries(built / split)
        assert HELD_OUT[split] in {q["attribute"] for q in split_queries}
        assert HELD_OUT[split] not in train_attributes
        assert all((q["attribute_seen"] == "no") == (q["attribute"] == HELD_OUT[split]) for q in split_queries)
        wordings = {q[f] for q in split_queries for f in ("instruction_og", "instruction_changed")}
        assert not wordings & train_instructions
        for attribute in ATTRIBUTES:  # no training phrase of any attribute is reused in dev or test
            assert not any(p in w for p in attribute.phrases["train"] for w in wordings)


def test_changed_instruction_leaves_two_relevant_and_only_removes_relevance(built: Path) -> None:
    for split in ("dev", "test"):
        og, changed = read_qrels(built / split / "qrels_og.tsv"), read_qrels(built / split / "qrels_changed.tsv")
        assert read_qrels(built / split / "qrels_topic.tsv") == og
        assert set(og) == set(changed) == {q["_id"] for q in queries(built / split)}
        for qid, judged in changed.items():
            assert sum(score > 0 for score in judged.values()) >= 2
            assert all(og[qid][d] == 1 for d in judged)  # nothing becomes relevant: p-MRR's direction holds
            assert any(score == 0 for score in judged.values())


def test_eval_split_reads_through_the_stance_code_path(built: Path) -> None:
    split = built / "test"
    topics = read_topics(split / "queries.jsonl")
    for topic in topics:
        assert topic.query == topic.fields["topic"]
        assert instruction_of(topic, "instruction_og", None) != instruction_of(topic, "instruction_changed", None)
    og, changed = read_qrels(split / "qrels_og.tsv"), read_qrels(split / "qrels_changed.tsv")
    run_og = {qid: {d: 1.0 for d in docs} for qid, docs in og.items()}
    run_changed = {qid: {d: float(s) for d, s in docs.items()} for qid, docs in changed.items()}
    assert pmrr(og, changed, run_og, run_changed).score > 0  # demoting the violators scores positive
    assert len(list(iter_corpus(split / "corpus.jsonl"))) == 12 * len(TOPICS)


def test_training_rows_load_as_promptriever_rows(built: Path, scifact: Path) -> None:
    rows = read_training_data(built / "train.jsonl.gz")
    raw = raw_rows(built)
    assert set(raw[0]) == {
        "query_id", "query", "only_query", "only_instruction", "has_instruction",
        "positive_passages", "negative_passages", "new_negatives",
    }  # fmt: skip
    text_of = {d.docid: d.text for d in iter_corpus(scifact / "corpus.jsonl")}
    plain = [r for r in rows if r.instruction is None]
    instructed = [r for r in rows if r.instruction is not None]
    assert len(plain) == len({r.query for r in rows}) and instructed
    # stored in a seeded random order, so "the first n" is a random subset
    assert any([p.docid for p in r.positives] != sorted(p.docid for p in r.positives) for r in rows)
    for row in rows:
        on_topic = {d for d in text_of if int(d) // 100 == TOPICS.index(row.query)}
        positives = {p.docid for p in row.positives}
        assert positives <= on_topic and row.negatives
        assert not {p.docid for p in row.negatives} & on_topic  # hard negatives are off topic
        if row.instruction is None:
            assert positives == on_topic and not row.instruction_negatives
        else:
            violators = {p.docid for p in row.instruction_negatives}
            assert violators and violators <= on_topic and not violators & positives
            attribute = row.query_id.split("-")[1]
            wanted = row.query_id.endswith("-only")
            assert all((text_of[d] == SENTENCES[attribute]) == wanted for d in positives)


def test_same_seed_same_set_other_seed_other_split(built: Path, scifact: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    build(scifact, again, seed=3)
    build(scifact, other, seed=4)
    for name in ("test/queries.jsonl", "dev/qrels_changed.tsv", "labels.tsv", "manifest.json"):
        assert (again / name).read_bytes() == (built / name).read_bytes()
    assert raw_rows(again) == raw_rows(built)
    assert queries(other / "test") != queries(built / "test")


def test_existing_output_is_refused_and_left_alone(scifact: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="--overwrite"):
        build(scifact, out)
    assert cli.main(["--scifact", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "keep.txt").read_text() == "mine"
    assert cli.main(["--scifact", str(scifact), "--output", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "test" / "queries.jsonl").is_file()


@pytest.mark.parametrize("topics", [0, 1, 3])
def test_too_little_data_is_an_input_error_saying_what_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], topics: int
) -> None:
    """A small but valid BEIR folder used to fail with "min() iterable argument is empty"."""
    rows = [
        {"_id": f"{t}-{j}", "title": f"{word} in clinical practice", "text": list(SENTENCES.values())[j % 6]}
        for t, word in enumerate(TOPICS[:topics])
        for j in range(12)
    ] or [{"_id": "only", "title": "One title", "text": "One text."}]
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["--scifact", str(tmp_path / "small"), "--output", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'small'}: too little data: the "), err
    assert f"{len(rows)} documents gave {topics} topics" in err and "at least 2 on-topic documents" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small"]


def test_precision_of_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.tsv"
    path.write_text(
        "rules\tseed\tattribute\tdocid\tverdict\tnote\n"
        "final\t1\tanimal\t1\tyes\t\nfinal\t1\tanimal\t2\tno\t\ninitial\t0\treview\t3\tyes\t\n"
    )
    assert precision(path) == {
        "final": {"animal": {"read": 2, "agree": 1, "precision": 0.5}},
        "initial": {"review": {"read": 1, "agree": 1, "precision": 1.0}},
    }
    path.write_text("rules\tseed\tattribute\tdocid\tverdict\tnote\nfinal\t1\tanimal\t1\tmaybe\t\n")
    with pytest.raises(InputError, match=":2"):
        precision(path)


def test_committed_precision_matches_the_judgements_and_current_rules(shared_data: Path) -> None:
    """The results JSON is what the verdict file gives, and every doc judged under the final rules is still
    labelled by them (so the reported precision is the current rules')."""
    judgements = ROOT / "docs" / "results" / "instruction-data-judgements.tsv"
    results = json.loads((ROOT / "docs" / "results" / "instruction-data.json").read_text())
    assert results["labeler_precision"] == precision(judgements)
    labels = label_documents(iter_corpus(shared_data / "scifact" / "corpus.jsonl"))
    final = [line.split("\t") for line in judgements.read_text().splitlines()[1:] if line.startswith("final")]
    assert {row[2] for row in final} == set(BY_NAME)
    assert all(row[3] in labels[row[2]] for row in final)
    assert all(n >= 30 for n in (sum(row[2] == name for row in final) for name in BY_NAME))
