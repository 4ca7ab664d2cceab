"""Every @auth field of the schema against every kind of principal.

The fields come from the schema itself: a field added without an entry in OPERATIONS, or a public
field not listed in PUBLIC, fails `test_every_field_is_in_the_matrix`.
"""

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import GraphQLObjectType, parse, print_ast
from graphql.language import ObjectTypeDefinitionNode
from starlette.applications import Starlette

from api.events import EventBus
from api.graphql.schema import build_schema
from api.graphql.types import global_id
from api.models import (
    Account,
    AuditEntry,
    Domain,
    GatewayToken,
    LoginEvent,
    ProtocolSession,
    RefreshToken,
    SystemAdmin,
)
from api.transport.pipeline import RequestError
from tests.conftest import Factory, GraphQLClient, run_subscription

# Open to anyone: holding the refresh token is what authorizes refreshAccessToken and logout.
PUBLIC = {
    ("Query", "viewer"),
    ("Mutation", "login"),
    ("Mutation", "refreshAccessToken"),
    ("Mutation", "logout"),
}

# The variables for a domain, from its name (or read from the database: an object's id).
Variables = Callable[[str], dict[str, object] | Awaitable[dict[str, object]]]


async def domain_id_of(name: str) -> dict[str, object]:
    return {"id": global_id("Domain", (await Domain.get(name=name)).id)}


@dataclass(frozen=True)
class Operation:
    document: str
    variables: Variables
    subscription: bool = False


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("Query", "mapiEwsAccounts"): Operation(
        "query($d: String) { mapiEwsAccounts(domain: $d) { totalCount } }", lambda d: {"d": d}
    ),
    ("Query", "accounts"): Operation(
        "query($d: String) { accounts(domain: $d) { totalCount } }", lambda d: {"d": d}
    ),
    ("Query", "mapiEwsUsage"): Operation(
        "query($d: String) { mapiEwsUsage(domain: $d) { enabled } }", lambda d: {"d": d}
    ),
    ("Query", "auditLog"): Operation(
        "query($d: String) { auditLog(domain: $d) { totalCount } }", lambda d: {"d": d}
    ),
    ("Query", "domain"): Operation(
        "query($d: String!) { domain(name: $d) { name mapiEwsUsage { enabled } } }",
        lambda d: {"d": d},
    ),
    ("Query", "domains"): Operation("{ domains { totalCount } }", lambda d: {}),
    ("Mutation", "enableMapiEws"): Operation(
        'mutation($d: String) { enableMapiEws(input: {domain: $d, usernames: ["alice"]}) { userErrors { code } } }',
        lambda d: {"d": d},
    ),
    ("Mutation", "disableMapiEws"): Operation(
        'mutation($d: String) { disableMapiEws(input: {domain: $d, usernames: ["bob"]}) { userErrors { code } } }',
        lambda d: {"d": d},
    ),
    ("Mutation", "createAccount"): Operation(
        'mutation($e: String!) { createAccount(input: {emailAddress: $e, password: "long-enough-pw"}) '
        "{ userErrors { code } } }",
        lambda d: {"e": f"newcomer@{d}"},
    ),
    ("Mutation", "createDomain"): Operation(
        'mutation { createDomain(input: {name: "created.test"}) { userErrors { code } } }',
        lambda d: {},
    ),
    ("Query", "mapiEwsLoginEvents"): Operation(
        "query($d: String) { mapiEwsLoginEvents(domain: $d) { totalCount } }", lambda d: {"d": d}
    ),
    ("Mutation", "createGatewayToken"): Operation(
        'mutation { createGatewayToken(input: {name: "gw-new"}) { token userErrors { code } } }',
        lambda d: {},
    ),
    ("Mutation", "recordProtocolLogin"): Operation(
        "mutation($e: String!) { recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI}) "
        "{ allowed userErrors { code } } }",
        lambda d: {"e": f"bob@{d}"},
    ),
    ("Mutation", "recordProtocolLogins"): Operation(
        "mutation($e: String!) { recordProtocolLogins(input: {reports: "
        "[{emailAddress: $e, protocol: MAPI}]}) { results { allowed } userErrors { code } } }",
        lambda d: {"e": f"bob@{d}"},
    ),
    # The domain's own object, by its global id: the domain rule applied to the object.
    ("Query", "node"): Operation("query($id: ID!) { node(id: $id) { id } }", domain_id_of),
    ("Query", "nodes"): Operation("query($id: ID!) { nodes(ids: [$id]) { id } }", domain_id_of),
    ("Subscription", "mapiEwsLoginUpdates"): Operation(
        "subscription($d: String) { mapiEwsLoginUpdates(domain: $d) { id } }",
        lambda d: {"d": d},
        subscription=True,
    ),
    ("Subscription", "mapiEwsAccountChanges"): Operation(
        "subscription($d: String) { mapiEwsAccountChanges(domain: $d) { kind } }",
        lambda d: {"d": d},
        subscription=True,
    ),
    ("Query", "mapiEwsSessions"): Operation(
        "query($d: String) { mapiEwsSessions(domain: $d) { totalCount } }", lambda d: {"d": d}
    ),
    ("Mutation", "disconnectMapiEws"): Operation(
        'mutation($d: String) { disconnectMapiEws(input: {domain: $d, usernames: ["bob"]}) '
        "{ sessionsEnding userErrors { code } } }",
        lambda d: {"d": d},
    ),
    ("Mutation", "setMapiEwsProtocols"): Operation(
        'mutation($d: String) { setMapiEwsProtocols(input: {domain: $d, usernames: ["bob"], '
        "protocols: [EWS]}) { sessionsEnding userErrors { code } } }",
        lambda d: {"d": d},
    ),
    ("Mutation", "setClientAccessPolicy"): Operation(
        "mutation($d: String) { setClientAccessPolicy(input: {domain: $d, mode: BLOCK_LISTED, "
        'rules: [{pattern: "x*"}]}) { sessionsEnding userErrors { code } } }',
        lambda d: {"d": d},
    ),
    ("Query", "clientAccessPolicy"): Operation(
        "query($d: String) { clientAccessPolicy(domain: $d) { mode } }", lambda d: {"d": d}
    ),
    ("Query", "mapiEwsClients"): Operation(
        "query($d: String) { mapiEwsClients(domain: $d) { logins } }", lambda d: {"d": d}
    ),
    ("Mutation", "touchProtocolSessions"): Operation(
        'mutation { touchProtocolSessions(input: {sessionIds: ["s-1"]}) '
        "{ touched endNow userErrors { code } } }",
        lambda d: {},
    ),
    ("Mutation", "endProtocolSessions"): Operation(
        'mutation { endProtocolSessions(input: {sessionIds: ["s-1"]}) { ended userErrors { code } } }',
        lambda d: {},
    ),
    ("Subscription", "mapiEwsSessionChanges"): Operation(
        "subscription($d: String) { mapiEwsSessionChanges(domain: $d) { kind } }",
        lambda d: {"d": d},
        subscription=True,
    ),
    # Administrators cannot listen to the gateways' commands, nor a gateway to a domain's.
    ("Subscription", "protocolSessionCommands"): Operation(
        "subscription { protocolSessionCommands { endSessionIds } }",
        lambda d: {},
        subscription=True,
    ),
    ("Mutation", "upsertAccounts"): Operation(
        'mutation($d: String!) { upsertAccounts(input: {domain: $d, accounts: [{username: "new"}]}) '
        "{ created userErrors { code } } }",
        lambda d: {"d": d},
    ),
    ("Mutation", "removeAccounts"): Operation(
        'mutation($d: String!) { removeAccounts(input: {domain: $d, usernames: ["alice"]}) '
        "{ removed userErrors { code } } }",
        lambda d: {"d": d},
    ),
    ("Mutation", "removeDomain"): Operation(
        "mutation($d: String!) { removeDomain(input: {name: $d, confirm: $d}) "
        "{ removedAccounts userErrors { code } } }",
        lambda d: {"d": d},
    ),
    ("Mutation", "reclaimIdleMapiEws"): Operation(
        "mutation($d: String) { reclaimIdleMapiEws(input: {domain: $d, idleForDays: 30, "
        "dryRun: true}) { dryRun userErrors { code } } }",
        lambda d: {"d": d},
    ),
    ("Query", "mapiEwsUsageHistory"): Operation(
        'query($d: String) { mapiEwsUsageHistory(domain: $d, from: "2026-11-01", to: "2026-11-02") '
        "{ date peakEnabled } }",
        lambda d: {"d": d},
    ),
    ("Query", "mapiEwsUsageReport"): Operation(
        '{ mapiEwsUsageReport(month: "2026-11") { totalCount } }', lambda d: {}
    ),
    ("Subscription", "mapiEwsUsageUpdates"): Operation(
        "subscription($d: String) { mapiEwsUsageUpdates(domain: $d) { enabled } }",
        lambda d: {"d": d},
        subscription=True,
    ),
    ("Subscription", "mapiEwsDomainUsageUpdates"): Operation(
        "subscription { mapiEwsDomainUsageUpdates { domain } }",
        lambda d: {},
        subscription=True,
    ),
    ("Mutation", "updateDomain"): Operation(
        "mutation($d: String!) { updateDomain(input: {name: $d, maxMapiEwsAccounts: 9}) { userErrors { code } } }",
        lambda d: {"d": d},
    ),
}


def auth_rules() -> dict[tuple[str, str], tuple[str, str | None] | None]:
    """(type, field) -> (requires, permission) as enforced at run time; None for public fields."""
    schema = build_schema()._schema
    rules: dict[tuple[str, str], tuple[str, str | None] | None] = {}
    for type_name in ("Query", "Mutation", "Subscription"):
        graphql_type = schema.get_type(type_name)
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for name, field in graphql_type.fields.items():
            rules[(type_name, name)] = None
            extension = field.extensions.get("strawberry-definition")
            for ext in getattr(extension, "extensions", []) or []:
                for permission in getattr(ext, "permissions", []):
                    rules[(type_name, name)] = (
                        permission.requires.value,
                        permission.permission.value if permission.permission else None,
                    )
    return rules


def test_every_field_is_in_the_matrix() -> None:
    rules = auth_rules()
    protected = {key for key, rule in rules.items() if rule is not None}
    public = {key for key, rule in rules.items() if rule is None}
    assert protected == set(OPERATIONS)
    assert public == PUBLIC


def printed_rules() -> dict[tuple[str, str], tuple[str, str | None] | None]:
    """(type, field) -> (requires, permission) as schema.graphql prints them."""
    rules: dict[tuple[str, str], tuple[str, str | None] | None] = {}
    for definition in parse(build_schema().as_str()).definitions:
        if not isinstance(definition, ObjectTypeDefinitionNode):
            continue
        if definition.name.value not in ("Query", "Mutation", "Subscription"):
            continue
        for field in definition.fields or ():
            auth = [d for d in field.directives or () if d.name.value == "auth"]
            arguments = (
                {a.name.value: print_ast(a.value) for a in auth[0].arguments} if auth else {}
            )
            rules[(definition.name.value, field.name.value)] = (
                (arguments["requires"], arguments.get("permission")) if auth else None
            )
    return rules


def test_the_printed_schema_carries_the_rules_the_runtime_enforces() -> None:
    assert printed_rules() == auth_rules()


PRINCIPALS = [
    "anonymous",
    "user",
    "admin_without_permission",
    "admin",
    "admin_of_another_domain",
    "system_admin",
    "gateway",
]


# Fields that answer another domain's object as they answer a missing one: ids tell nothing.
BY_ID = {("Query", "node"), ("Query", "nodes")}


def expected_code(
    principal: str, rule: tuple[str, str | None], field: tuple[str, str]
) -> str | None:
    requires, permission = rule
    if principal == "anonymous":
        return "UNAUTHENTICATED"
    if requires == "GATEWAY" or principal == "gateway":
        # The gateway role and the others do not overlap, in either direction.
        return None if requires == "GATEWAY" and principal == "gateway" else "FORBIDDEN"
    if principal == "system_admin":
        return None
    if principal == "user" or requires == "SYSTEM_ADMIN":
        return "FORBIDDEN"
    if principal == "admin_of_another_domain":
        return "NOT_FOUND" if field in BY_ID else "FORBIDDEN"
    if principal == "admin_without_permission" and permission is not None:
        return "FORBIDDEN"
    return None


async def everything() -> tuple:
    return (
        await Domain.all()
        .order_by("id")
        .values_list("name", "max_mapi_ews_accounts", "mapi_ews_account_management"),
        await Account.all().order_by("id").values_list("username", "mapi_ews_enabled"),
        await AuditEntry.all().count(),
        await SystemAdmin.all().count(),
        await RefreshToken.all().count(),
        await GatewayToken.all().count(),
        await LoginEvent.all().count(),
        await ProtocolSession.all().count(),
    )


async def start_subscription(
    app: Starlette, operation: Operation, domain: str, token: str | None
) -> dict[str, Any]:
    """Start a subscription as the WebSocket transport does (same schema, same context) and
    report how its start went: {"data": {field: "subscribed"}} once it is waiting for events,
    else its first result, errors and all. Real sockets are in test_subscriptions."""
    events: EventBus = app.state.events
    principal = await app.state.authenticator.principal(token) if token else None
    stream = run_subscription(
        app, operation.document, operation.variables(domain), principal=principal
    )
    first = asyncio.ensure_future(anext(stream))
    try:
        async with asyncio.timeout(10):
            while not (first.done() or events.hub.subscriber_count()):
                await asyncio.sleep(0.01)
        if first.done():
            if isinstance(first.exception(), RequestError):
                refused = first.exception()
                return {"data": None, "errors": [error.formatted for error in refused.errors]}
            result = first.result()
            return {
                "data": result.data,
                "errors": [error.formatted for error in result.errors or []],
            }
        name = parse(operation.document).definitions[0].selection_set.selections[0].name.value  # type: ignore[attr-defined]
        return {"data": {name: "subscribed"}}
    finally:
        first.cancel()
        with contextlib.suppress(BaseException):
            await first
        await stream.aclose()
        assert events.hub.subscriber_count() == 0


async def _variables(operation: Operation, domain: str) -> dict[str, object]:
    variables = operation.variables(domain)
    return await variables if inspect.isawaitable(variables) else variables


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("field", sorted(OPERATIONS), ids=lambda key: ".".join(key))
async def test_authorization_matrix(
    app: Starlette, gql: GraphQLClient, make: Factory, field: tuple[str, str], principal: str
) -> None:
    rule = auth_rules()[field]
    assert rule is not None
    example = await make.domain("example.com", managed=True)
    read_only = await make.domain("readonly.test", managed=False)
    other = await make.domain("other.org", managed=True)
    for domain in (example, read_only):
        await make.account(domain, "alice")
        await make.account(domain, "bob", enabled=True)
    tokens = {
        "anonymous": None,
        "user": await make.token_for(await make.account(example, "plain")),
        "admin_without_permission": await make.token_for(
            await make.account(read_only, "admin", admin=True)
        ),
        "admin": await make.token_for(await make.account(example, "admin", admin=True)),
        "admin_of_another_domain": await make.token_for(
            await make.account(other, "admin", admin=True)
        ),
        "system_admin": await make.token_for(await make.system_admin()),
        "gateway": await make.gateway(),
    }
    target = "readonly.test" if principal == "admin_without_permission" else "example.com"
    operation = OPERATIONS[field]
    before = await everything()

    if operation.subscription:
        body = await start_subscription(app, operation, target, tokens[principal])
    else:
        body = await gql.post(
            operation.document, await _variables(operation, target), token=tokens[principal]
        )

    code = expected_code(principal, rule, field)
    if code is None:
        assert "errors" not in body, body
        payload = body["data"][field[1]]
        assert not (isinstance(payload, dict) and payload.get("userErrors")), payload
    else:
        assert [e["extensions"]["code"] for e in body["errors"]] == [code]
        # A nullable field is nulled (a list of nullable objects, each of them).
        assert body["data"] is None or body["data"] in ({field[1]: None}, {field[1]: [None]})
        assert await everything() == before
