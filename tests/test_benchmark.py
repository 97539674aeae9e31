"""Benchmark readers (every published layout) and ``python -m qpr_pyserini.benchmark`` on hand-made sets whose
runs and scores are worked out by hand (see tests/benchmark_fixtures.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from benchmark_fixtures import (
    CORPUS,
    INSTRUCTIR_QRELS,
    INSTRUCTIR_QUERIES,
    QRELS_CHANGED,
    QRELS_OG,
    TOP_RANKED,
    write_beir,
    write_followir,
    write_instructir,
    write_mteb_followir,
    write_qrels_tsv,
    write_tables,
)

from qpr_pyserini.benchmark import __main__ as benchmark_cli
from qpr_pyserini.benchmark import suites as benchmark
from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.eval import metrics
from qpr_pyserini.io.benchmark_data import dataset_name, load_benchmark
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import read_run


def _qrels(rows: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for qid, doc, score in rows:
        qrels.setdefault(qid, {})[doc] = score
    return qrels


def _ranking(run: dict[str, dict[str, float]], qid: str) -> list[str]:
    return [doc for doc, _ in sorted(run[qid].items(), key=lambda item: -item[1])]


@pytest.mark.parametrize(
    "layout", ["tsv", "jsonl", "parquet", "hub", "save_to_disk", "mteb-jsonl", "mteb-parquet"]
)
def test_every_followir_layout_reads_the_same(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "toy"
    if layout.startswith("mteb-"):
        write_mteb_followir(folder, layout.removeprefix("mteb-"))
    else:
        write_followir(folder, layout)
    bench = load_benchmark("followir", folder, tmp_path / "work")
    assert [t.qid for t in bench.topics] == ["q1", "q2"]
    assert bench.topics[0].query == "apple pie"
    assert bench.topics[0].fields["instruction_og"] == "red"
    assert bench.topics[0].fields["instruction_changed"] == "green"
    assert bench.qrels == {"og": _qrels(QRELS_OG), "changed": _qrels(QRELS_CHANGED)}
    assert bench.candidates == TOP_RANKED
    docs = [json.loads(line)["_id"] for line in Path(bench.corpus).read_text().splitlines()]
    assert docs == ["dA", "dB", "dC", "dD", "dE"]


def test_instructir_and_beir_layouts(tmp_path: Path) -> None:
    instructir = load_benchmark("instructir", write_instructir(tmp_path / "ir", "parquet"), tmp_path / "w1")
    assert [(t.qid, t.fields["instruction"]) for t in instructir.topics] == [
        ("a_1", "red"),
        ("a_2", "green"),
        ("b_1", "yellow"),
    ]
    assert instructir.qrels["test"]["a_2"] == {"dZ": 1}
    # MTEB's copy: instructions in their own "instructions" table (query-id, text), qrels as "default"
    mteb_copy = {
        "corpus": CORPUS,
        "queries": [{"_id": q["_id"], "text": q["text"]} for q in INSTRUCTIR_QUERIES],
        "instructions": [{"query-id": q["_id"], "text": q["instruction"]} for q in INSTRUCTIR_QUERIES],
        "default": [{"query-id": q, "corpus-id": d, "score": s} for q, d, s in INSTRUCTIR_QRELS],
    }
    copy = load_benchmark("instructir", write_tables(tmp_path / "m", mteb_copy, "hub"), tmp_path / "w3")
    assert [t.fields for t in copy.topics] == [t.fields for t in instructir.topics]
    assert copy.qrels == instructir.qrels
    beir = load_benchmark("beir", write_beir(tmp_path / "scifact"), tmp_path / "w2")
    assert [t.qid for t in beir.topics] == ["q1", "q2"]  # q9 is not judged
    assert beir.corpus == tmp_path / "scifact" / "corpus.jsonl"  # JSONL corpora are read in place


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    folder = write_followir(tmp_path / "toy", "tsv")
    (folder / "qrels_changed.tsv").unlink()
    with pytest.raises(InputError, match="qrels_changed"):
        load_benchmark("followir", folder, tmp_path / "w")
    with pytest.raises(InputError, match="no such folder"):
        load_benchmark("beir", tmp_path / "absent", tmp_path / "w")
    with pytest.raises(InputError, match="--suite"):
        load_benchmark("mteb", folder, tmp_path / "w")


def test_dataset_names() -> None:
    assert dataset_name("../shared/data/scifact-stance/test") == "scifact-stance-test"
    assert dataset_name("jhu-clsp/robust04-instructions") == "robust04-instructions"
    assert dataset_name("irds:beir/scifact/test") == "beir-scifact-test"


def test_followir_reranks_top_ranked_and_scores_by_hand(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    data = write_followir(tmp_path / "toy", "tsv")
    record = benchmark.run_benchmark(
        "followir", data, tmp_path / "out", encoder=tiny_encoder.model, progress=False
    )
    run_og = read_run(tmp_path / "out" / record["runs"]["og"])
    run_changed = read_run(tmp_path / "out" / record["runs"]["changed"])
    assert _ranking(run_og, "q1") == ["dA", "dB"]  # "apple pie red" is dA's text
    assert _ranking(run_changed, "q1") == ["dB", "dA"]
    assert _ranking(run_og, "q2") == ["dE", "dD"]
    assert record["mode"] == "rerank top_ranked"
    # p-MRR: only q1's dA changed; ranks 1 (og) and 2 (changed): 1 - 1/2. nDCG@10: q1 1, q2 1/log2(3).
    assert record["main"]["p-MRR"] == pytest.approx(0.5)
    assert record["main"]["nDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert record["measures"]["og"]["nDCG@10"] == pytest.approx(record["main"]["nDCG@10"])
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["main"] == record["main"]


def test_followir_standard_measure_follows_the_set(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    data = write_followir(tmp_path / "robust04-instructions", "jsonl")
    record = benchmark.run_benchmark(
        "followir", data, tmp_path / "out", encoder=tiny_encoder.model, progress=False
    )
    assert list(record["main"]) == ["p-MRR", "MAP@1000"]
    assert record["main"]["MAP@1000"] == pytest.approx((1 + 1 / 2) / 2)
    assert benchmark.standard_measure("followir", "news21-instructions") == "nDCG@5"


def test_followir_without_top_ranked_is_full_retrieval(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    data = write_followir(tmp_path / "toy", "tsv", top_ranked=False)
    out = tmp_path / "out"
    record = benchmark.run_benchmark("followir", data, out, encoder=tiny_encoder.model, progress=False)
    run_og, run_changed = (read_run(out / record["runs"][kind]) for kind in ("og", "changed"))
    assert record["mode"] == "full retrieval"
    assert all(len(docs) == 5 for docs in run_og.values())
    assert _ranking(run_changed, "q1")[0] == "dB"
    expected = metrics.pmrr(_qrels(QRELS_OG), _qrels(QRELS_CHANGED), run_og, run_changed).score
    assert record["main"]["p-MRR"] == pytest.approx(expected) and expected > 0


def test_instructir_scores_by_hand(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    data = write_instructir(tmp_path / "instructir", "jsonl")
    record = benchmark.run_benchmark(
        "instructir", data, tmp_path / "out", encoder=tiny_encoder.model, progress=False
    )
    # nDCG@10 per instance: a_1 1, a_2 0 (its relevant doc is absent), b_1 1; worst per base: a 0, b 1.
    assert record["main"] == pytest.approx({"Robustness@10": 0.5, "nDCG@10": 2 / 3})


def test_beir_scores_by_hand_and_index_reuse(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    data = write_beir(tmp_path / "scifact")
    index = tmp_path / "index"
    first = benchmark.run_benchmark(
        "beir", data, tmp_path / "out1", encoder=tiny_encoder.model, index=index, progress=False
    )
    assert first["main"] == pytest.approx({"nDCG@10": 0.5})  # q1 finds dA first; q2's dY is absent
    stamp = (index / "index").stat().st_mtime_ns
    second = benchmark.run_benchmark("beir", data, tmp_path / "out2", index=index, progress=False)
    assert (index / "index").stat().st_mtime_ns == stamp  # reused, not re-encoded
    assert second["main"] == first["main"] and second["encoder"] == first["encoder"]
    assert set(read_run(tmp_path / "out2" / second["runs"]["test"])) == {"q1", "q2"}


def test_an_index_of_another_corpus_is_refused(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    index = tmp_path / "index"
    benchmark.run_benchmark(
        "beir",
        write_beir(tmp_path / "scifact"),
        tmp_path / "o1",
        encoder=tiny_encoder.model,
        index=index,
        progress=False,
    )
    other = write_instructir(tmp_path / "instructir", "jsonl")
    (other / "corpus.jsonl").write_text('{"_id": "x", "text": "other"}\n')
    with pytest.raises(InputError, match="is not an index of"):
        benchmark.run_benchmark("instructir", other, tmp_path / "o2", index=index, progress=False)


def test_cli_writes_runs_scores_mteb_results_and_plot(
    tmp_path: Path, tiny_encoder: EncoderConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_followir(tmp_path / "toy", "tsv")
    out, mt, png = tmp_path / "out", tmp_path / "mt", tmp_path / "plot.png"
    argv = ["--suite", "followir", "--data", str(data), "--output", str(out), "--encoder", tiny_encoder.model]
    code = benchmark_cli.main([*argv, "--mteb-results", str(mt), "--plot", str(png), "--quiet"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "p-MRR" in printed and "50.00" in printed
    assert (out / "runs" / "toy-og.trec").is_file() and (out / "runs" / "toy-changed.trec").is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = sorted(str(p.relative_to(mt)) for p in mt.rglob("*.json"))
    assert written == [
        "qpr_pyserini__tiny/no_revision_available/ToyInstructionRetrieval.json",
        "qpr_pyserini__tiny/no_revision_available/model_meta.json",
    ]


def test_followir_pmrr_over_fewer_queries_warns_and_says_so(
    tmp_path: Path, tiny_encoder: EncoderConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """qrels_changed without some queries: p-MRR used to be over the rest with no word, the header saying all."""
    data = write_followir(tmp_path / "toy", "tsv")
    write_qrels_tsv(data / "qrels_changed.tsv", [row for row in QRELS_CHANGED if row[0] != "q2"])
    record = benchmark.run_benchmark(
        "followir", data, tmp_path / "out", encoder=tiny_encoder.model, progress=False
    )
    assert "1 queries are judged in only one of the two qrels and were skipped (first: q2)" in caplog.text
    assert record["pmrr_queries"] == 1 and record["queries"] == 2
    assert (
        benchmark.format_scores(record)
        .splitlines()[0]
        .endswith("(2 queries, rerank top_ranked; p-MRR over 1 of them)")
    )


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--suite", "beir", "--data", str(tmp_path / "absent"), "--output", str(tmp_path / "out")]
    assert benchmark_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "absent" in err
    data = write_beir(tmp_path / "scifact")
    assert (
        benchmark_cli.main(
            ["--suite", "beir", "--data", str(data), "--output", str(tmp_path / "o"), "--hits", "0"]
        )
        == 2
    )
    assert "error: --hits: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o" / "index").exists()  # refused before encoding


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("plot-folder", "{plot_dir}: is a folder; expected a file path (--plot)"),
        ("plot-unwritable", "{unwritable}: cannot be written: {blocker} is not a folder (--plot)"),
        ("compare-missing", "{absent}: No such file or directory"),
        ("compare-not-scores", "{not_scores}: not a benchmark scores.json (no 'suite'"),
        ("compare-without-plot", "--compare: adds other models to --plot; give --plot too"),
        ("model-name", "--model-name: must be org/name as on the hub, got 'no slash'"),
        ("instructir-ids", "{ids}: query id 'a1' is not of the form <base>_<n>"),
    ],
)
def test_options_are_checked_before_any_work(
    tmp_path: Path, tiny_encoder: EncoderConfig, capsys: pytest.CaptureFixture[str], case: str, message: str
) -> None:
    """These were checked only after encoding and searching, leaving index/, runs/ and scores.json behind."""
    names = {
        "plot_dir": tmp_path / "plots",
        "blocker": tmp_path / "file",
        "unwritable": tmp_path / "file" / "p.png",
        "absent": tmp_path / "absent.json",
        "not_scores": tmp_path / "foo.json",
        "ids": tmp_path / "ids",
    }
    names["plot_dir"].mkdir()
    names["blocker"].write_text("")
    names["not_scores"].write_text('{"foo": 1}')
    data = write_followir(tmp_path / "toy", "tsv")
    suite = "followir"
    extra = {
        "plot-folder": ["--plot", str(names["plot_dir"])],
        "plot-unwritable": ["--plot", str(names["unwritable"])],
        "compare-missing": ["--plot", str(tmp_path / "p.png"), "--compare", str(names["absent"])],
        "compare-not-scores": ["--plot", str(tmp_path / "p.png"), "--compare", str(names["not_scores"])],
        "compare-without-plot": ["--compare", str(names["not_scores"])],
        "model-name": ["--mteb-results", str(tmp_path / "mt"), "--model-name", "no slash"],
        "instructir-ids": [],
    }[case]
    if case == "instructir-ids":
        suite = "instructir"
        data = write_tables(
            names["ids"],
            {
                "corpus": CORPUS,
                "queries": [{**q, "_id": q["_id"].replace("_", "")} for q in INSTRUCTIR_QUERIES],
                "qrels": [
                    {"query-id": q.replace("_", ""), "corpus-id": d, "score": s}
                    for q, d, s in INSTRUCTIR_QRELS
                ],
            },
            "jsonl",
        )
    out = tmp_path / "out"
    argv = [
        "--suite",
        suite,
        "--data",
        str(data),
        "--output",
        str(out),
        "--encoder",
        tiny_encoder.model,
        "--quiet",
    ]
    assert benchmark_cli.main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: " + message.format(**names)), err
    assert not (out / "index").exists() and not (out / "runs").exists() and not (out / "scores.json").exists()
    assert not list(tmp_path.rglob(".*.tmp-*"))


def test_a_late_failure_leaves_no_runs_or_scores(
    tmp_path: Path, tiny_encoder: EncoderConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(*_: object) -> None:
        raise InputError("runs", "no query with a changed judgement has results in both runs")

    monkeypatch.setattr(benchmark, "pmrr", fails)
    data = write_followir(tmp_path / "toy", "tsv")
    with pytest.raises(InputError):
        benchmark.run_benchmark(
            "followir", data, tmp_path / "out", encoder=tiny_encoder.model, progress=False
        )
    assert not list((tmp_path / "out" / "runs").iterdir()) and not (tmp_path / "out" / "scores.json").exists()


def test_a_file_output_that_is_a_folder_names_the_folder(tmp_path: Path) -> None:
    from qpr_pyserini.io.runs import atomic_output

    (tmp_path / "x").mkdir()
    with pytest.raises(InputError, match=f"^{tmp_path / 'x'}: is a folder; expected a file path$"):
        with atomic_output(tmp_path / "x") as tmp:
            tmp.write_text("never")
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_hub_ids_load_each_config_with_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hub id reads every table as a config of ``datasets.load_dataset`` (served here from local tables)."""
    import datasets
    from benchmark_fixtures import followir_tables

    tables = followir_tables()
    requested = []

    def load_dataset(path: str, name: str) -> datasets.DatasetDict:
        requested.append((path, name))
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(tables[name])})

    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda path: list(tables))
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    bench = load_benchmark("followir", "jhu-clsp/news21-instructions", tmp_path / "work")
    assert bench.name == "news21-instructions" and bench.candidates == TOP_RANKED
    assert bench.qrels["changed"] == _qrels(QRELS_CHANGED)
    assert Path(bench.corpus) == tmp_path / "work" / "corpus.jsonl"
    assert {name for _, name in requested} == set(tables)
