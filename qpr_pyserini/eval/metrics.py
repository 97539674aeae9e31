"""Retrieval metrics: standard measures via ir_measures, p-MRR (FollowIR) and Robustness@k (InstructIR).

ir_measures (backed by pytrec_eval / trec_eval) covers nDCG, AP, RR, recall, ... with trec_eval's ranking
(score descending, ties by doc id descending). p-MRR and Robustness@k are hand-written here because no
maintained library exposes them standalone: both live only inside MTEB's task-specific evaluation code
(``mteb/_evaluators/retrieval_metrics.py``), tied to its dataset loading.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean

import ir_measures

from qpr_pyserini.io.errors import InputError

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

MISSING_MODES = ("error", "zero", "skip")

log = logging.getLogger(__name__)


def parse_measures(measures: str | Sequence[str]) -> dict[str, ir_measures.Measure]:
    """Map each requested name (whitespace-separated string or list) to its ir_measures measure.

    ``MAP`` / ``MAP@k`` (trec_eval's and Pyserini's spelling) are read as ir_measures' ``AP`` / ``AP@k``.
    """
    names = measures.split() if isinstance(measures, str) else list(measures)
    if not names:
        raise InputError("measures", "no measure given")
    parsed = {}
    for name in names:
        try:
            measure = ir_measures.parse_measure(re.sub(r"^MAP(?=@|\(|$)", "AP", name))
            measure.validate_params()
        except (ValueError, NameError, AssertionError) as exc:  # ir_measures' "not found", bad parameters
            raise InputError(
                "measures", f"unknown measure {name!r}: {exc} (ir_measures names, e.g. nDCG@10 AP@1000)"
            ) from None
        parsed[name] = measure
    return parsed


def evaluate(
    qrels: Qrels, run: Run, measures: str | Sequence[str], *, missing: str = "error"
) -> dict[str, float]:
    """Mean of each measure over the judged queries, keyed by the names as given, in order.

    ``missing`` decides what happens to qrels queries without results in ``run``: ``"error"`` raises
    InputError, ``"zero"`` scores them 0 (``trec_eval -c``), ``"skip"`` leaves them out (pytrec_eval).
    """
    parsed = parse_measures(measures)
    zero_qids = _missing_queries(qrels, run, missing)
    aggregators = {measure: measure.aggregator() for measure in parsed.values()}
    for metric in _iter_calc(list(aggregators), qrels, run):
        aggregators[metric.measure].add(metric.value)
    for aggregator in aggregators.values():
        for _ in zero_qids:
            aggregator.add(0.0)
    return {name: float(aggregators[measure].result()) for name, measure in parsed.items()}


def per_query(qrels: Qrels, run: Run, measure: str) -> dict[str, float]:
    """Value of one measure for each query that is both judged and has results."""
    (parsed,) = parse_measures([measure]).values()
    return {metric.query_id: float(metric.value) for metric in _iter_calc([parsed], qrels, run)}


@dataclass
class PMRR:
    """FollowIR's pairwise MRR on MTEB's -1..1 scale (papers report x100), with each query's mean."""

    score: float
    per_query: dict[str, float]


# p-MRR mirrors MTEB, mteb/_evaluators/retrieval_metrics.py (calculate_pmrr, get_rank_from_dict, rank_score;
# earlier mteb/evaluation/evaluators/utils.py:evaluate_change), which FollowIR's own repo (orionw/FollowIR)
# calls into:
# - Changed documents: MTEB reads them from the dataset's precomputed ``qrel_diff`` config; that list was
#   made by AbsTaskInstructionRetrieval.create_qrel_diff, which keeps every doc of the og qrels whose score
#   differs in the changed qrels (``changed[qid][doc] != og[qid][doc]``) -- any change counts, not only
#   relevant -> non-relevant, though in FollowIR's data the instructions only ever narrow relevance. MTEB
#   assumes both files judge the same documents (a doc absent from the changed qrels is a KeyError there);
#   here a doc judged in only one file counts as 0 (unjudged = non-relevant) in the other, so it counts when
#   its one judgement is non-zero. Only queries judged in both files are compared.
# - Rank: 1-based position in the query's results sorted by score; a doc absent from a run gets that run's
#   length for the query + 1. MTEB sorts by score alone (a stable sort, so ties keep the run's insertion
#   order); we break ties by doc id descending, trec_eval's rule, so ranks do not depend on file order --
#   identical to MTEB whenever the run lists tied docs in that order (as trec_eval-sorted runs do).
# - Score per doc: R_new/R_og - 1 if R_og >= R_new, else 1 - R_og/R_new; mean per query (pandas groupby),
#   then mean over queries. Queries with no changed doc produce no rows, so they are excluded; queries
#   missing from either run are skipped with a (logged) warning, as MTEB logs and skips them.
def pmrr(qrels_og: Qrels, qrels_changed: Qrels, run_og: Run, run_changed: Run) -> PMRR:
    """p-MRR of two runs over the same candidates, one with the original instruction, one with the changed.

    Queries judged in only one of the qrels, or missing from a run, are skipped with a logged warning (the
    score is over ``per_query``); qrels without a query in common, or runs without any scored query, are an
    InputError naming ``qrels_changed`` or ``runs``.
    """
    common = [q for q in qrels_og if q in qrels_changed]
    if not common:
        raise InputError(
            "qrels_changed",
            f"has no query id in common with the original qrels (its first: {next(iter(qrels_changed), None)!r}; "
            f"the original's first: {next(iter(qrels_og), None)!r})",
        )
    one_sided = [q for q in qrels_og if q not in qrels_changed] + [
        q for q in qrels_changed if q not in qrels_og
    ]
    if one_sided:
        log.warning(
            "p-MRR: %d queries are judged in only one of the two qrels and were skipped (first: %s)",
            len(one_sided),
            ", ".join(one_sided[:5]),
        )
    scores: dict[str, float] = {}
    unranked = []
    changed_any = False
    for qid in common:
        docs = _changed_docs(qrels_og[qid], qrels_changed[qid])
        if not docs:
            continue
        changed_any = True
        if not run_og.get(qid) or not run_changed.get(qid):
            unranked.append(qid)
            continue
        ranks_og, ranks_new = _ranks(run_og[qid]), _ranks(run_changed[qid])
        scores[qid] = fmean(
            _rank_score(ranks_og.get(doc, len(ranks_og) + 1), ranks_new.get(doc, len(ranks_new) + 1))
            for doc in docs
        )
    if unranked:
        log.warning(
            "p-MRR: %d queries with changed judgements are missing from a run and were skipped (first: %s)",
            len(unranked),
            ", ".join(unranked[:5]),
        )
    if not changed_any:
        raise InputError(
            "qrels_changed", "no query has a changed judgement (it judges as the original qrels do)"
        )
    if not scores:
        raise InputError("runs", "no query with a changed judgement has results in both runs")
    return PMRR(score=fmean(scores.values()), per_query=scores)


def robustness(
    qrels: Qrels,
    run: Run,
    k: int = 10,
    group_of: Callable[[str], str] | None = None,
    *,
    missing: str = "error",
) -> dict[str, float]:
    """InstructIR's Robustness@k (mean over base queries of the worst nDCG@k among its instances) and nDCG@k.

    Instances are ids ``<base>_<n>`` (an id of another form is an InputError); ``group_of`` maps an instance
    id to its base query instead. nDCG@k is the plain mean over instances; ``missing`` treats unanswered
    instances as in :func:`evaluate`.
    """
    if group_of is None:
        check_instance_ids(qrels)
    ndcg_name = f"nDCG@{k}"
    ndcg = per_query(qrels, run, ndcg_name)
    ndcg.update(dict.fromkeys(_missing_queries(qrels, run, missing), 0.0))
    group_of = group_of or _base_query
    groups: dict[str, list[float]] = defaultdict(list)
    for qid, value in ndcg.items():
        groups[group_of(qid)].append(value)
    return {
        f"Robustness@{k}": fmean(min(values) for values in groups.values()),
        ndcg_name: fmean(ndcg.values()),
    }


def check_instance_ids(qrels: Qrels) -> None:
    """Without ``<base>_<n>`` ids every query is its own group and Robustness@k silently equals nDCG@k."""
    for qid in qrels:
        base, _, instance = qid.rpartition("_")
        if not base or not instance:
            raise InputError(
                "qrels",
                f"query id {qid!r} is not of the form <base>_<n> (one id per instruction of a base query)",
            )


def _base_query(qid: str) -> str:
    # MTEB's robustness_at_10 (same file as p-MRR) groups by qid.split("_")[0], i.e. the first "_"; splitting
    # at the last one gives the same groups for MTEB's ids and keeps base ids that contain "_" whole.
    return qid.rsplit("_", 1)[0]


def _missing_queries(qrels: Qrels, run: Run, missing: str) -> list[str]:
    """Qrels queries without results that must score 0 under ``missing``; raise where that is an error."""
    if missing not in MISSING_MODES:
        raise InputError("missing", f"must be one of {', '.join(MISSING_MODES)}, not {missing!r}")
    absent = [qid for qid in qrels if not run.get(qid)]
    if len(absent) == len(qrels):
        raise InputError("run", "the run and the qrels share no query")
    if absent and missing == "error":
        raise InputError(
            "run",
            f"{len(absent)} of {len(qrels)} judged queries have no results in the run "
            f"(first: {', '.join(absent[:5])}); choose missing 'zero' (score 0) or 'skip'",
        )
    return absent if missing == "zero" else []


def _changed_docs(og: Mapping[str, int], changed: Mapping[str, int]) -> list[str]:
    return [doc for doc in {**og, **changed} if og.get(doc, 0) != changed.get(doc, 0)]


def _ranks(results: Mapping[str, float]) -> dict[str, int]:
    ordered = sorted(results.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return {doc: rank for rank, (doc, _) in enumerate(ordered, start=1)}


def _rank_score(rank_og: int, rank_new: int) -> float:
    if rank_og >= rank_new:
        return rank_new / rank_og - 1
    return 1 - rank_og / rank_new


def _iter_calc(measures: list[ir_measures.Measure], qrels: Qrels, run: Run) -> Iterator[ir_measures.Metric]:
    """ir_measures' per-query values, only for judged queries with results.

    ir_measures (pytrec_eval) also yields 0 for judged queries absent from the run; those are left to
    ``missing``.
    """
    plain_qrels = {qid: {doc: int(rel) for doc, rel in docs.items()} for qid, docs in qrels.items()}
    plain_run = {qid: {doc: float(score) for doc, score in docs.items()} for qid, docs in run.items() if docs}
    return (
        metric
        for metric in ir_measures.iter_calc(measures, plain_qrels, plain_run)
        if metric.query_id in plain_run
    )
