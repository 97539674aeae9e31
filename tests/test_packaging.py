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
    for folder in ("qpr_pyserini", "encoders"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
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


def test_the_top_level_encoders_folder_is_the_one_copy_of_the_presets(wheel_files: set[str]) -> None:
    """The checkout's presets are read from encoders/ itself, and the wheel carries exactly those files."""
    from qpr_pyserini.presets import PACKAGED_PRESETS, available_presets

    assert PACKAGED_PRESETS == ROOT / "encoders"
    in_checkout = {p.name for p in (ROOT / "encoders").glob("*.json")}
    assert {"minilm.json", "smollm2-135m.json", "promptriever-llama2-7b.json", "repllama-llama2-7b.json"} <= in_checkout
    shipped = {name for name in wheel_files if name.startswith("qpr_pyserini/presets/shipped/")}
    assert {f"qpr_pyserini/presets/shipped/{n}" for n in in_checkout} == {n for n in shipped if n.endswith(".json")}
    assert set(available_presets()) == {Path(n).stem for n in in_checkout}
    assert not list((ROOT / "qpr_pyserini").rglob("*.json")), "a preset copy inside the package"


def test_the_encoders_readme_documents_every_encoder_field() -> None:
    from dataclasses import fields

    from qpr_pyserini.config import EncoderConfig

    readme = (ROOT / "encoders" / "README.md").read_text()
    missing = [f.name for f in fields(EncoderConfig) if f"`{f.name}`" not in readme]
    assert not missing, f"encoders/README.md does not explain {missing}"


def test_the_package_list_is_every_package(wheel_files: set[str]) -> None:
    """pyproject.toml lists the packages (the presets' folder is mapped in): none may be left out."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "qpr_pyserini").rglob("__init__.py")
    }
    assert on_disk | {"qpr_pyserini.presets.shipped"} == listed
    assert {"qpr_pyserini/presets/__init__.py", "qpr_pyserini/train/trainer.py"} <= wheel_files


def test_wheel_ships_the_reproduction_records(wheel_files: set[str]) -> None:
    shipped = {name for name in wheel_files if name.startswith("qpr_pyserini/repro/yaml/")}
    assert {
        f"qpr_pyserini/repro/yaml/{p.name}" for p in (ROOT / "qpr_pyserini" / "repro" / "yaml").glob("*.yaml")
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
    undeclared = {
        module: owners.get(module)
        for module in third_party
        if not {canonicalize_name(d) for d in owners.get(module, [])} & set(_declared())
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
