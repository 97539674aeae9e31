"""Training data: row reading and writing, the group sampler, and the SciFact-stance row builder."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from collections import Counter
from pathlib import Path

import pytest

from qpr_pyserini.io import InputError, read_qrels, read_topics
from qpr_pyserini.io.training_data import (
    Passage,
    TrainExample,
    TrainingRows,
    read_training_data,
    write_training_data,
)
from qpr_pyserini.train import stance
from qpr_pyserini.train.data import GroupSampler
from qpr_pyserini.train.stance import __main__ as stance_cli


def passage(docid: str, text: str | None = None) -> dict[str, str]:
    return {"docid": docid, "title": f"title {docid}", "text": text or f"text {docid}"}


TEVATRON_ROW = {
    "query_id": "q1",
    "query": "what is a cat",
    "positive_passages": [passage("p1")],
    "negative_passages": [passage("n1"), {"title": "", "text": "no docid"}],
}
PROMPTRIEVER_ROW = {
    "query_id": 7,
    "query": "what is a cat Find passages about pets.",
    "only_query": "what is a cat",
    "only_instruction": "Find passages about pets.",
    "has_instruction": True,
    "positive_passages": [passage("p1")],
    "negative_passages": [passage("n1")],
    "new_negatives": [passage("i1"), passage("i2")],
}
PLAIN_PROMPTRIEVER_ROW = {
    **PROMPTRIEVER_ROW,
    "query_id": 8,
    "query": "what is a cat",
    "only_instruction": "",
    "has_instruction": False,
    "new_negatives": None,
}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.writelines((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    return path


# --- reading ---------------------------------------------------------------------------------------


def test_reads_tevatron_and_promptriever_rows(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl.gz", [TEVATRON_ROW, PROMPTRIEVER_ROW, PLAIN_PROMPTRIEVER_ROW])
    tevatron, promptriever, plain = read_training_data(source)

    assert tevatron == TrainExample(
        "q1",
        "what is a cat",
        None,
        [Passage("p1", "title p1", "text p1")],
        [Passage("n1", "title n1", "text n1"), Passage("", "", "no docid")],
        has_instruction=False,
    )
    assert (promptriever.query_id, promptriever.query) == ("7", "what is a cat")
    assert promptriever.instruction == "Find passages about pets."
    assert [p.docid for p in promptriever.instruction_negatives] == ["i1", "i2"]
    assert plain.query == "what is a cat" and plain.instruction is None and plain.instruction_negatives == []


def test_reference_rows_put_d_inst_negatives_first(tmp_path: Path) -> None:
    row = {**PROMPTRIEVER_ROW, "d_inst_negatives": [passage("d1"), passage("d2")]}
    (example,) = read_training_data(write_jsonl(tmp_path / "rows.jsonl", [row]))
    assert [p.docid for p in example.instruction_negatives] == ["d1", "d2", "i1", "i2"]


def test_limit_keeps_first_rows(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", [TEVATRON_ROW, PROMPTRIEVER_ROW, "{not json"])
    assert [e.query_id for e in read_training_data(source, limit=2)] == ["q1", "7"]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("{not json", "malformed JSON"),
        ({**TEVATRON_ROW, "query_id": None}, "missing 'query_id'"),
        ({k: v for k, v in TEVATRON_ROW.items() if k != "query"}, "missing 'query'"),
        ({**TEVATRON_ROW, "positive_passages": []}, "no positive passage"),
        (
            {**TEVATRON_ROW, "negative_passages": [{"docid": "n1"}]},
            "passage 1 of 'negative_passages' has no text",
        ),
        ({**PROMPTRIEVER_ROW, "new_negatives": [passage("i1"), {"text": 3}]}, "passage 2 of 'new_negatives'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: object, reason: str) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", [TEVATRON_ROW, row])
    with pytest.raises(InputError, match=reason) as caught:
        read_training_data(source)
    assert str(caught.value).startswith(f"{source}:2: ")


def test_missing_local_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_training_data(tmp_path / "absent.jsonl")


def test_saved_dataset_folder_and_parquet_share_row_parsing(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = [PROMPTRIEVER_ROW, {**PLAIN_PROMPTRIEVER_ROW, "new_negatives": []}]
    expected = read_training_data(write_jsonl(tmp_path / "rows.jsonl", rows))

    dataset = datasets.Dataset.from_list(rows)
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"dev": dataset}).save_to_disk(str(tmp_path / "saved_dict"))
    dataset.to_parquet(str(tmp_path / "rows.parquet"))

    assert list(read_training_data(tmp_path / "saved")) == list(expected)
    assert list(read_training_data(tmp_path / "saved_dict", split="dev")) == list(expected)
    assert list(read_training_data(tmp_path / "rows.parquet")) == list(expected)
    with pytest.raises(InputError, match="no split 'train'"):
        read_training_data(tmp_path / "saved_dict")


def test_jsonl_rows_stay_in_a_cached_arrow_table_and_are_parsed_when_read(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", [TEVATRON_ROW, PROMPTRIEVER_ROW, PLAIN_PROMPTRIEVER_ROW])
    rows = read_training_data(source)
    assert isinstance(rows, TrainingRows) and len(rows) == 3
    (arrow,) = [f["filename"] for f in rows.table.cache_files]  # memory-mapped from disk, not in memory
    assert rows[1] == rows[-2] and rows[1] is not rows[1]  # a new TrainExample each time it is read
    assert [e.query_id for e in pickle.loads(pickle.dumps(rows))] == [e.query_id for e in rows]
    assert [f["filename"] for f in read_training_data(source).table.cache_files] == [arrow]  # cached
    write_jsonl(source, [PROMPTRIEVER_ROW])
    os.utime(source, ns=(1, 1))  # a changed file (here: another modification time) is read again
    assert [e.query_id for e in read_training_data(source)] == [str(PROMPTRIEVER_ROW["query_id"])]
    with pytest.raises(IndexError):
        rows[3]


def test_group_sampler_draws_the_same_groups_from_arrow_rows(tmp_path: Path) -> None:
    rows = read_training_data(write_jsonl(tmp_path / "rows.jsonl", [TEVATRON_ROW, PROMPTRIEVER_ROW] * 3))
    arrow, listed = (GroupSampler(r, group_size=3, instruction_negatives=1) for r in (rows, list(rows)))
    for epoch in (0, 1):
        arrow.set_epoch(epoch)
        listed.set_epoch(epoch)
        assert [arrow[i].passages for i in range(len(rows))] == [listed[i].passages for i in range(len(rows))]


def test_plain_folder_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="save_to_disk"):
        read_training_data(tmp_path)


def test_hub_id_goes_to_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name: str, split: str) -> object:
        calls.append((name, split))
        return datasets.Dataset.from_list([PROMPTRIEVER_ROW, {**PROMPTRIEVER_ROW, "positive_passages": []}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert read_training_data("samaya-ai/msmarco-w-instructions", limit=1)[0].instruction is not None
    # a dataset's rows are parsed when read
    rows = read_training_data("samaya-ai/msmarco-w-instructions", split="dev")
    with pytest.raises(InputError, match=r"^samaya-ai/msmarco-w-instructions\[dev\]:2: .*no positive"):
        rows[1]
    assert calls == [
        ("samaya-ai/msmarco-w-instructions", "train"),
        ("samaya-ai/msmarco-w-instructions", "dev"),
    ]


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_write_read_round_trip(tmp_path: Path, name: str) -> None:
    examples = read_training_data(
        write_jsonl(tmp_path / "in.jsonl", [TEVATRON_ROW, PROMPTRIEVER_ROW, PLAIN_PROMPTRIEVER_ROW])
    )
    assert write_training_data(tmp_path / "out" / name, examples) == 3
    assert list(read_training_data(tmp_path / "out" / name)) == list(examples)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [name]


def test_written_rows_follow_promptriever_schema(tmp_path: Path) -> None:
    example = TrainExample("q", "a cat", "Be brief.", [Passage("p", "", "t")], [], [Passage("i", "", "u")])
    write_training_data(tmp_path / "rows.jsonl", [example])
    record = json.loads((tmp_path / "rows.jsonl").read_text())
    assert record["query"] == "a cat Be brief."
    assert (record["only_query"], record["only_instruction"], record["has_instruction"]) == (
        "a cat",
        "Be brief.",
        True,
    )
    assert record["new_negatives"] == [{"docid": "i", "title": "", "text": "u"}]


# --- group sampler ---------------------------------------------------------------------------------


def example(n_pos: int, n_neg: int, n_inst: int = 0, instruction: str | None = "Only X.") -> TrainExample:
    return TrainExample(
        "q",
        "query",
        instruction,
        [Passage(f"p{i}", "", "") for i in range(n_pos)],
        [Passage(f"n{i}", "", "") for i in range(n_neg)],
        [Passage(f"i{i}", "", "") for i in range(n_inst)],
    )


def docids(sampler: GroupSampler, i: int) -> list[str]:
    return [p.docid for p in sampler[i].passages]


def test_group_has_positive_first_then_instruction_negatives() -> None:
    sampler = GroupSampler([example(2, 30, 5), example(1, 30, 2)], group_size=8, instruction_negatives=3)
    assert len(sampler) == 2
    for i, n_inst in [(0, 3), (1, 2)]:
        ids = docids(sampler, i)
        assert len(ids) == 8 and ids[0].startswith("p")
        assert all(d.startswith("i") for d in ids[1 : 1 + n_inst])
        assert all(d.startswith("n") for d in ids[1 + n_inst :])
        assert len(set(ids)) == 8  # enough of each: drawn without replacement
    assert sampler[0].example is sampler.examples[0]


def test_instruction_negatives_only_for_rows_with_an_instruction() -> None:
    ids = docids(GroupSampler([example(1, 10, 5, instruction=None)], group_size=4), 0)
    assert all(d.startswith("n") for d in ids[1:])


def test_groups_are_deterministic_per_seed_and_epoch() -> None:
    rows = [example(3, 40, 6) for _ in range(4)]
    first, second = GroupSampler(rows, group_size=8, seed=1), GroupSampler(rows, group_size=8, seed=1)
    for epoch in range(3):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        assert [docids(first, i) for i in range(4)] == [docids(second, i) for i in range(4)]
    by_epoch = []
    for epoch in range(3):
        first.set_epoch(epoch)
        by_epoch.append([docids(first, i) for i in range(4)])
    assert by_epoch[0] != by_epoch[1] != by_epoch[2]
    assert {ids[0] for ids in (by_epoch[e][0] for e in range(3))} == {"p0", "p1", "p2"}  # positives rotate
    assert [docids(GroupSampler(rows, group_size=8, seed=2), i) for i in range(4)] != by_epoch[0]


def test_few_negatives_are_cycled() -> None:
    ids = docids(GroupSampler([example(1, 3, 2)], group_size=10, instruction_negatives=3), 0)
    assert ids[1:3] in (["i0", "i1"], ["i1", "i0"])
    counts = Counter(ids[3:])
    assert set(counts) == {"n0", "n1", "n2"} and sorted(counts.values()) == [2, 2, 3]


def test_instruction_negatives_fill_in_without_hard_negatives() -> None:
    ids = docids(GroupSampler([example(1, 0, 2)], group_size=6, instruction_negatives=1), 0)
    assert len(ids) == 6 and set(ids[1:]) == {"i0", "i1"}


def test_promptriever_order_takes_the_first_instruction_negatives_in_stored_order() -> None:
    sampler = GroupSampler([example(1, 30, 5)], group_size=8, instruction_negatives=3, order="promptriever")
    for epoch in range(3):
        sampler.set_epoch(epoch)
        ids = docids(sampler, 0)
        assert ids[1:4] == ["i0", "i1", "i2"]
        assert len(set(ids[4:])) == 4 and all(d.startswith("n") for d in ids[4:])


def test_reference_order_takes_instruction_then_hard_negatives_in_stored_order() -> None:
    sampler = GroupSampler([example(1, 30, 3)], group_size=8, instruction_negatives=7, order="reference")
    for epoch in range(2):
        sampler.set_epoch(epoch)
        assert docids(sampler, 0) == ["p0", "i0", "i1", "i2", "n0", "n1", "n2", "n3"]
    too_many = GroupSampler([example(1, 30, 9)], group_size=8, instruction_negatives=7, order="reference")
    assert docids(too_many, 0) == ["p0", *(f"i{k}" for k in range(7))]


def test_reference_order_draws_with_replacement_when_a_row_has_too_few() -> None:
    rows = [example(1, 2, 1) for _ in range(20)]
    sampler = GroupSampler(rows, group_size=8, instruction_negatives=7, order="reference")
    groups = [docids(sampler, i) for i in range(20)]
    assert all(ids[:2] == ["p0", "i0"] and set(ids[2:]) <= {"n0", "n1"} for ids in groups)
    assert len({tuple(ids) for ids in groups}) > 1  # drawn, not cycled in one fixed order


def test_bad_negatives_order_is_an_input_error() -> None:
    with pytest.raises(InputError, match="--negatives-order"):
        GroupSampler([example(1, 3)], order="sorted")


def test_row_without_negatives_is_an_error() -> None:
    with pytest.raises(ValueError, match="query 'q' has no negative passage.*mine hard negatives"):
        GroupSampler([example(1, 0, 3, instruction=None)], group_size=4)
    assert docids(GroupSampler([example(1, 0)], group_size=1), 0) == ["p0"]


# --- SciFact-stance rows ---------------------------------------------------------------------------

SUPPORT, REFUTE, EITHER = "Only supporting.", "Only refuting.", "Supporting or refuting."
CLAIMS = [  # qid, text, stance, evidence
    ("1", "Drug X lowers blood pressure.", "SUPPORT", ["d1", "d2"]),
    ("2", "Drug X does not lower blood pressure.", "CONTRADICT", ["d1", "d3"]),  # shares d1 with claim 1
    ("3", "Vitamin Y prevents colds.", "SUPPORT", ["d4"]),
    ("4", "Vitamin Y prevents colds.", "CONTRADICT", ["d5"]),  # same text as claim 3, other stance
    ("5", "Unjudged claim.", "SUPPORT", []),
]


def make_stance_dir(root: Path) -> Path:
    root.mkdir()
    queries, qrels = [], {"og": [], "matching": [], "changed": []}
    for qid, text, label, docs in CLAIMS:
        own, other = (SUPPORT, REFUTE) if label == "SUPPORT" else (REFUTE, SUPPORT)
        queries.append(
            {"_id": qid, "text": text, "stance": label, "instruction_og": EITHER}
            | {"instruction_changed": other, "instruction_matching": own}
        )
        for doc in docs:
            qrels["og"].append(f"{qid}\t{doc}\t1")
            qrels["matching"].append(f"{qid}\t{doc}\t1")
            qrels["changed"].append(f"{qid}\t{doc}\t0")
    write_jsonl(root / "queries.jsonl", queries)
    for name, lines in qrels.items():
        (root / f"qrels_{name}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    write_jsonl(
        root / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": f"doc {i}"} for i in range(1, 9)]
    )
    return root


def summary(rows: list[TrainExample]) -> dict[str, tuple[str | None, list[str], list[str], list[str]]]:
    return {
        r.query_id: (
            r.instruction,
            [p.docid for p in r.positives],
            [p.docid for p in r.instruction_negatives],
            [p.docid for p in r.negatives],
        )
        for r in rows
    }


def test_stance_rows_on_a_synthetic_split(tmp_path: Path) -> None:
    rows = stance.build_stance_training_rows(make_stance_dir(tmp_path / "st"), variants=stance.VARIANTS)
    assert summary(rows) == {
        "1-plain": (None, ["d1", "d2"], [], []),
        "1-og": (EITHER, ["d1", "d2"], [], []),
        "1-matching": (SUPPORT, ["d1", "d2"], [], []),
        "2-plain": (None, ["d1", "d3"], [], []),
        "2-og": (EITHER, ["d1", "d3"], [], []),
        "2-matching": (REFUTE, ["d1", "d3"], [], []),
        # claims 3 and 4 share their text: one row per instruction, with both claims' judgements
        "3-plain": (None, ["d4", "d5"], [], []),
        "3-og": (EITHER, ["d4", "d5"], [], []),
        "3-matching": (SUPPORT, ["d4"], ["d5"], []),
        "3-changed": (REFUTE, ["d5"], ["d4"], []),
    }
    assert rows[0].query == "Drug X lowers blood pressure." and rows[0].positives[0].text == "doc 1"


def test_stance_hard_negatives_skip_judged_and_neighbour_evidence(tmp_path: Path) -> None:
    negatives = {"1": ["d3", "d6", "d1", "d7", "d6"], "1-og": ["d8", "d2"], "3": ["d5", "d8"]}
    rows = summary(
        stance.build_stance_training_rows(make_stance_dir(tmp_path / "st"), hard_negatives=negatives)
    )
    assert rows["1-plain"][3] == rows["1-matching"][3] == ["d6", "d7"]  # d3: evidence of claim 2 (shares d1)
    assert rows["1-og"][3] == ["d8"]  # a row's own list wins over its claim's
    assert rows["3-plain"][3] == ["d8"] and rows["2-plain"][3] == []


def test_stance_errors(tmp_path: Path) -> None:
    root = make_stance_dir(tmp_path / "st")
    with pytest.raises(ValueError, match="variants"):
        stance.build_stance_training_rows(root, variants=("plain", "bogus"))
    with pytest.raises(InputError, match="'d9' from the hard negatives is not in the corpus"):
        stance.build_stance_training_rows(root, hard_negatives={"1": ["d9"]})


def test_stance_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_stance_dir(tmp_path / "st")
    run = tmp_path / "run.trec"
    run.write_text("1 Q0 d6 1 9.0 dense\n1 Q0 d7 2 8.0 dense\n")
    out = tmp_path / "rows.jsonl"
    argv = ["--stance-dir", str(root), "--output", str(out), "--negatives", str(run)]
    assert stance_cli.main([*argv, "--variants", "og", "changed"]) == 0
    assert "wrote 5 rows" in capsys.readouterr().err
    assert [(e.query_id, [p.docid for p in e.negatives]) for e in read_training_data(out)] == [
        ("1-og", ["d6", "d7"]),
        ("2-og", []),
        ("3-og", []),
        ("3-changed", []),
        ("4-changed", []),  # claim 4's "refuting" instruction is claim 3's matching one: d4 is relevant
    ]
    assert stance_cli.main(["--stance-dir", str(tmp_path / "absent"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_stance_negatives_for_no_row_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Negatives keyed by ids of another split used to give rows without hard negatives and a mere note."""
    root = make_stance_dir(tmp_path / "st")
    run = tmp_path / "run.trec"
    run.write_text("91 Q0 d6 1 9.0 dense\n92 Q0 d7 1 8.0 dense\n")
    out = tmp_path / "rows.jsonl"
    assert stance_cli.main(["--stance-dir", str(root), "--output", str(out), "--negatives", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run}: none of its 2 query ids is a row id (<qid>-<variant>) or claim id of {root} "
        "(its first: '91'; the first claim: '1')\n"
    )
    assert not out.exists()


def test_stance_rows_on_the_real_train_split(shared_data: Path) -> None:
    root = shared_data / "scifact-stance" / "train"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    topics = read_topics(root / "queries.jsonl")
    qrels = {v: read_qrels(root / f"qrels_{v}.tsv") for v in ("og", "matching", "changed")}
    instructions = {(t.qid, v): t.fields.get(f"instruction_{v}") for t in topics for v in qrels}
    evidence = {t.qid: {d for d, s in qrels["og"][t.qid].items() if s > 0} for t in topics}
    all_evidence = sorted(set().union(*evidence.values()))

    rows = stance.build_stance_training_rows(
        root, hard_negatives={t.qid: all_evidence for t in topics}, variants=stance.VARIANTS
    )

    counts = Counter(row.query_id.rsplit("-", 1)[1] for row in rows)
    assert counts == {"plain": 504, "og": 504, "matching": 504}  # 505 claims, two share their text
    for row in rows:
        qid, variant = row.query_id.rsplit("-", 1)
        assert row.instruction == (None if variant == "plain" else instructions[qid, variant])
        relevant = {d for d, s in qrels["og" if variant == "plain" else variant][qid].items() if s > 0}
        assert {p.docid for p in row.positives} <= relevant <= evidence[qid]
        # No two claims of this split share a text with opposite stances, so no row has instruction
        # negatives (test_stance_rows_on_a_synthetic_split checks the rule where some exist).
        assert row.instruction_negatives == []
        assert not {p.docid for p in row.negatives} & evidence[qid]
