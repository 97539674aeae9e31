"""The package version (one place: the index records and ``qpr_pyserini.__version__`` read it)."""

__version__ = "0.1.0"
