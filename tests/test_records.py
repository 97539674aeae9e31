"""Reproduction records: the shipped YAML files are well formed, and ``repro --all | NAME`` prints one OK / FAIL
line per score and exits non-zero on any FAIL."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest
from benchmark_fixtures import write_beir

from qpr_pyserini.config import EncoderConfig
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.repro import __main__ as repro_cli
from qpr_pyserini.repro import records


def test_shipped_records_are_well_formed() -> None:
    shipped = records.load_records()
    assert {"minilm-scifact-beir", "minilm-scifact-stance"} <= {
        n for n, r in shipped.items() if r.needs == "cpu"
    }
    assert {r.needs for r in shipped.values()} == {"cpu", "cpu-hours", "gpu-hub"}
    for record in shipped.values():
        assert record.path.stem == record.name
        for command in record.commands:
            argv = shlex.split(command)
            assert argv[0] == "python", record.name
            if argv[1] == "-m":
                assert importlib.util.find_spec(argv[2]) is not None, (record.name, argv[2])
            formatted = command.format(data="D", out="O", indexes="I")  # only the documented placeholders
            assert "{" not in formatted, record.name
        assert record.scores and all(":" in source for s in record.scores for source in s.sources)


def _record(folder: Path, data: Path, encoder: str, expected: float) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "toy-beir.yaml").write_text(
        "name: toy-beir\ntitle: toy\nneeds: cpu\ncommands:\n"
        f"  - python -m qpr_pyserini.benchmark --suite beir --data {data} --encoder {encoder} "
        "--index {indexes}/toy --output {out} --quiet\n"
        f"scores:\n  - measure: nDCG@10\n    from: scores.json:main/nDCG@10\n    expected: {expected}\n"
        "  - measure: queries\n    from: scores.json:main/missing\n    expected: 1\n    tolerance: 1\n"
    )
    (folder / "toy-gpu.yaml").write_text(
        "name: toy-gpu\ntitle: t\nneeds: gpu-hub\ncommands: [python -c 1]\n"
        "scores: [{measure: m, from: 'x.json:a', expected: 1}]\n"
    )
    return folder


def test_repro_all_prints_one_line_per_score_and_fails_on_a_miss(
    tmp_path: Path,
    tiny_encoder: EncoderConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_beir(tmp_path / "scifact")
    folder = _record(tmp_path / "records", data, tiny_encoder.model, expected=50.0)
    monkeypatch.setattr(records, "records_folder", lambda: folder)
    argv = ["--all", "--work", str(tmp_path / "work"), "--data", str(tmp_path)]
    assert repro_cli.main(argv) == 1  # the second score cannot be read: FAIL
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert lines[0].startswith("SKIP  toy-gpu  needs a GPU and the Hugging Face hub")
    assert (
        lines[1] == "OK    toy-beir  nDCG@10  50.00 (expected 50.00 ± 0.01)"
    )  # worked out in test_benchmark
    assert lines[2].startswith("FAIL  toy-beir  queries") and "'missing'" in lines[2]
    assert len(lines) == 3
    assert (tmp_path / "work" / "indexes" / "toy" / "index").is_file()


def test_a_wrong_expectation_fails_and_a_failing_command_is_reported(
    tmp_path: Path,
    tiny_encoder: EncoderConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _record(
        tmp_path / "records", write_beir(tmp_path / "scifact"), tiny_encoder.model, expected=51.0
    )
    record = records.read_record(folder / "toy-beir.yaml")
    assert not records.run_record(record, tmp_path, tmp_path / "work", tmp_path / "idx")
    assert "FAIL  toy-beir  nDCG@10  50.00 (expected 51.00 ± 0.01)" in capsys.readouterr().out
    monkeypatch.setattr(records, "records_folder", lambda: folder)
    assert (
        repro_cli.main(["toy-gpu", "--work", str(tmp_path / "w2")]) == 1
    )  # named: run even though it needs a GPU
    assert "FAIL  toy-gpu  m" in capsys.readouterr().out
    assert repro_cli.main(["nope"]) == 2
    assert "error: nope: no such record" in capsys.readouterr().err


def test_bad_records_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntitle: t\nneeds: tpu\ncommands: []\nscores: []\n")
    with pytest.raises(InputError, match="bad.yaml: field 'needs'"):
        records.read_record(path)
    path.write_text("name: x\ntitle: t\nneeds: cpu\ncommands: []\nscores: [{measure: m, expected: 1}]\n")
    with pytest.raises(InputError, match=r"scores\[0\]"):
        records.read_record(path)


def test_trained_arm_records_read_what_the_experiment_script_writes() -> None:
    """The cpu-hours records look up results-<mode>.json:arms/<arm>/*/<column>, as scripts/experiment_scifact_stance.py
    writes them (its ARMS and COLUMNS), so a renamed arm or column fails here, not hours into a rerun."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "experiment_scifact_stance.py"
    spec = importlib.util.spec_from_file_location("experiment_scifact_stance", script)
    assert spec is not None and spec.loader is not None
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    slow = [r for r in records.load_records().values() if r.needs == "cpu-hours"]
    assert len(slow) == 2
    for record in slow:
        for score in record.scores:
            (source,) = score.sources
            file, _, key = source.partition(":")
            arms, arm, star, column = key.split("/")
            assert file in ("results-query-side.json", "results-full.json") and (arms, star) == ("arms", "*")
            assert arm in experiment.ARMS or arm.startswith("untrained"), (record.name, arm)
            assert column in experiment.COLUMNS, (record.name, column)
