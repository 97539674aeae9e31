"""Reproduction: the main job (SciFact with and without instructions) and the reproduction records."""

from qpr_pyserini.repro.main_job import default_data, format_table, run
from qpr_pyserini.repro.records import load_records, run_records

__all__ = ["default_data", "format_table", "load_records", "run", "run_records"]
