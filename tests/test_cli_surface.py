"""The command-line surface: a console script for every tool, one spelling of options, shared groups."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import qpr_pyserini.encode.__main__
import qpr_pyserini.mine.__main__
import qpr_pyserini.repro.__main__
import qpr_pyserini.search.__main__

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qpr_pyserini"


def _tool_modules() -> set[str]:
    """Every module that runs as ``python -m`` (has a ``__main__`` block)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if 'if __name__ == "__main__":' in path.read_text():
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.add(module)
    return found


def test_every_tool_has_a_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    targets = {target.split(":")[0] for target in scripts.values()}
    assert _tool_modules() == targets
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert function == "main", name
        assert name.startswith("qpr-"), name


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings if o.startswith("--")]


def _parser_of(main, monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:  # noqa: ANN001
    """The parser a tool's ``main`` builds, caught at ``parse_args``."""
    caught: list[argparse.ArgumentParser] = []

    def stop(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        caught.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", stop)
    with pytest.raises(SystemExit):
        main([])
    return caught[0]


@pytest.mark.parametrize(
    "module",
    [
        qpr_pyserini.encode.__main__,
        qpr_pyserini.search.__main__,
        qpr_pyserini.mine.__main__,
        qpr_pyserini.repro.__main__,
    ],
)
def test_options_are_spelled_with_dashes_and_share_the_encoder_group(module, monkeypatch) -> None:  # noqa: ANN001
    parser = _parser_of(module.main, monkeypatch)
    options = _option_strings(parser)
    assert not [o for o in options if "_" in o]
    groups = {g.title: [a.dest for a in g._group_actions] for g in parser._action_groups}
    assert groups["encoder"] == ["encoder", "batch_size", "device", "backend"]


def test_train_accepts_the_dashed_spelling() -> None:
    from qpr_pyserini.train.arguments import ArgumentParser

    options = _option_strings(ArgumentParser())
    underscored = [o for o in options if "_" in o]
    assert underscored and all(o.replace("_", "-") in options for o in underscored)


def test_docs_spell_our_options_with_dashes() -> None:
    """README and docs show one spelling (the authors' own flags, quoted as such, are exempt)."""
    quoted_from_elsewhere = {"--negatives_first_n"}
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        found = set(re.findall(r"--[a-z]+(?:_[a-z0-9]+)+", path.read_text())) - quoted_from_elsewhere
        assert not found, f"{path.name}: {sorted(found)}"


# The tools that start without torch (quick to start); compat's package import hook used to make runpy warn.
QUICK_TOOLS = ["compat", "eval", "index", "instructdata", "instructdata.audit", "mteb_export"]


def test_tools_run_as_programs_without_warnings() -> None:
    """``python -m qpr_pyserini.<tool> --help`` as users run it prints no warning (runpy's RuntimeWarning about
    a module found in sys.modules first, a deprecation, ...): stderr stays empty."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"qpr_pyserini.{name}", "--help"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in QUICK_TOOLS
    }
    for name, process in running.items():
        _, err = process.communicate(timeout=300)
        assert (process.returncode, err) == (0, ""), name
