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
# Whether an access token's principal still stands: the account exists, in the same domain,
# with the same role (api.services.sign_ins.still_allowed).
StandingCheck = Callable[[Principal], Awaitable[bool]]

_CACHE_LIMIT = 1024
# Principals whose standing a process remembers after a change (some 200 bytes each).
_PRINCIPALS_KEPT = 20_000
# Seconds by which the clocks of the process that issued a token and of this one may differ.
_CLOCK_SKEW = 60.0
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
    """Access tokens are checked by signature, without a read: their principal is trusted as
    the token says unless its domain's accounts were removed or changed role after the token
    was issued. Then the database is asked once whether it still stands (the account exists
    with the same role; `standing`), and a removed or demoted administrator's tokens are refused
    from then on. Every process hears of such a change at once (`forget`, fed by
    Topic.PRINCIPALS); after losing Redis for a while a process cannot know what it missed, so
    it checks every token issued before it was back (`forget_all`).

    Gateway tokens are looked up by hash and the answer kept for `gateway_token_cache_seconds`:
    gateways report every login, and this keeps that path free of a read per report. A revoked
    gateway token therefore stops working within that many seconds, on every server process."""

    def __init__(
        self, settings: Settings, gateway_lookup: GatewayLookup, standing: StandingCheck
    ) -> None:
        self.key = settings.signing_key
        self.gateway_lookup = gateway_lookup
        self.standing = standing
        self.ttl = float(settings.gateway_token_cache_seconds)
        self.lifetime = settings.access_token_minutes * 60
        self._gateways: dict[str, tuple[Principal, float]] = {}
        # When each domain's signed-in accounts last changed (wall clock, as tokens are issued),
        # kept while a token issued before then may still be alive; and when every domain's did.
        self._changed: dict[int, float] = {}
        self._all_changed = 0.0
        # Principals checked since their domain changed: whether they stand, and when checked.
        self._stands: dict[Principal, tuple[bool, float]] = {}
        # Unknown gateway tokens per client address: (count, when the window started).
        self._misses: dict[str, tuple[int, float]] = {}

    async def principal(self, token: str, *, address: str | None = None) -> Principal:
        now = time.monotonic()
        if not is_gateway_token(token):
            signed_in = read_access_token(token, key=self.key)
            if not await self._still_stands(signed_in):
                raise Unauthenticated(
                    "This sign-in has ended: the account was removed or its role changed. "
                    "Sign in again."
                )
            return signed_in
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

    async def _still_stands(self, principal: Principal) -> bool:
        changed = max(self._changed.get(principal.domain_id or 0, 0.0), self._all_changed)
        if not changed:
            return True
        issued = principal.expires_at.timestamp() - self.lifetime if principal.expires_at else 0.0
        if issued > changed + _CLOCK_SKEW:
            return True  # issued after the change: it says what stands now
        checked = self._stands.get(principal)
        if checked is not None and checked[1] >= changed:
            return checked[0]
        stands = await self.standing(principal)
        if len(self._stands) >= _PRINCIPALS_KEPT:
            self._stands.clear()
        self._stands[principal] = (stands, time.time())
        return stands

    def forget(self, domain_id: int) -> None:
        """The domain's signed-in accounts were removed or changed role: each token of it issued
        before now is checked against the database once, at its next use."""
        now = time.time()
        self._changed[domain_id] = now
        # Changes older than any live token matter no more.
        horizon = now - self.lifetime - _CLOCK_SKEW
        for domain in [d for d, at in self._changed.items() if at < horizon]:
            del self._changed[domain]

    def forget_all(self) -> None:
        """Changes may have been missed (events lost): every token issued before now is checked
        once."""
        self._all_changed = time.time()

    def _miss(self, address: str, now: float) -> None:
        misses, since = self._misses.get(address, (0, now))
        if now - since >= _MISS_WINDOW:
            misses, since = 0, now
        if len(self._misses) >= _MISS_ADDRESSES and address not in self._misses:
            self._misses.clear()
        self._misses[address] = (misses + 1, since)
