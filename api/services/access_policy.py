"""Who may connect, and with what: a domain's client access policy, decided without a query.

A policy is a mode (BLOCK_LISTED: every client but those a rule names; ALLOW_LISTED_ONLY: only
those a rule names), up to MAX_RULES rules and whether a login that names no client may go
through. A rule is a pattern over the client name the gateway reported (`*` is the only
wildcard, matched without case by a linear scan: no regular expression is ever built from a
user's text), optionally one protocol, optionally `below_version` (the first run of dotted
numbers in the client name, compared number by number).

Reports are decided by `Decider`s that each process keeps per domain (`PolicyCache`): a
report costs no query for its policy. A change is announced on Topic.ACCESS_POLICY once
committed, and every process forgets that domain's decider at once; a decider is also read
again after `gateway_token_cache_seconds` whatever happens, so that a process that missed the
announcement (Redis away) applies the change within that time. The account's own protocols are
the report statement's (api/services/login_sql.py): they need no cache.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from api.errors import UserError, UserErrorCode, UserErrors
from api.models import ClientAccessMode, ClientAccessPolicy, Domain, MailProtocol

MAX_RULES = 100
MAX_PATTERN = 256
MAX_VERSION = 64
_VERSION = re.compile(r"\d+(?:\.\d+)*")  # ours, fixed: linear
_MEMO = 4096  # decisions a decider remembers: clients repeat, so nearly every report is one


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: str
    protocol: MailProtocol | None = None
    below_version: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "pattern": self.pattern,
            "protocol": self.protocol.value if self.protocol is not None else None,
            "belowVersion": self.below_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, str | None]) -> Rule:
        protocol = data.get("protocol")
        return cls(
            pattern=str(data["pattern"]),
            protocol=MailProtocol(protocol) if protocol else None,
            below_version=data.get("belowVersion"),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    """A domain's policy; the default lets every client in."""

    mode: ClientAccessMode = ClientAccessMode.BLOCK_LISTED
    rules: tuple[Rule, ...] = ()
    allow_unnamed_clients: bool = True
    updated_at: datetime | None = None
    updated_by: str | None = None

    @classmethod
    def of(cls, row: ClientAccessPolicy | None) -> Policy:
        if row is None:
            return cls()
        return cls(
            mode=ClientAccessMode(row.mode),
            rules=tuple(Rule.from_json(rule) for rule in row.rules),
            allow_unnamed_clients=row.allow_unnamed_clients,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
        )


def version_of(text: str) -> tuple[int, ...] | None:
    """The first run of dotted numbers in `text`, without trailing zeros (16.0 is 16.0.0)."""
    found = _VERSION.search(text)
    if found is None:
        return None
    numbers = [int(part) for part in found.group().split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def glob_matches(parts: Sequence[str], text: str) -> bool:
    """Whether `text` matches a pattern split at its `*`s (both lower-case): the first part
    starts it, the last ends it, the others follow in order, each at its earliest place (for
    `*`, the earliest is always as good as any: a linear scan, no backtracking)."""
    if len(parts) == 1:
        return text == parts[0]
    first, last = parts[0], parts[-1]
    if len(text) < len(first) + len(last) or not text.startswith(first):
        return False
    if not text.endswith(last):
        return False
    at, end = len(first), len(text) - len(last)
    for part in parts[1:-1]:
        found = text.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


class _Compiled:
    __slots__ = ("below", "parts", "protocol")

    def __init__(self, rule: Rule) -> None:
        self.parts = rule.pattern.lower().split("*")
        self.protocol = rule.protocol
        self.below = version_of(rule.below_version) if rule.below_version else None

    def names(self, protocol: MailProtocol, client: str) -> bool:
        if self.protocol is not None and self.protocol is not protocol:
            return False
        if not glob_matches(self.parts, client):
            return False
        if self.below is None:
            return True
        version = version_of(client)
        return version is not None and version < self.below


class Decider:
    """A policy compiled for reports: whether it lets a client in, remembered per client."""

    __slots__ = ("_memo", "_rules", "allow_listed", "policy")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.allow_listed = policy.mode is ClientAccessMode.ALLOW_LISTED_ONLY
        self._rules = [_Compiled(rule) for rule in policy.rules]
        self._memo: dict[tuple[MailProtocol, str], bool] = {}

    @property
    def lets_everyone_in(self) -> bool:
        return not self.allow_listed and not self._rules and self.policy.allow_unnamed_clients

    def allows(self, protocol: MailProtocol, client_name: str | None) -> bool:
        if client_name is None:
            return self.policy.allow_unnamed_clients
        key = (protocol, client_name)
        known = self._memo.get(key)
        if known is not None:
            return known
        lower = client_name.lower()
        named = any(rule.names(protocol, lower) for rule in self._rules)
        allowed = named if self.allow_listed else not named
        if len(self._memo) >= _MEMO:
            self._memo.clear()
        self._memo[key] = allowed
        return allowed


EVERYONE = Decider(Policy())


def check_policy(
    mode: ClientAccessMode,
    rules: Sequence[Rule],
    allow_unnamed_clients: bool,
) -> Policy:
    """The policy, its rules checked and trimmed; UserErrors (INVALID_INPUT, pointing at each bad
    field) otherwise."""
    field = ("input", "rules")
    if len(rules) > MAX_RULES:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    f"At most {MAX_RULES} rules; {len(rules)} were given.",
                    field,
                )
            ]
        )
    problems: list[UserError] = []
    checked: list[Rule] = []
    for index, rule in enumerate(rules):
        at = (*field, str(index))
        pattern = rule.pattern.strip()
        if not 1 <= len(pattern) <= MAX_PATTERN or not pattern.isprintable():
            problems.append(
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    f"A pattern is 1 to {MAX_PATTERN} printable characters; * stands for any "
                    "run of characters.",
                    (*at, "pattern"),
                )
            )
        below = rule.below_version.strip() if rule.below_version is not None else None
        if below is not None and (len(below) > MAX_VERSION or _VERSION.fullmatch(below) is None):
            problems.append(
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    "belowVersion is dotted numbers, e.g. 16.0.10000.",
                    (*at, "belowVersion"),
                )
            )
        checked.append(Rule(pattern, rule.protocol, below))
    if problems:
        raise UserErrors(problems)
    return Policy(mode, tuple(checked), allow_unnamed_clients)


class PolicyCache:
    """Each domain's Decider, by domain name, for `ttl` seconds at most (see the module)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Decider]] = {}
        self._generation = 0

    async def deciders(self, domains: Iterable[str]) -> dict[str, Decider]:
        """The deciders of these domains (EVERYONE for one that does not exist); one query for
        those not known, none when all are."""
        now = time.monotonic()
        found: dict[str, Decider] = {}
        missing: list[str] = []
        for name in domains:
            entry = self._entries.get(name)
            if entry is not None and now - entry[0] < self.ttl:
                found[name] = entry[1]
            else:
                missing.append(name)
        if missing:
            generation = self._generation
            loaded = await load_policies(missing)
            for name in missing:
                decider = Decider(loaded[name]) if name in loaded else EVERYONE
                found[name] = decider
                if generation == self._generation and self.ttl > 0:
                    self._entries[name] = (now, decider)
        return found

    def forget(self, domain: str) -> None:
        self._generation += 1
        self._entries.pop(domain, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._entries.clear()


async def load_policies(domains: Sequence[str]) -> dict[str, Policy]:
    """The policies of these domains that exist (the default for one without its own)."""
    rows = await Domain.filter(name__in=list(dict.fromkeys(domains))).values("id", "name")
    if not rows:
        return {}
    ids = {int(row["id"]): str(row["name"]) for row in rows}
    own = {
        policy.domain_id: policy
        for policy in await ClientAccessPolicy.filter(domain_id__in=list(ids))
    }
    return {name: Policy.of(own.get(domain_id)) for domain_id, name in ids.items()}
