"""The built wheel carries everything a non-editable install needs: the encoder presets above all."""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def test_wheel_ships_the_reproduction_records(wheel_files: set[str]) -> None:
    shipped = {name for name in wheel_files if name.startswith("qpr_pyserini/repro_records/")}
    assert {
        f"qpr_pyserini/repro_records/{p.name}"
        for p in (ROOT / "qpr_pyserini" / "repro_records").glob("*.yaml")
    } == shipped


def _declared() -> dict[str, Requirement]:
    """The dependencies, then the optional extras' (modules imported only by an opt-in feature, such as
    ``--backend openvino``); dev's test tools are not the package's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for name, reqs in project["optional-dependencies"].items() if name != "dev" for r in reqs]
    requirements = [Requirement(r) for r in [*extras, *project["dependencies"]]]
    return {canonicalize_name(r.name): r for r in requirements}


def test_every_imported_distribution_is_declared() -> None:
    modules = set()
    for path in (ROOT / "qpr_pyserini").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"qpr_pyserini"}
    owners = importlib.metadata.packages_distributions()
    declared = set(_declared())
    providing = {canonicalize_name(d) for dists in owners.values() for d in dists}
    for name in declared - providing:  # a meta-package: fastmcp 4 installs its module through fastmcp-slim
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # an extra that is not installed here
            continue
        declared |= {canonicalize_name(Requirement(r).name) for r in requires if "extra ==" not in r}
    undeclared = {
        module: owners.get(module)
        for module in third_party
        if not {canonicalize_name(d) for d in owners.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


@pytest.mark.parametrize(
    ("name", "needed", "api"),
    [
        ("torch", "2.6", "torch.accelerator"),
        ("transformers", "4.56", "from_pretrained(..., dtype=...)"),
        ("peft", "0.18", "PEFT with transformers 5"),
    ],
)
def test_floors_cover_the_apis_used(name: str, needed: str, api: str) -> None:
    floors = [s.version for s in _declared()[name].specifier if s.operator in (">=", "==")]
    assert floors and Version(floors[0]) >= Version(needed), f"{name}: {api} needs >= {needed}"
