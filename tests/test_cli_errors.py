"""run_cli: only input and file errors become one line and status 2; anything else is a bug (traceback)."""

from __future__ import annotations

import pytest

from qpr_pyserini.cli import run_cli
from qpr_pyserini.io.errors import InputError


def test_input_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> str:
        raise InputError("topics.tsv", "no such\n field", line=3)

    assert run_cli(action) == 2
    assert capsys.readouterr().err == "error: topics.tsv:3: no such field\n"


def test_os_error_names_the_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> str:
        return (tmp_path / "absent").read_text()

    assert run_cli(action) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'absent'}: ") and err.count("\n") == 1


@pytest.mark.parametrize("exc", [ValueError("shape mismatch"), KeyError("encoder"), RuntimeError("boom")])
def test_internal_errors_propagate(exc: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> str:
        raise exc

    with pytest.raises(type(exc)):
        run_cli(action)
    assert "error:" not in capsys.readouterr().err


def test_success_prints_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(lambda: "done") == 0
    assert capsys.readouterr().out == "done\n"
