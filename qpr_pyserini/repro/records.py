"""Reproduction records, in the spirit of Pyserini's two-click reproductions and Anserini's regressions.

One YAML file per condition in ``qpr_pyserini/repro/yaml/``::

    name: minilm-scifact-beir
    title: all-MiniLM-L6-v2 on BEIR SciFact test
    needs: cpu                      # cpu | cpu-hours (run with --include-slow) | gpu-hub (--include-gpu)
    commands:                       # run in order; "python" is this interpreter
      - python -m qpr_pyserini.benchmark --suite beir --data {data}/scifact --output {out} ...
    tolerance: 0.01                 # default for the scores, absolute, x100
    scores:
      - measure: nDCG@10
        from: scores.json:main/nDCG@10   # FILE under {out} (command-N.out: command N's output):KEY/PATH
        expected: 64.51                  # x100; a list of "from"s is averaged, "*" averages over a list
        tolerance: 0.01                  # optional, per score

Placeholders: ``{data}`` (the shared data), ``{out}`` (the record's own folder), ``{indexes}`` (a folder of
indexes shared by records, so a corpus is encoded once). ``python -m qpr_pyserini.repro --all`` runs them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from statistics import fmean
from typing import Any

import yaml

from qpr_pyserini.io.errors import InputError

NEEDS = {
    "cpu": "runs here on CPU",
    "cpu-hours": "hours of CPU: run with --include-slow",
    "gpu-hub": "needs a GPU and the Hugging Face hub (7B weights and the datasets): run with --include-gpu there",
}


@dataclass(frozen=True)
class Score:
    measure: str
    sources: tuple[str, ...]
    expected: float
    tolerance: float


@dataclass(frozen=True)
class Record:
    name: str
    title: str
    needs: str
    commands: tuple[str, ...]
    scores: tuple[Score, ...]
    path: Path


def records_folder() -> Path:
    return Path(str(resources.files("qpr_pyserini.repro") / "yaml"))


def load_records(folder: Path | None = None) -> dict[str, Record]:
    """Every record of ``folder`` (default: the shipped ones), by name."""
    records = [read_record(path) for path in sorted((folder or records_folder()).glob("*.yaml"))]
    by_name = {r.name: r for r in records}
    if len(by_name) != len(records):
        raise InputError(str(folder or records_folder()), "two records share a name")
    return by_name


def read_record(path: Path) -> Record:
    """One YAML record, checked field by field (errors name the file and field)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(str(path), f"not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(str(path), "expected a mapping")
    for key in ("name", "title", "needs", "commands", "scores"):
        if key not in raw:
            raise InputError(str(path), f"missing field {key!r}")
    if raw["needs"] not in NEEDS:
        raise InputError(str(path), f"field 'needs' must be one of {', '.join(NEEDS)}, not {raw['needs']!r}")
    default_tolerance = float(raw.get("tolerance", 0.01))
    scores = []
    for i, item in enumerate(raw["scores"]):
        try:
            sources = item["from"] if isinstance(item["from"], list) else [item["from"]]
            scores.append(
                Score(
                    str(item["measure"]),
                    tuple(str(s) for s in sources),
                    float(item["expected"]),
                    float(item.get("tolerance", default_tolerance)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                str(path), f"scores[{i}]: needs measure, from and a numeric expected ({exc})"
            ) from None
    return Record(
        str(raw["name"]), str(raw["title"]), raw["needs"], tuple(raw["commands"]), tuple(scores), path
    )


def run_record(
    record: Record, data: Path, work: Path, indexes: Path, echo: Callable[[str], None] = print
) -> bool:
    """Run a record's commands, then print one ``OK`` / ``FAIL`` line per score; True when all are OK."""
    out = work / record.name
    out.mkdir(parents=True, exist_ok=True)
    places = {"data": str(data), "out": str(out), "indexes": str(indexes)}
    for number, command in enumerate(record.commands, start=1):
        argv = [part.format(**places) for part in shlex.split(command)]
        if argv[0] == "python":
            argv[0] = sys.executable
        echo(f"# {record.name}: {shlex.join(argv)}")
        # stderr (progress bars, errors) goes straight to the terminal; stdout is kept as command-N.out
        done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            for score in record.scores:
                echo(f"FAIL  {record.name}  {score.measure}  command failed (exit {done.returncode})")
            return False
        (out / f"command-{number}.out").write_text(done.stdout)
    passed = True
    for score in record.scores:
        try:
            value = 100 * fmean(_lookup(out, source) for source in score.sources)
        except InputError as exc:
            echo(f"FAIL  {record.name}  {score.measure}  {exc}")
            passed = False
            continue
        ok = abs(value - score.expected) <= score.tolerance + 1e-9
        passed &= ok
        echo(
            f"{'OK  ' if ok else 'FAIL'}  {record.name}  {score.measure}  {value:.2f} "
            f"(expected {score.expected:.2f} ± {score.tolerance:g})"
        )
    return passed


def run_records(
    names: Sequence[str] | None,
    data: Path,
    work: Path,
    indexes: Path | None = None,
    *,
    include_slow: bool = False,
    include_gpu: bool = False,
    echo: Callable[[str], None] = print,
) -> bool:
    """Run the named records (any ``needs``), or all those ``needs`` allows; SKIP lines for the others."""
    records = load_records()
    if names:
        unknown = [n for n in names if n not in records]
        if unknown:
            raise InputError(unknown[0], f"no such record (known: {', '.join(records)})")
        chosen = [records[n] for n in names]
    else:
        allowed = (
            {"cpu"} | ({"cpu-hours"} if include_slow else set()) | ({"gpu-hub"} if include_gpu else set())
        )
        chosen = [r for r in records.values() if r.needs in allowed]
        for record in records.values():
            if record.needs not in allowed:
                echo(f"SKIP  {record.name}  {NEEDS[record.needs]}")
    passed = True
    for record in chosen:
        passed &= run_record(record, data, work, indexes or work / "indexes", echo)
    return passed


def _lookup(out: Path, source: str) -> float:
    """The number at ``FILE:KEY/PATH`` under ``out`` (``*`` averages over a list)."""
    file, _, key = source.partition(":")
    where = str(out / file)
    try:
        value: Any = json.loads((out / file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(where, f"cannot read scores: {exc}") from None
    return _at(value, key.split("/") if key else [], where, source)


def _at(value: Any, path: list[str], where: str, source: str) -> float:
    if not path:
        if not isinstance(value, int | float):
            raise InputError(where, f"{source} is not a number")
        return float(value)
    head, rest = path[0], path[1:]
    if head == "*" and isinstance(value, list):
        return fmean(_at(item, rest, where, source) for item in value)
    if not isinstance(value, dict) or head not in value:
        raise InputError(where, f"has no {head!r} (looking up {source})")
    return _at(value[head], rest, where, source)
