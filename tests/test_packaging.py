"""The built wheel carries everything a non-editable install needs: the encoder presets above all."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Names inside a wheel built from a copy of the sources (the checkout gets no build/ folder)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "qpr_pyserini", source / "qpr_pyserini", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            source,
        ],
        check=True,
    )
    (wheel,) = out.glob("qpr_pyserini-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_wheel_ships_every_preset(wheel_files: set[str]) -> None:
    from qpr_pyserini.presets import PACKAGED_PRESETS, available_presets

    assert PACKAGED_PRESETS.parent == ROOT / "qpr_pyserini"
    shipped = {Path(name).stem for name in wheel_files if name.startswith("qpr_pyserini/presets/")}
    assert {"minilm", "smollm2-135m", "promptriever-llama2-7b", "repllama-llama2-7b"} <= shipped
    assert set(available_presets()) <= shipped


def test_wheel_ships_the_package_code(wheel_files: set[str]) -> None:
    assert {"qpr_pyserini/presets/__init__.py", "qpr_pyserini/train/trainer.py"} <= wheel_files
