"""Benchmarks as they define themselves (FollowIR, InstructIR, BEIR): runs, scores.json and a score plot."""

from qpr_pyserini.benchmark.plot import plot_scores
from qpr_pyserini.benchmark.suites import format_scores, run_benchmark, standard_measure

__all__ = ["format_scores", "plot_scores", "run_benchmark", "standard_measure"]
