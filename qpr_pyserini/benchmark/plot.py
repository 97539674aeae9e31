"""A score plot for benchmark runs: instruction following (p-MRR, or Robustness@10) against the standard score,
one labelled point per model, as the FollowIR and Promptriever papers draw it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qpr_pyserini.io.errors import InputError
from qpr_pyserini.io.runs import atomic_output

FOLLOWING = ("p-MRR", "Robustness@10")


def plot_scores(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write a PNG: x = the standard score, y = p-MRR (FollowIR) or Robustness@10 (InstructIR), both x100."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot", "needs matplotlib (pip install matplotlib)") from None
    points = [_point(record) for record in records]
    figure, axes = plt.subplots(figsize=(5, 4))
    for label, (_, x), (_, y) in points:
        axes.scatter([100 * x], [100 * y])
        axes.annotate(label, (100 * x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel(f"{points[0][1][0]} (x100)")
    axes.set_ylabel(f"{points[0][2][0]} (x100)")
    axes.axhline(0, color="grey", linewidth=0.5)
    axes.set_title(", ".join(sorted({str(r["dataset"]) for r in records})))
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return Path(path)


def check_plottable(record: Mapping[str, Any], where: str = "--plot") -> None:
    """An InputError naming ``where`` unless the (checked) scores record has the two scores the plot draws."""
    main = record["main"]
    if not any(name in main for name in FOLLOWING) or all(name in FOLLOWING for name in main):
        raise InputError(
            where,
            f"{record['dataset']}: a {record['suite']} run has no p-MRR or Robustness@10 and standard score "
            "to plot",
        )


def _point(record: Mapping[str, Any]) -> tuple[str, tuple[str, float], tuple[str, float]]:
    check_plottable(record)
    main = record["main"]
    following = next(name for name in FOLLOWING if name in main)
    standard = next(name for name in main if name not in FOLLOWING)
    encoder = record["encoder"]
    label = encoder.get("name") or Path(str(encoder.get("model"))).name
    return label, (standard, float(main[standard])), (following, float(main[following]))
