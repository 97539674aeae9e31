"""The package's layout holds: no import circles (lazy imports included), the import-linter tiers, and the
commands that need no model start without torch."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _import_graph():  # noqa: ANN202  (the script's module)
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_import_graph_has_no_circle() -> None:
    result = _import_graph().summary(ROOT / "qpr_pyserini")
    assert result["circles"] == [] and result["arrows_back_up"] == []


def test_the_graph_counts_a_lazy_import_that_closes_a_circle(tmp_path: Path) -> None:
    """The check above can fail: an import inside a function that leads back is a circle."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from pkg.high import g\n    return g\n")
    (package / "high.py").write_text("from pkg.low import f\n\ndef g():\n    return f\n")
    result = _import_graph().summary(package)
    assert result["circles"] == [["pkg.high", "pkg.low"]]


def test_the_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists() and shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [str(lint if lint.exists() else "lint-imports")], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("command", ["eval", "instructdata", "mteb_export"])
def test_commands_without_a_model_start_without_torch(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", f"qpr_pyserini.{command}", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "usage:" in done.stdout
    assert not imported & {"torch", "transformers"}, f"{command} imports torch or transformers"
