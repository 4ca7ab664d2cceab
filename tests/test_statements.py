"""A page's statement built once per shape (api/services/statements.py) reads exactly what
Tortoise reads when it builds the same statement for every request."""

from datetime import UTC, datetime, timedelta

import pytest
from tortoise.queryset import QuerySet

from api.models import Account, Domain, MailProtocol
from api.services import statements
from api.services.accounts import AccountRow, AccountSortField, listed, sort_spec
from api.services.paging import Bind, Listing, PageRequest, Read, SortSpec, paginate
from tests.conftest import Factory, StatementCounter

COLUMNS_OF_ROW = tuple(AccountRow.__dataclass_fields__)


async def rows(read: Read[Account]) -> list[AccountRow]:
    return [AccountRow(**row) for row in await statements.values(read, COLUMNS_OF_ROW)]


async def first_page(listing: Listing[Account], spec: SortSpec, size: int) -> list[AccountRow]:
    page = await paginate(
        listing, rows, spec=spec, request=PageRequest(first=size), default_size=3, max_size=10
    )
    return page.items


async def varied_domain(make: Factory) -> Domain:
    """Ties and NULLs in every order, half with MAPI/EWS."""
    example = await make.domain()
    now = datetime.now(UTC)
    for i in range(17):
        account = await make.account(
            example, f"u{i:02d}", name=None if i % 5 == 0 else f"Name {i % 4}", enabled=i % 2 == 0
        )
        if i % 3:
            account.last_login = now - timedelta(hours=i % 4)
            account.last_login_protocol = MailProtocol.MAPI if i % 2 else MailProtocol.EWS
        await account.save()
    return example


async def pages(
    listing: Listing[Account], spec: SortSpec, *, backwards: bool
) -> list[list[AccountRow]]:
    """Every page of three, from one end to the other."""
    seen: list[list[AccountRow]] = []
    cursor: str | None = None
    while True:
        if backwards:
            request = PageRequest(last=3, before=cursor)
        else:
            request = PageRequest(first=3, after=cursor)
        page = await paginate(
            listing, rows, spec=spec, request=request, default_size=3, max_size=10
        )
        seen.append(page.items)
        more = page.has_previous_page if backwards else page.has_next_page
        if not more:
            return seen
        cursor = page.cursors[0] if backwards else page.cursors[-1]


@pytest.mark.parametrize("enabled", [None, True, False])
async def test_every_shape_reads_what_tortoise_reads(make: Factory, enabled: bool | None) -> None:
    example = await varied_domain(make)
    for field in AccountSortField:
        for descending in (False, True):
            spec = sort_spec(field, descending=descending)
            compiled = listed(domain_id=example.id, mapi_ews_enabled=enabled, order=spec)
            assert compiled.shape is not None
            # The same build without a shape: Tortoise builds each statement as it runs it.
            plain = Listing(compiled.build)
            for backwards in (False, True):
                got = await pages(compiled, spec, backwards=backwards)
                expected = await pages(plain, spec, backwards=backwards)
                assert got == expected, (field, descending, backwards)
                assert sum(map(len, got)) == (17 if enabled is None else 9 if enabled else 8)


async def test_a_shape_is_built_once_and_run_with_each_requests_values(
    make: Factory, sql: StatementCounter
) -> None:
    first = await varied_domain(make)
    second = await make.domain("second.example")
    await make.account(second, "other", enabled=True)
    spec = sort_spec(AccountSortField.USERNAME, descending=False)

    async def usernames(domain: Domain) -> list[str]:
        listing = listed(domain_id=domain.id, mapi_ews_enabled=True, order=spec)
        return [row.username for row in await first_page(listing, spec, 3)]

    sql.statements.clear()
    assert await usernames(first) == ["u00", "u02", "u04"]
    assert await usernames(second) == ["other"]
    reads = [s for s in sql.statements if 'FROM "account"' in s]
    assert len(reads) == 2
    text = [statement.rsplit(" [", 1)[0] for statement in reads]
    assert text[0] == text[1]  # one statement, the domain a parameter
    assert reads[0].endswith(f"[{first.id}, True, 4]")
    assert reads[1].endswith(f"[{second.id}, True, 4]")


async def test_a_shape_that_does_not_name_what_its_sql_depends_on_is_refused(
    make: Factory,
) -> None:
    example = await varied_domain(make)
    spec = sort_spec(AccountSortField.USERNAME, descending=False)

    def by_name(name: str | None) -> Listing[Account]:
        def build(bind: Bind) -> QuerySet[Account]:
            query = Account.filter(domain_id=bind(example.id))
            return query.filter(name=bind(name)) if name is not None else query

        return Listing(build, shape=("the same shape for two statements",))

    await first_page(by_name(None), spec, 3)
    with pytest.raises(AssertionError, match="does not name"):
        await first_page(by_name("Name 1"), spec, 3)

    unbound = Listing(lambda _: Account.filter(domain_id=example.id), shape=("unbound",))
    with pytest.raises(AssertionError, match="unbound"):
        await first_page(unbound, spec, 3)


async def test_values_convert_as_tortoise_converts(make: Factory) -> None:
    example = await varied_domain(make)
    spec = sort_spec(AccountSortField.LAST_LOGIN, descending=True)
    listing = listed(domain_id=example.id, mapi_ews_enabled=None, order=spec)
    page = await first_page(listing, spec, 10)
    reference = {
        row["id"]: row for row in await Account.filter(domain_id=example.id).values(*COLUMNS_OF_ROW)
    }
    for row in page:
        assert AccountRow(**reference[row.id]) == row
        assert row.last_login is None or row.last_login.tzinfo is not None
        assert row.last_login_protocol is None or isinstance(row.last_login_protocol, MailProtocol)
