"""Mailbox accounts: creation and the lists of the MAPI/EWS tab."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from api.auth.passwords import hash_password
from api.errors import UserError, UserErrorCode, UserErrors
from api.models import Account, AuditAction, Domain, MailProtocol
from api.services import audit, connected, domains, reclaim, statements, validation
from api.services.paging import Bind, Listing, Page, PageRequest, Read, SortSpec, as_is, paginate
from api.services.tenancy import Tenant

RECENCY_LAST_LOGIN = "recency__last_login"


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An account as a list shows it: the columns an Account of the API is made of, read as
    values rather than as a model (a page of 51 models cost a seventh of the tab's request), and
    without the password hash, which no list needs."""

    id: int
    username: str
    name: str | None
    is_domain_admin: bool
    mapi_ews_enabled: bool
    mapi_ews_protocols: int
    external_id: str | None
    mapi_ews_enabled_at: datetime | None
    last_login: datetime | None
    last_login_protocol: MailProtocol | None
    last_mapi_login: datetime | None
    last_ews_login: datetime | None

    @property
    def pk(self) -> int:
        return self.id


_LISTED = tuple(field.name for field in fields(AccountRow))


async def _rows(read: Read[Account]) -> list[AccountRow]:
    return [AccountRow(**row) for row in await statements.values(read, _LISTED)]


class AccountSortField(StrEnum):
    USERNAME = "USERNAME"
    NAME = "NAME"
    LAST_LOGIN = "LAST_LOGIN"
    MAPI_EWS_ENABLED_AT = "MAPI_EWS_ENABLED_AT"


def sort_spec(field: AccountSortField, *, descending: bool) -> SortSpec:
    match field:
        case AccountSortField.USERNAME:
            return SortSpec("username", descending)
        case AccountSortField.NAME:
            return SortSpec("name", descending, nullable=True)
        case AccountSortField.LAST_LOGIN:
            # Read in AccountRecency's index (api/models/domains.py says why it is not Account's).
            return SortSpec(
                "last_login", descending, nullable=True, is_datetime=True, path=RECENCY_LAST_LOGIN
            )
        case AccountSortField.MAPI_EWS_ENABLED_AT:
            return SortSpec("mapi_ews_enabled_at", descending, nullable=True, is_datetime=True)


def search_filter(text: str, domain: str) -> Q:
    """Username, name or address contains `text` (already lower-case)."""
    matches = Q(username__icontains=text) | Q(name__icontains=text)
    local, at, rest = text.partition("@")
    if not at:
        return Q() if text in domain else matches  # every address of the domain contains it
    if "@" not in rest and domain.startswith(rest):
        return matches | Q(username__iendswith=local) if local else Q()
    return matches


def listed(
    *,
    domain_id: int,
    mapi_ews_enabled: bool | None,
    order: SortSpec,
    idle_days: int | None = None,
) -> Listing[Account]:
    """The domain's accounts a list reads, filtered where the index serving its order is. The
    tab's lists have a shape, so each page's statement is built once (api/services/statements.py);
    the idle list's filters are worth less than their naming."""
    if idle_days is not None:
        queryset = reclaim.idle_accounts(domain_id, idle_days, now=datetime.now(UTC))
        if mapi_ews_enabled is not None:  # idle accounts have MAPI/EWS: False lists none
            queryset = queryset.filter(mapi_ews_enabled=mapi_ews_enabled)
        return Listing(lambda _: queryset)
    # By last login: the domain and flag as AccountRecency holds them, so its index serves the
    # order.
    held = "recency__" if order.path == RECENCY_LAST_LOGIN else ""

    def build(bind: Bind) -> QuerySet[Account]:
        queryset = Account.filter(**{f"{held}domain_id": bind(domain_id)})
        if mapi_ews_enabled is not None:
            queryset = queryset.filter(**{f"{held}mapi_ews_enabled": bind(mapi_ews_enabled)})
        return queryset

    return Listing(build, shape=("accounts", held, mapi_ews_enabled is None))


async def list_accounts(
    *,
    tenant: Tenant,
    mapi_ews_enabled: bool | None,
    search: str | None,
    order: SortSpec,
    request: PageRequest,
    default_size: int,
    max_size: int,
    count_sessions: bool = False,
    idle_for_days: int | None = None,
) -> tuple[Page[AccountRow], dict[int, int]]:
    """A page of the domain's accounts and, with `count_sessions`, each one's open sessions
    (one more read, whatever the page size). `idle_for_days`: only the accounts idle that long
    (api/services/reclaim.py)."""
    days = reclaim.idle_argument(idle_for_days)
    listing = listed(
        domain_id=tenant.domain_id, mapi_ews_enabled=mapi_ews_enabled, order=order, idle_days=days
    )
    source: Listing[Account] | QuerySet[Account] = listing
    text = validation.search_argument(search)
    if text:
        # A search's filter takes a shape of its own from the text: read through Tortoise.
        source = listing.build(as_is).filter(search_filter(text, tenant.domain))
    count = None
    if mapi_ews_enabled is True and days is None and not text:
        count = partial(domains.enabled_count, domain_id=tenant.domain_id)  # kept, not counted
    page = await paginate(
        source,
        _rows,
        spec=order,
        request=request,
        default_size=default_size,
        max_size=max_size,
        count=count,
    )
    sessions = await connected.open_counts(row.id for row in page.items) if count_sessions else {}
    return page, sessions


async def create_account(
    *,
    actor: str,
    tenant: Tenant,
    email_address: str,
    name: str | None,
    password: str,
    is_domain_admin: bool,
) -> Account:
    problems: list[UserError] = []
    username = ""
    try:
        username = validation.username_in_domain(email_address, tenant.domain)
        if "@" not in email_address:
            raise ValueError(f"{email_address[:80]!r} is not an email address (user@domain).")
    except ValueError as error:
        problems.append(
            UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "emailAddress"))
        )
    try:
        name = validation.display_name(name)
    except ValueError as error:
        problems.append(UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "name")))
    try:
        validation.password(password)
    except ValueError as error:
        problems.append(UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "password")))
    if problems:
        raise UserErrors(problems)
    address = f"{username}@{tenant.domain}"
    exists = UserErrors(
        [
            UserError(
                UserErrorCode.ALREADY_EXISTS,
                f"{address} already exists.",
                ("input", "emailAddress"),
            )
        ]
    )
    if not await Domain.exists(id=tenant.domain_id, removed_at=None):
        # A domain administrator's token outlives its removed domain by minutes at most.
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.NOT_FOUND,
                    f"No domain {tenant.domain}.",
                    ("input", "emailAddress"),
                )
            ]
        )
    if await Account.exists(domain_id=tenant.domain_id, username=username):
        raise exists
    password_hash = await hash_password(password)
    try:
        async with in_transaction("default") as conn:
            account = await Account.create(
                domain_id=tenant.domain_id,
                username=username,
                name=name,
                password_hash=password_hash,
                is_domain_admin=is_domain_admin,
                using_db=conn,
            )
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.ACCOUNT_CREATED,
                domain_id=tenant.domain_id,
                targets=[address],
            )
    except IntegrityError:
        raise exists from None
    return account
