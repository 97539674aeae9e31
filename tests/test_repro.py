"""repro finds the shared data from the working directory or $QPR_SHARED_DATA, not from the source tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from qpr_pyserini.repro import __main__ as repro_cli
from qpr_pyserini.repro import main_job as repro


def test_data_default_is_relative_to_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QPR_SHARED_DATA", raising=False)
    assert repro.default_data() == Path("../shared/data")
    monkeypatch.setenv("QPR_SHARED_DATA", "/somewhere/data")
    assert repro.default_data() == Path("/somewhere/data")


def test_missing_data_is_one_line_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QPR_SHARED_DATA", str(tmp_path / "absent"))
    assert repro_cli.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "absent" / "scifact") in err and "--data" in err
    assert not (tmp_path / "out").exists()
