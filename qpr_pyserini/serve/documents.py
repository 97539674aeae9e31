"""The documents a served index answers with: a corpus read once into memory, shaped as Anserini shapes them.

Anserini's REST server (and Pyserini's, ``pyserini.server.document_format``) returns a stored JSON document
without its id fields: an object of the remaining fields, or the one remaining field's value. A BEIR record
``{"_id", "title", "text"}`` is thus ``{"title": ..., "text": ...}`` and a Pyserini record ``{"id",
"contents"}`` the contents string. ``parse=false`` gives the document as one string (title and text joined).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qpr_pyserini.io.corpus import Document, iter_corpus


class Documents:
    """Doc id -> document for one corpus (file, folder or ``irds:`` id), held in memory."""

    def __init__(self, source: str | Path) -> None:
        self.source = str(source)
        self._documents = {d.docid: d for d in iter_corpus(source)}

    def __len__(self) -> int:
        return len(self._documents)

    def __contains__(self, docid: str) -> bool:
        return docid in self._documents

    def payload(self, docid: str, *, parse: bool = True, max_length: int | None = None) -> Any:
        """The document as the v1 API returns it (None when the corpus lacks it); ``max_length`` cuts its text
        (or, with ``parse=False``, the string)."""
        document = self._documents.get(docid)
        if document is None:
            return None
        if not parse:
            return document.joined()[:max_length]
        return _shaped(document, max_length)


def _shaped(document: Document, max_length: int | None) -> Any:
    text = document.text if max_length is None else document.text[:max_length]
    if not document.title:
        return text
    return {"title": document.title, "text": text}
