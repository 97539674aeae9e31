"""The one error a request can end in: an HTTP status and a message, answered as JSON ``{"error": ...}``."""

from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses: ``status`` (400, 401, 404, 405, 413, 429), a message for the client, and
    headers (``Retry-After`` on 429)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
