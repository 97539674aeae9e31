"""Evaluation of TREC runs: ir_measures' standard measures, FollowIR's p-MRR and InstructIR's Robustness@10
(no torch: ``python -m qpr_pyserini.eval`` starts fast)."""

from qpr_pyserini.eval.metrics import PMRR, evaluate, parse_measures, per_query, pmrr, robustness

__all__ = ["PMRR", "evaluate", "parse_measures", "per_query", "pmrr", "robustness"]
