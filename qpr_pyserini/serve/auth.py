"""API keys, as Pyserini's server takes them (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``), and when
they are required: always when configured; a server reachable from other machines must have them unless the
operator waives them explicitly."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable


class ApiKeys:
    """The accepted keys, compared in constant time (as digests, so a key's length does not leak either)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in keys]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def accepts(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether the request's ``X-API-Key`` or bearer token is one of the keys."""
        offered = [_digest(token) for token in _tokens(headers)]
        return any(hmac.compare_digest(o, d) for o in offered for d in self._digests)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tokens(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    tokens = []
    for name, value in headers:
        text = value.decode("utf-8", "surrogateescape").strip()
        if name.lower() == b"x-api-key" and text:
            tokens.append(text)
        elif name.lower() == b"authorization" and text[:7].lower() == "bearer " and text[7:].strip():
            tokens.append(text[7:].strip())
    return tokens


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
