"""Every document limit refuses with a clear, coded GraphQL error and runs nothing."""

from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.graphql.schema import build_schema
from api.models import AuditEntry
from api.settings import Settings
from api.transport.limits import INTROSPECTION_MAX_DEPTH, Limits
from tests.conftest import Factory, GraphQLClient
from tests.dashboard_documents import LARGEST, documents

PAGE = "edges { cursor node { id username name lastLogin lastLoginProtocol } } pageInfo { hasNextPage }"


def refusal(body: dict[str, Any]) -> str:
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    message: str = error["message"]
    return message


async def test_an_operation_over_the_cost_ceiling_is_refused_before_it_runs(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    pages = " ".join(f"p{i}: mapiEwsAccounts(first: 100) {{ {PAGE} }}" for i in range(11))

    body = await gql.post(f"query Flood {{ {pages} }}", token=token)

    assert refusal(body) == (
        "The operation Flood costs 11011, over the limit of 10000: ask for smaller pages "
        "(first/last), fewer fields or fewer aliases."
    )


async def test_the_cost_counts_variables_as_the_largest_page_and_fragments_where_spread(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    fragment = f"fragment Page on AccountConnection {{ {PAGE} }}"
    fine = f"query($n: Int) {{ mapiEwsAccounts(first: $n) {{ ...Page }} }} {fragment}"
    costly = (
        "query($n: Int) { "
        + " ".join(f"a{i}: mapiEwsAccounts(first: $n) {{ ...Page }}" for i in range(11))
        + f" }} {fragment}"
    )

    allowed = await gql.post(fine, {"n": 5}, token=token)
    refused = await gql.post(costly, {"n": 5}, token=token)

    assert "errors" not in allowed
    assert "costs 11011, over the limit of 10000" in refusal(refused)


async def test_the_dashboard_s_own_questions_fit_well_under_the_ceiling(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    # The page's list query, as api/web/static/app.js sends it, with the largest page.
    query = """query Tab($domain: String!, $first: Int) {
      domain(name: $domain) { name mapiEwsAccountManagement }
      mapiEwsUsage(domain: $domain) { enabled limit available }
      mapiEwsAccounts(domain: $domain, first: $first) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { node { id username emailAddress name lastLogin lastLoginProtocol } }
      }
    }"""

    body = await gql.post(query, {"domain": "example.com", "first": 100}, token=token)

    assert "errors" not in body


async def test_a_deep_query_is_refused(settings: Settings, make: Factory) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    shallow = settings.model_copy(update={"max_query_depth": 3})
    deep = "{ mapiEwsLoginEvents { edges { node { account { username } } } } }"

    async with LifespanManager(create_app(shallow)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            headers = {"Authorization": f"Bearer {token}"}
            body = (await http.post("/graphql", json={"query": deep}, headers=headers)).json()

    assert refusal(body) == "'anonymous' exceeds maximum operation depth of 3"


async def test_a_deep_introspection_query_is_refused(gql: GraphQLClient) -> None:
    nested = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    ordinary = (
        "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    )

    assert "errors" not in await gql.post(ordinary)  # what GraphiQL asks is fine
    assert refusal(await gql.post(nested)) == "Maximum introspection depth exceeded"


async def test_pages_over_the_cap_are_refused_on_every_paged_field(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    root = await make.token_for(await make.system_admin())
    fields = [
        ("mapiEwsAccounts(first: 101)", token),
        ("accounts(first: 101)", token),
        ("mapiEwsLoginEvents(first: 101)", token),
        ("auditLog(first: 101)", token),
        ("domains(first: 101)", root),
    ]
    for field, who in fields:
        body = await gql.post(f"{{ {field} {{ totalCount }} }}", token=who)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", field
        assert "100" in body["errors"][0]["message"], field


async def test_a_batch_of_operations_is_refused_and_none_of_them_runs(
    client: httpx.AsyncClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    before = await AuditEntry.all().count()
    enable = 'mutation { enableMapiEws(input: {usernames: ["admin"]}) { userErrors { code } } }'

    response = await client.post(
        "/graphql",
        json=[{"query": enable}, {"query": enable}],
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "Batched requests (a JSON array of operations) are not accepted: "
                "send one operation per request.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }
    assert await AuditEntry.all().count() == before


async def test_requests_strawberry_refuses_get_graphql_shaped_errors(
    client: httpx.AsyncClient,
) -> None:
    wrong_type = await client.post("/graphql", content=b"x", headers={"content-type": "text/xml"})
    no_query = await client.post("/graphql", json={"variables": {}})

    assert wrong_type.status_code == 415 or wrong_type.status_code == 400
    assert wrong_type.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert no_query.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_introspection_may_nest_to_its_own_bound_and_no_deeper() -> None:
    schema = build_schema()._schema
    limits = Limits(Settings(secret_key="x" * 40))

    def nested(depth: int) -> str:  # __schema, types, then ofType down to `depth` levels
        chain = depth - 3
        return "{ __schema { types { " + "ofType { " * chain + "name" + " }" * chain + " } } }"

    at_the_bound = limits.errors(schema, nested(INTROSPECTION_MAX_DEPTH))
    past_it = limits.errors(schema, nested(INTROSPECTION_MAX_DEPTH + 1))

    assert at_the_bound == []
    assert [error.message for error in past_it] == [
        f"The introspection query nests deeper than {INTROSPECTION_MAX_DEPTH} levels."
    ]


def test_every_dashboard_operation_fits_the_ceiling_at_its_largest() -> None:
    """Each document the page sends, with 500 usernames, a year of days and the largest page:
    under MAPI_EWS_MAX_QUERY_COST, so under every role's budget too (docs/operations.md lists
    the figures)."""
    settings = Settings(secret_key="x" * 40)
    limits = Limits(settings)
    schema = build_schema()._schema
    found = documents()

    costs = {
        name: limits.requested_cost(schema, query, None, LARGEST).cost
        for name, query in found.items()
    }

    assert len(found) >= 20 and not any(limits.errors(schema, q) for q in found.values())
    assert max(costs.values()) <= settings.max_query_cost, costs
