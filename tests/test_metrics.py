"""Hand-worked checks of qpr_pyserini.metrics: evaluate(), p-MRR, Robustness@k."""

from __future__ import annotations

import math
import re

import pytest

from qpr_pyserini.eval.metrics import evaluate, per_query, pmrr, robustness
from qpr_pyserini.io.errors import InputError

# q1 ranks d2 (non-rel), d1 (rel 1), d5 (unjudged), d3 (rel 2); q2 ranks its only relevant doc first.
QRELS = {"q1": {"d1": 1, "d2": 0, "d3": 2}, "q2": {"d4": 1}}
RUN = {"q1": {"d2": 3.0, "d1": 2.0, "d5": 1.0, "d3": 0.5}, "q2": {"d4": 1.0, "d6": 0.9}}
# trec_eval nDCG: gain = rel, discount log2(rank + 1).
# q1: DCG = 1/log2(3) + 2/log2(5) = 1.49228; ideal order (d3, d1): 2 + 1/log2(3) = 2.63093 -> 0.56721.
NDCG_Q1 = (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3))
# q1: relevant at ranks 2 and 4 -> AP = (1/2 + 2/4) / 2 = 0.5, RR = 1/2; q2: nDCG = AP = RR = 1.
AP_Q1, RR_Q1 = 0.5, 0.5


def test_evaluate_matches_hand_computed_values() -> None:
    got = evaluate(QRELS, RUN, "nDCG@10 AP@1000 RR@10")
    assert list(got) == ["nDCG@10", "AP@1000", "RR@10"]
    assert got["nDCG@10"] == pytest.approx((NDCG_Q1 + 1) / 2)
    assert got["AP@1000"] == pytest.approx((AP_Q1 + 1) / 2)
    assert got["RR@10"] == pytest.approx((RR_Q1 + 1) / 2)


def test_map_is_read_as_ap_and_names_are_kept_in_order() -> None:
    got = evaluate(QRELS, RUN, ["RR@10", "MAP@1000", "MAP"])
    assert list(got) == ["RR@10", "MAP@1000", "MAP"]
    assert got["MAP@1000"] == got["MAP"] == pytest.approx(0.75)


def test_per_query() -> None:
    got = per_query(QRELS, RUN, "nDCG@10")
    assert got == pytest.approx({"q1": NDCG_Q1, "q2": 1.0})


@pytest.mark.parametrize("name", ["nDGC@10", "nDCG(foo=1)@10", "nDCG@@10"])
def test_unknown_measure_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"unknown measure {name!r}")):
        evaluate(QRELS, RUN, f"AP {name}")


QRELS_3 = {**QRELS, "q3": {"d7": 1}}  # q3 has no results in RUN


def test_missing_error_names_count_and_queries() -> None:
    with pytest.raises(ValueError, match=r"1 of 3 judged queries .*\(first: q3\)"):
        evaluate(QRELS_3, RUN, "AP@1000")


def test_missing_zero_counts_unanswered_queries_as_zero() -> None:
    # (0.5 + 1 + 0) / 3, as trec_eval -c
    assert evaluate(QRELS_3, RUN, "AP@1000", missing="zero")["AP@1000"] == pytest.approx(0.5)


def test_missing_skip_ignores_unanswered_queries() -> None:
    assert evaluate(QRELS_3, RUN, "AP@1000", missing="skip")["AP@1000"] == pytest.approx(0.75)


def test_empty_result_list_counts_as_missing() -> None:
    with pytest.raises(ValueError, match="first: q2"):
        evaluate(QRELS, {"q1": RUN["q1"], "q2": {}}, "AP@1000")


@pytest.mark.parametrize("missing", ["error", "zero", "skip"])
def test_no_shared_query_is_an_error_in_every_mode(missing: str) -> None:
    with pytest.raises(ValueError, match="share no query"):
        evaluate(QRELS, {"other": {"d1": 1.0}}, "AP@1000", missing=missing)


def test_bad_missing_mode() -> None:
    with pytest.raises(ValueError, match="missing: must be one of"):
        evaluate(QRELS, RUN, "AP@1000", missing="ignore")


# p-MRR. q1: run_og sorted by (score, doc id) descending: a1 .9 | a3 .5, a2 .5 (tie: "a3" > "a2") | a4 | a5,
# so R_og: a1=1, a3=2, a2=3, a4=4, a5=5 (a score-only stable sort would put a2 second).
# run_changed: a3=1, a2=2, a4=3, a1=4, a5 missing -> 4 + 1 = 5.
# Changed judgements: a1, a2, a5 (a3, a4 keep theirs).
#   a1 moves down 1 -> 4: 1 - 1/4 = 0.75;  a2 moves up 3 -> 2: 2/3 - 1 = -1/3;  a5 stays 5 -> 5: 0.
#   q1 = (0.75 - 1/3 + 0) / 3 = 5/36.
# q2: b1 changes; R_og = 1; run_changed ties b1, b2 at .5 and "b2" > "b1", so R_new = 2: 1 - 1/2 = 0.5.
# q3: no judgement changes -> excluded.  p-MRR = (5/36 + 1/2) / 2 = 23/72.
QRELS_OG = {
    "q1": {"a1": 1, "a2": 1, "a3": 1, "a4": 0, "a5": 1},
    "q2": {"b1": 1, "b2": 0},
    "q3": {"c1": 1, "c2": 0},
}
QRELS_CHANGED = {
    "q1": {"a1": 0, "a2": 0, "a3": 1, "a4": 0, "a5": 0},
    "q2": {"b1": 0, "b2": 0},
    "q3": {"c1": 1, "c2": 0},
}
RUN_OG = {
    "q1": {"a1": 0.9, "a2": 0.5, "a3": 0.5, "a4": 0.3, "a5": 0.2},
    "q2": {"b1": 0.9, "b2": 0.1},
    "q3": {"c1": 0.1, "c2": 0.9},
}
RUN_CHANGED = {
    "q1": {"a3": 0.8, "a2": 0.7, "a4": 0.6, "a1": 0.4},
    "q2": {"b1": 0.5, "b2": 0.5},
    "q3": {"c1": 0.9, "c2": 0.1},
}


def test_pmrr_hand_worked() -> None:
    result = pmrr(QRELS_OG, QRELS_CHANGED, RUN_OG, RUN_CHANGED)
    assert result.per_query == pytest.approx({"q1": 5 / 36, "q2": 0.5})
    assert result.score == pytest.approx(23 / 72)


def test_pmrr_bounds() -> None:
    # The changed doc drops from first to last of 1000 -> 1 - 1/1000; rising the same way -> -(1 - 1/1000).
    down = {f"d{i:04d}": 1000.0 - i for i in range(1000)}
    up = {doc: -score for doc, score in down.items()}
    og, changed = {"q": {"d0000": 1}}, {"q": {"d0000": 0}}
    assert pmrr(og, changed, {"q": down}, {"q": up}).score == pytest.approx(0.999)
    assert pmrr(og, changed, {"q": up}, {"q": down}).score == pytest.approx(-0.999)


def test_pmrr_doc_judged_in_one_file_counts_as_zero_in_the_other() -> None:
    # x judged 1 only in og -> changed (1 vs 0); y judged 0 only in changed -> unchanged (0 vs 0).
    # x: R_og = 1, R_new = 3 -> 1 - 1/3 = 2/3.
    run_og = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    run_changed = {"q": {"x": 1.0, "y": 2.0, "z": 3.0}}
    assert pmrr({"q": {"x": 1}}, {"q": {"y": 0}}, run_og, run_changed).score == pytest.approx(2 / 3)


def test_pmrr_skips_queries_missing_from_a_run_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    run_changed = {key: value for key, value in RUN_CHANGED.items() if key != "q2"}
    result = pmrr(QRELS_OG, QRELS_CHANGED, RUN_OG, run_changed)
    assert "missing from a run and were skipped (first: q2)" in caplog.text
    assert result.per_query == pytest.approx({"q1": 5 / 36})


def test_pmrr_skips_queries_judged_in_one_qrels_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    changed = {key: value for key, value in QRELS_CHANGED.items() if key != "q2"}
    result = pmrr(QRELS_OG, changed, RUN_OG, RUN_CHANGED)
    assert "1 queries are judged in only one of the two qrels and were skipped (first: q2)" in caplog.text
    assert result.per_query == pytest.approx({"q1": 5 / 36})
    with pytest.raises(InputError, match="^qrels_changed: has no query id in common"):
        pmrr(QRELS_OG, {"x" + key: value for key, value in QRELS_CHANGED.items()}, RUN_OG, RUN_CHANGED)


def test_pmrr_without_any_changed_judgement_is_an_error() -> None:
    with pytest.raises(ValueError, match="no query has a changed judgement"):
        pmrr(QRELS_OG, QRELS_OG, RUN_OG, RUN_CHANGED)


def _ranked(relevant_at: int) -> dict[str, float]:
    """Ten results with the relevant doc "rel" at rank ``relevant_at``."""
    docs = [f"x{i}" for i in range(9)]
    docs.insert(relevant_at - 1, "rel")
    return {doc: 10.0 - i for i, doc in enumerate(docs)}


# Robustness: one relevant doc at rank r gives nDCG@10 = 1/log2(r + 1): r=1 -> 1, r=3 -> 1/2, r=7 -> 1/3.
# Base "q_a" (rsplit on the last "_"): 1, 1/2 -> min 1/2.  Base "q_b": 1/3, 1, 1/2 -> min 1/3.
# Robustness@10 = (1/2 + 1/3) / 2 = 5/12; nDCG@10 over the 5 instances = (1 + 1/2 + 1/3 + 1 + 1/2) / 5 = 2/3.
RANK_OF = {"q_a_1": 1, "q_a_2": 3, "q_b_1": 7, "q_b_2": 1, "q_b_3": 3}
R_QRELS = {qid: {"rel": 1} for qid in RANK_OF}
R_RUN = {qid: _ranked(rank) for qid, rank in RANK_OF.items()}


def test_robustness_hand_worked() -> None:
    got = robustness(R_QRELS, R_RUN)
    assert list(got) == ["Robustness@10", "nDCG@10"]
    assert got["Robustness@10"] == pytest.approx(5 / 12)
    assert got["nDCG@10"] == pytest.approx(2 / 3)


def test_robustness_group_of_overrides_grouping() -> None:
    # Everything in one group "q": the worst instance is 1/3.
    got = robustness(R_QRELS, R_RUN, group_of=lambda qid: qid.split("_")[0])
    assert got["Robustness@10"] == pytest.approx(1 / 3)


def test_robustness_k_is_in_the_names() -> None:
    # At k=5 the rank-7 instance scores 0: q_b min 0 -> (1/2 + 0) / 2; nDCG@5 = (1 + 1/2 + 0 + 1 + 1/2) / 5.
    got = robustness(R_QRELS, R_RUN, k=5)
    assert got == pytest.approx({"Robustness@5": 0.25, "nDCG@5": 0.6})


def test_robustness_missing_instance() -> None:
    run = {qid: docs for qid, docs in R_RUN.items() if qid != "q_a_2"}
    with pytest.raises(ValueError, match="first: q_a_2"):
        robustness(R_QRELS, run)
    # zero: q_a min 0 -> (0 + 1/3) / 2 = 1/6.
    assert robustness(R_QRELS, run, missing="zero")["Robustness@10"] == pytest.approx(1 / 6)
    # skip: q_a is just q_a_1 -> (1 + 1/3) / 2 = 2/3.
    assert robustness(R_QRELS, run, missing="skip")["Robustness@10"] == pytest.approx(2 / 3)
