"""A demo domain to try the MAPI/EWS tab with: `serve --demo`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from api.auth.passwords import hash_password
from api.models import Account, AuditAction, Domain, MailProtocol, SystemAdmin
from api.services import audit, domains, gateways, usage

DEMO_DOMAIN = "example.com"
READ_ONLY_DOMAIN = "readonly.example"
# Printed at start-up: the demo exists only to be tried.
DEMO_PASSWORD = "demo-password"  # noqa: S105
_FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Ken",
    "Frances",
    "John",
    "Radia",
    "Dennis",
    "Shafi",
    "Leslie",
    "Tim",
    "Sophie",
    "Linus",
    "Hedy",
]
_LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Allen",
    "Backus",
    "Perlman",
    "Ritchie",
    "Goldwasser",
    "Lamport",
    "Berners-Lee",
    "Wilson",
]


@dataclass(frozen=True, slots=True)
class DemoSignIns:
    domain_admin: str
    read_only_admin: str
    system_admin: str
    password: str
    gateway_token: str
    # Accounts of the demo domain with MAPI/EWS: reports for them are allowed.
    enabled_addresses: tuple[str, ...]

    @property
    def enabled_address(self) -> str:
        return self.enabled_addresses[0]


async def load_demo(*, seed: int = 7) -> DemoSignIns | None:
    """Loads the demo into an empty database; None when there is data already."""
    if await Domain.exists() or await SystemAdmin.exists():
        return None
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    password_hash = await hash_password(DEMO_PASSWORD)
    await SystemAdmin.create(username="sysadmin", password_hash=password_hash)
    example = await domains.create_domain(
        actor="sysadmin",
        name=DEMO_DOMAIN,
        max_mapi_ews_accounts=25,
        mapi_ews_account_management=True,
    )
    read_only = await domains.create_domain(
        actor="sysadmin",
        name=READ_ONLY_DOMAIN,
        max_mapi_ews_accounts=5,
        mapi_ews_account_management=False,
    )
    now = datetime.now(UTC)
    async with in_transaction("default") as conn:
        enabled: list[str] = []
        for domain, count, with_mapi_ews in ((example, 40, 12), (read_only, 8, 3)):
            rows = [
                Account(
                    domain=domain,
                    username="admin",
                    name="Domain Administrator",
                    password_hash=password_hash,
                    is_domain_admin=True,
                )
            ]
            for index in range(count):
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                rows.append(
                    Account(
                        domain=domain,
                        username=f"{first}.{last}{index}".lower(),
                        name=f"{first} {last}",
                        password_hash=password_hash,
                    )
                )
            if domain is example:
                enabled = [f"{r.username}@{domain.name}" for r in rows[1 : with_mapi_ews + 1]]
            for row in rows[1 : with_mapi_ews + 1]:
                row.mapi_ews_enabled = True
                row.mapi_ews_enabled_at = now - timedelta(days=rng.randint(1, 90))
                if rng.random() < 0.8:
                    protocol = rng.choice(list(MailProtocol))
                    row.last_login = now - timedelta(minutes=rng.randint(1, 60 * 24 * 14))
                    row.last_login_protocol = protocol
                    setattr(row, f"last_{protocol.value.lower()}_login", row.last_login)
            await Account.bulk_create(rows, using_db=conn)
            await audit.record(
                conn=conn,
                actor="sysadmin",
                action=AuditAction.ACCOUNT_CREATED,
                domain_id=domain.id,
                targets=[f"{r.username}@{domain.name}" for r in rows],
            )
            # As an enable through the API would: the count and the day's use, in the same
            # transaction.
            await domains.count_enabled(conn, domain.id, with_mapi_ews)
            await usage.record(
                conn,
                domain_id=domain.id,
                before=0,
                after=with_mapi_ews,
                allowance=domain.max_mapi_ews_accounts,
                at=now,
            )
            await audit.record(
                conn=conn,
                actor="sysadmin",
                action=AuditAction.MAPI_EWS_ENABLED,
                domain_id=domain.id,
                targets=[f"{r.username}@{domain.name}" for r in rows[1 : with_mapi_ews + 1]],
            )
    return DemoSignIns(
        domain_admin=f"admin@{DEMO_DOMAIN}",
        read_only_admin=f"admin@{READ_ONLY_DOMAIN}",
        system_admin="sysadmin",
        password=DEMO_PASSWORD,
        gateway_token=await gateways.create_gateway_token(actor="sysadmin", name="demo-gateway"),
        enabled_addresses=tuple(enabled),
    )
