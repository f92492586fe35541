"""Cross-site requests in keyless mode: a web page must not spend the gateway's provider keys.

Without keys, anyone who can reach the gateway may call it: for a gateway on a developer's
laptop that includes every web page the developer opens, through the browser (issue 14,
finding 4). A browser sends a cross-site POST without asking first (no CORS preflight) only
with a "simple" content type (``text/plain``, form encodings) or none; so an anonymous call
must say ``content-type: application/json`` (which a cross-site page cannot send without a
preflight this server never grants; else 400), and a request carrying a browser ``Origin``
header is refused (403) unless that origin is the gateway's own or in
``server.allowed_origins``.

Only anonymous calls are checked (a caller with a key proved who it is); two header look-ups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelmix.errors import GatewayError

__all__ = ["CrossSiteGuard"]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class CrossSiteGuard:
    """``check(headers)`` for anonymous callers; ``allowed``: extra origins that may call."""

    __slots__ = ("allowed",)

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self.allowed = frozenset(o.rstrip("/").lower() for o in allowed)

    def check(self, headers: Mapping[str, str]) -> None:
        """Raise ``GatewayError`` (400 / 403) for what may be a browser's cross-site call."""
        if not _is_json(headers.get("content-type")):
            raise GatewayError(
                "invalid_request",
                "Without an API key the gateway accepts only 'content-type: application/json' "
                "(a cross-site web page cannot send it).",
                code="unsupported_media_type",
            )
        origin = headers.get("origin")
        if origin is None:
            return
        origin = origin.rstrip("/").lower()
        if origin in self.allowed or self._same_origin(origin, headers.get("host")):
            return
        raise GatewayError(
            "permission",
            f"Cross-origin request from {origin[:200]!r} refused: without an API key only the "
            "origins in server.allowed_origins may call this gateway.",
            code="origin_not_allowed",
        )

    @staticmethod
    def _same_origin(origin: str, host: str | None) -> bool:
        if not host or origin == "null":
            return False
        return origin.partition("://")[2] == host.lower()
