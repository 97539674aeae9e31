"""Serving: instruction-aware search over HTTP (Anserini's v1 REST API, as Pyserini serves it) and MCP."""
