"""An instruction-following set built from SciFact in which instructions change relevance (docs/instruction-data.md)."""
