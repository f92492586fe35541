"""Rate limits: requests and tokens per minute, per key and per model (token buckets).

Each limit is a token bucket holding at most one minute's allowance and refilling
continuously (``limit / 60`` per second): a key limited to 60 requests/minute may burst 60,
then gets one a second. A request takes 1 from the requests bucket and its *estimated* tokens
(prompt + predicted completion) from the tokens bucket, both or neither; once the real usage
is known, ``adjust`` corrects the tokens bucket (it may go negative: the debt is waited off).

Per request: two dict look-ups and a little float arithmetic; no I/O, no lock needed under
asyncio (the check-and-take has no ``await`` inside).

The answers carry OpenAI's rate-limit headers, which clients and SDK users already read:
``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` (time until the bucket is full again, e.g. ``1s``, ``6m0s``)
and the same three for ``tokens``; a refusal adds ``retry-after`` (seconds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelmix.budgets.errors import RateLimited

__all__ = ["RateLimit", "RateLimiter", "RateState", "TokenBucket", "format_reset"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per-minute limits; None = unlimited."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer")

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None

    def to_dict(self) -> dict[str, int]:
        d: dict[str, int] = {}
        if self.rpm is not None:
            d["rpm"] = self.rpm
        if self.tpm is not None:
            d["tpm"] = self.tpm
        return d


class TokenBucket:
    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, n: float) -> float:
        """Seconds until ``n`` can be taken (0: now). More than the capacity needs a full
        bucket (so a huge request is not refused forever)."""
        need = min(n, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate

    def reset_in(self) -> float:
        """Seconds until the bucket is full again."""
        return max(self.capacity - self.level, 0.0) / self.rate


def format_reset(seconds: float) -> str:
    """OpenAI's duration style: ``20ms``, ``1s``, ``7.5s``, ``6m0s``."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    tenths = math.ceil(seconds * 10) / 10
    if tenths < 60.0:
        return f"{tenths:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


@dataclass(slots=True)
class RateState:
    """A key's limits after an admitted request: what goes in the response headers."""

    limit_requests: int | None = None
    remaining_requests: int = 0
    reset_requests: float = 0.0
    limit_tokens: int | None = None
    remaining_tokens: int = 0
    reset_tokens: float = 0.0

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.limit_requests is not None:
            h["x-ratelimit-limit-requests"] = str(self.limit_requests)
            h["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
            h["x-ratelimit-reset-requests"] = format_reset(self.reset_requests)
        if self.limit_tokens is not None:
            h["x-ratelimit-limit-tokens"] = str(self.limit_tokens)
            h["x-ratelimit-remaining-tokens"] = str(self.remaining_tokens)
            h["x-ratelimit-reset-tokens"] = format_reset(self.reset_tokens)
        return h


_UNLIMITED = RateState()


class RateLimiter:
    """Buckets per key id and per model. ``clock`` is monotonic seconds (tests inject one)."""

    def __init__(
        self,
        models: Mapping[str, RateLimit] | None = None,
        *,
        default_key_limit: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models = dict(models or {})
        self.default_key_limit = default_key_limit
        self.clock = clock
        # (scope, name) -> (requests bucket or None, tokens bucket or None)
        self._buckets: dict[tuple[str, str], tuple[TokenBucket | None, TokenBucket | None]] = {}

    def _pair(
        self, scope: str, name: str, limit: RateLimit, now: float
    ) -> tuple[TokenBucket | None, TokenBucket | None]:
        pair = self._buckets.get((scope, name))
        if pair is not None:
            req, tok = pair
            if (req.capacity if req else None) == (float(limit.rpm) if limit.rpm else None) and (
                tok.capacity if tok else None
            ) == (float(limit.tpm) if limit.tpm else None):
                return pair
        # new, or the limit changed (key updated): start full, less what was already used
        req = TokenBucket(limit.rpm, now) if limit.rpm else None
        tok = TokenBucket(limit.tpm, now) if limit.tpm else None
        if pair is not None:
            for new, old in zip((req, tok), pair, strict=True):
                if new is not None and old is not None:
                    old.refill(now)
                    new.level = new.capacity - (old.capacity - old.level)
        pair = (req, tok)
        self._buckets[(scope, name)] = pair
        return pair

    def _take(
        self, scope: str, name: str, limit: RateLimit, tokens: int, now: float
    ) -> tuple[float, RateState]:
        """Take 1 request and ``tokens`` if both fit: (0, state); else (wait, state)."""
        req, tok = self._pair(scope, name, limit, now)
        wait = 0.0
        if req is not None:
            req.refill(now)
            wait = req.wait_for(1)
        if tok is not None:
            tok.refill(now)
            wait = max(wait, tok.wait_for(tokens))
        if wait == 0.0:
            if req is not None:
                req.level -= 1
            if tok is not None:
                tok.level -= tokens
        state = RateState()
        if req is not None:
            state.limit_requests = limit.rpm
            state.remaining_requests = max(int(req.level), 0)
            state.reset_requests = req.reset_in()
        if tok is not None:
            state.limit_tokens = limit.tpm
            state.remaining_tokens = max(int(tok.level), 0)
            state.reset_tokens = tok.reset_in()
        return wait, state

    def acquire(self, key_id: str | None, limit: RateLimit | None, tokens: int) -> RateState:
        """Admit one request of about ``tokens`` tokens for this key (``limit``: the key's
        own, else the default). Returns the header state; raises ``RateLimited`` (429 with
        the headers and ``retry-after``)."""
        limit = limit if limit is not None and not limit.empty else self.default_key_limit
        if key_id is None or limit is None or limit.empty:
            return _UNLIMITED
        wait, state = self._take("key", key_id, limit, tokens, self.clock())
        if wait > 0.0:
            which = []
            if state.limit_requests is not None and state.remaining_requests < 1:
                which.append(f"{limit.rpm} requests")
            if state.limit_tokens is not None and not which:
                which.append(f"{limit.tpm} tokens")
            headers = state.headers()
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            raise RateLimited(
                f"Rate limit exceeded for this key: {' and '.join(which)} per minute. "
                f"Retry in {wait:.1f} s.",
                retry_after=wait,
                headers=headers,
            )
        return state

    def acquire_model(self, model: str, tokens: int) -> float | None:
        """Admit one call to ``model`` (per-model limits, shared by all keys): None if it
        may go now, else the seconds to wait. The engine treats a wait as that model being
        rate-limited (fall back to the next candidate, or answer 429)."""
        limit = self.models.get(model)
        if limit is None:
            return None
        wait, _ = self._take("model", model, limit, tokens, self.clock())
        return wait if wait > 0.0 else None

    def adjust(self, key_id: str | None, model: str | None, delta_tokens: int) -> None:
        """Correct the token buckets once real usage is known: ``delta_tokens`` = actual -
        estimated (positive takes more, negative gives back)."""
        if delta_tokens == 0:
            return
        for scope, name in (("key", key_id), ("model", model)):
            if name is None:
                continue
            pair = self._buckets.get((scope, name))
            if pair is not None and pair[1] is not None:
                tok = pair[1]
                tok.refill(self.clock())
                tok.level = min(tok.capacity, tok.level - delta_tokens)
