"""Bearer credentials -> the principal, for HTTP requests and WebSocket connections alike."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from api.auth.principal import Principal
from api.auth.tokens import is_gateway_token, read_access_token
from api.errors import Unauthenticated
from api.settings import Settings

# The gateway a live gateway token belongs to, or None (api.services.gateways.gateway_principal).
GatewayLookup = Callable[[str], Awaitable[Principal | None]]

_CACHE_LIMIT = 1024
# Unknown gateway tokens each cost a database lookup: after this many from one client address
# within _MISS_WINDOW seconds, further ones are refused without a lookup until the window ends.
_MISS_LIMIT = 20
_MISS_WINDOW = 60.0
_MISS_ADDRESSES = 10_000


def bearer_token(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None when there is no value."""
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("The Authorization header must be `Bearer <token>`.")
    return token.strip()


class Authenticator:
    """Access tokens are checked by signature alone. Gateway tokens are looked up by hash and
    the answer kept for `gateway_token_cache_seconds`: gateways report every login, and this
    keeps that path free of a read per report. A revoked gateway token therefore stops working
    within that many seconds, on every server process."""

    def __init__(self, settings: Settings, gateway_lookup: GatewayLookup) -> None:
        self.key = settings.signing_key
        self.gateway_lookup = gateway_lookup
        self.ttl = float(settings.gateway_token_cache_seconds)
        self._gateways: dict[str, tuple[Principal, float]] = {}
        # Unknown gateway tokens per client address: (count, when the window started).
        self._misses: dict[str, tuple[int, float]] = {}

    async def principal(self, token: str, *, address: str | None = None) -> Principal:
        if not is_gateway_token(token):
            return read_access_token(token, key=self.key)
        now = time.monotonic()
        cached = self._gateways.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        misses, since = self._misses.get(address or "", (0, now))
        if misses >= _MISS_LIMIT and now - since < _MISS_WINDOW:
            wait = int(_MISS_WINDOW - (now - since)) + 1
            raise Unauthenticated(
                f"Too many unknown gateway tokens from this address: try again in {wait} seconds."
            )
        principal = await self.gateway_lookup(token)
        if principal is None:
            self._gateways.pop(token, None)
            self._miss(address or "", now)
            raise Unauthenticated("The gateway token is unknown or revoked.")
        if self.ttl > 0:
            if len(self._gateways) >= _CACHE_LIMIT:
                self._gateways.clear()
            self._gateways[token] = (principal, now + self.ttl)
        return principal

    def _miss(self, address: str, now: float) -> None:
        misses, since = self._misses.get(address, (0, now))
        if now - since >= _MISS_WINDOW:
            misses, since = 0, now
        if len(self._misses) >= _MISS_ADDRESSES and address not in self._misses:
            self._misses.clear()
        self._misses[address] = (misses + 1, since)
