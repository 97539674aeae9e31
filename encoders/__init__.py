"""The shipped encoder presets (``*.json``): installed as the package ``qpr_pyserini.presets.shipped``."""
