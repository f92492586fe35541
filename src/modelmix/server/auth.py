"""Who is calling: the admin key, a virtual key, or nobody (when keys are not required).

Keys are compared in constant time and never logged; the ledger sees only a key's id.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from modelmix.errors import GatewayError
from modelmix.ledger.keys import ADMIN_KEY_ID, KeyStore

__all__ = ["ADMIN_KEY_ID", "DEFAULT_ADMIN_KEY_ENV", "Authenticator", "presented_key"]
#: The admin key's variable when the config names none (``server.admin_key_env``).
DEFAULT_ADMIN_KEY_ENV = "MODELMIX_ADMIN_KEY"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: How long the "are there any virtual keys?" answer is trusted before asking SQLite again.
_ANY_KEYS_TTL = 5.0


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer`` (OpenAI SDKs) or ``x-api-key`` (Anthropic SDKs)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


class Authenticator:
    def __init__(
        self, admin_key: str | None, keystore: KeyStore | None, required: bool | None
    ) -> None:
        self._admin = admin_key.encode() if admin_key else None
        self.keystore = keystore
        self._required = required
        self._any_keys = False
        self._any_keys_at = float("-inf")

    def keys_required(self) -> bool:
        if self._required is not None:
            return self._required
        if self._admin is not None:
            return True
        now = time.monotonic()
        if now - self._any_keys_at > _ANY_KEYS_TTL:
            self._any_keys = self.keystore.any_keys() if self.keystore else False
            self._any_keys_at = now
        return self._any_keys

    def open_locally(self, client: str | None, host_header: str | None) -> bool:
        """True when the admin pages may open without a key: no admin key, keys not
        required, and both the caller and the ``Host`` it asked for are loopback (a page
        reached through another name, e.g. by DNS rebinding, is not)."""
        if self._admin is not None or self.keys_required() or client not in _LOOPBACK:
            return False
        host = (host_header or "").strip().lower()
        bare = host[1:].partition("]")[0] if host.startswith("[") else host.partition(":")[0]
        return bare in _LOOPBACK

    def is_admin(self, key: str | None) -> bool:
        return (
            key is not None
            and self._admin is not None
            and hmac.compare_digest(key.encode(), self._admin)
        )

    def authenticate(self, headers: Mapping[str, str]) -> str | None:
        """The caller's key id, or None for an anonymous caller where keys are optional.

        Where keys are optional, SDKs still insist on sending one: an unknown key is then
        treated as anonymous rather than refused. Raises ``GatewayError`` otherwise.
        """
        key = presented_key(headers)
        if key is not None:
            if self.is_admin(key):
                return ADMIN_KEY_ID
            info = self.keystore.verify(key) if self.keystore else None
            if info is not None:
                return info.id
        if not self.keys_required():
            return None
        if key is None:
            raise GatewayError(
                "authentication",
                "Missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key'.",
                code="missing_api_key",
            )
        raise GatewayError("authentication", "Invalid API key.", code="invalid_api_key")
