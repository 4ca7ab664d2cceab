from tests.conftest import Factory, GraphQLClient

VIEWER = "{ viewer { username role domain permissions } }"


async def test_viewer_is_null_without_credentials(gql: GraphQLClient) -> None:
    assert await gql.data(VIEWER) == {"viewer": None}


async def test_viewer_names_the_signed_in_domain_administrator(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain()
    admin = await make.account(domain, "boss", admin=True)
    data = await gql.data(VIEWER, token=await make.token_for(admin))
    assert data == {
        "viewer": {
            "username": "boss@example.com",
            "role": "DOMAIN_ADMIN",
            "domain": "example.com",
            "permissions": ["MANAGE_MAPI_EWS"],
        }
    }
