"""The qpr_pyserini.eval CLI: JSON and table output against the Python API, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_metrics import QRELS, QRELS_CHANGED, QRELS_OG, R_QRELS, R_RUN, RUN, RUN_CHANGED, RUN_OG

from qpr_pyserini.eval import __main__ as eval_cli
from qpr_pyserini.eval.__main__ import main
from qpr_pyserini.eval.metrics import evaluate, pmrr, robustness
from qpr_pyserini.io.errors import InputError


def _write_qrels(path: Path, qrels: dict[str, dict[str, int]]) -> str:
    path.write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in qrels.items() for d, r in docs.items()))
    return str(path)


def _write_run(path: Path, run: dict[str, dict[str, float]]) -> str:
    lines = []
    for qid, docs in run.items():
        for rank, (doc, score) in enumerate(sorted(docs.items(), key=lambda x: -x[1]), start=1):
            lines.append(f"{qid} Q0 {doc} {rank} {score} test\n")
    path.write_text("".join(lines))
    return str(path)


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return {
        "qrels": _write_qrels(tmp_path / "qrels.txt", QRELS),
        "run": _write_run(tmp_path / "run.trec", RUN),
        "qrels_og": _write_qrels(tmp_path / "og.qrels", QRELS_OG),
        "qrels_changed": _write_qrels(tmp_path / "changed.qrels", QRELS_CHANGED),
        "run_og": _write_run(tmp_path / "og.trec", RUN_OG),
        "run_changed": _write_run(tmp_path / "changed.trec", RUN_CHANGED),
        "r_qrels": _write_qrels(tmp_path / "instructir.qrels", R_QRELS),
        "r_run": _write_run(tmp_path / "instructir.trec", R_RUN),
    }


def test_json_default_measures_match_the_api(
    files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run_cli(["--qrels", files["qrels"], "--run", files["run"], "--json"], capsys)
    assert (status, err) == (0, "")
    got = json.loads(out)
    expected = evaluate(QRELS, RUN, "nDCG@10 MAP@1000 RR@10 R@100")
    assert list(got) == list(expected) == ["nDCG@10", "MAP@1000", "RR@10", "R@100"]
    assert got == pytest.approx(expected)


def test_table_output_is_x100(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run_cli(
        ["--qrels", files["qrels"], "--run", files["run"], "--measures", "nDCG@10 AP"], capsys
    )
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["measure", "x100"]
    expected = evaluate(QRELS, RUN, "nDCG@10 AP")
    assert [row.split() for row in rows] == [[name, f"{100 * value:.2f}"] for name, value in expected.items()]
    assert rows[1].split() == ["AP", "75.00"]


def test_missing_modes(tmp_path: Path, files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    qrels = _write_qrels(tmp_path / "three.qrels", {**QRELS, "q3": {"d7": 1}})
    base = ["--qrels", qrels, "--run", files["run"], "--measures", "AP", "--json"]
    assert _run_cli([*base, "--missing", "zero"], capsys)[1] == '{"AP": 0.5}\n'
    assert _run_cli([*base, "--missing", "skip"], capsys)[1] == '{"AP": 0.75}\n'
    status, out, err = _run_cli(base, capsys)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(f"error: {files['run']}: 1 of 3 judged queries")


def test_pmrr_json_matches_the_api(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--pmrr", "--qrels-og", files["qrels_og"], "--qrels-changed", files["qrels_changed"]]
    argv += ["--run-og", files["run_og"], "--run-changed", files["run_changed"], "--json"]
    status, out, _ = _run_cli(argv, capsys)
    assert status == 0
    assert json.loads(out) == {
        "p-MRR": pytest.approx(pmrr(QRELS_OG, QRELS_CHANGED, RUN_OG, RUN_CHANGED).score)
    }
    assert json.loads(out)["p-MRR"] == pytest.approx(23 / 72)


def test_pmrr_table(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--pmrr", "--qrels-og", files["qrels_og"], "--qrels-changed", files["qrels_changed"]]
    argv += ["--run-og", files["run_og"], "--run-changed", files["run_changed"]]
    status, out, _ = _run_cli(argv, capsys)
    assert status == 0
    assert out.splitlines()[1].split() == ["p-MRR", f"{100 * 23 / 72:.2f}"]


def test_robustness_json_matches_the_api(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run_cli(
        ["--robustness", "--qrels", files["r_qrels"], "--run", files["r_run"], "--json"], capsys
    )
    assert status == 0
    got = json.loads(out)
    assert got == pytest.approx(robustness(R_QRELS, R_RUN))
    assert got == pytest.approx({"Robustness@10": 5 / 12, "nDCG@10": 2 / 3})


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--qrels", "{qrels}", "--run", "{missing}"], "{missing}: no such file"),
        (["--qrels", "{qrels}", "--run", "{qrels}"], "{qrels}:1: expected 6 columns"),
        (["--qrels", "{qrels}", "--run", "{run}", "--measures", "nDGC@10"], "unknown measure 'nDGC@10'"),
        (["--pmrr", "--qrels-og", "{qrels}"], "this mode needs --qrels-changed, --run-og, --run-changed"),
        (["--run", "{run}"], "this mode needs --qrels"),
        (
            ["--qrels", "{qrels}", "--run", "{nan_run}"],
            "{nan_run}:2: score must be a finite number, got 'nan'",
        ),
        (
            ["--qrels", "{qrels}", "--run", "{inf_run}"],
            "{inf_run}:1: score must be a finite number, got '-inf'",
        ),
        (["--robustness", "--qrels", "{qrels}", "--run", "{run}"], "query id 'q1' is not of the form"),
        (["--qrels", "{three_qrels}", "--run", "{run}"], "1 of 3 judged queries"),
        (
            [
                "--pmrr",
                "--qrels-og",
                "{qrels}",
                "--qrels-changed",
                "{qrels}",
                "--run-og",
                "{run}",
                "--run-changed",
                "{run}",
            ],
            "no query has a changed judgement",
        ),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path,
    files: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    fragment: str,
) -> None:
    names = {**files, "missing": str(tmp_path / "nope.trec")}
    names["nan_run"] = str(tmp_path / "nan.trec")
    Path(names["nan_run"]).write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 nan t\n")
    names["inf_run"] = str(tmp_path / "inf.trec")
    Path(names["inf_run"]).write_text("q1 Q0 d1 1 -inf t\n")
    names["three_qrels"] = _write_qrels(tmp_path / "three.qrels", {**QRELS, "q3": {"d7": 1}})
    argv = [arg.format(**names) for arg in argv]
    status, out, err = _run_cli(argv, capsys)
    assert (status, out) == (2, "")
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1
    assert fragment.format(**names) in err
    # an InputError (what the CLIs print on one line), not any ValueError (a bug, shown with its traceback)
    monkeypatch.setattr(eval_cli, "run_cli", lambda action: action())
    with pytest.raises(InputError):
        main(argv)


def test_module_entry_point_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qpr_pyserini.eval", "--help"], capture_output=True, text=True, check=True
    )
    for word in ("--pmrr", "--robustness", "--missing", "--json", "x100", "MAP@k"):
        assert word in result.stdout


def test_pmrr_warnings_are_plain_lines_and_errors_name_the_file_at_fault(
    tmp_path: Path, files: dict[str, str]
) -> None:
    """Run as users run it: a skipped query is one warning line (no Python warning with a source echo), and
    qrels_changed ids that match no original query blame that file, not the runs."""

    def run(**changed: str) -> subprocess.CompletedProcess[str]:
        paths = {
            name: files[name] for name in ("qrels_og", "qrels_changed", "run_og", "run_changed")
        } | changed
        argv = [f"--{name.replace('_', '-')}={path}" for name, path in paths.items()]
        command = [sys.executable, "-W", "default", "-m", "qpr_pyserini.eval", "--pmrr", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    partial = _write_run(tmp_path / "partial.trec", {k: v for k, v in RUN_CHANGED.items() if k != "q2"})
    done = run(run_changed=partial)
    assert done.returncode == 0 and "p-MRR" in done.stdout
    assert (
        done.stderr
        == "p-MRR: 1 queries with changed judgements are missing from a run and were skipped (first: q2)\n"
    )
    renamed = {f"x{qid}": docs for qid, docs in QRELS_CHANGED.items()}
    other = _write_qrels(tmp_path / "other.qrels", renamed)
    failed = run(qrels_changed=other)
    assert failed.returncode == 2 and failed.stderr == (
        f"error: {other}: has no query id in common with the original qrels (its first: 'xq1'; the original's "
        "first: 'q1')\n"
    )
