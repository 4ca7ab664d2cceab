from datetime import UTC, datetime

from api.auth.passwords import _dummy_hash, verify_password
from api.auth.principal import Principal, Role
from api.models import RefreshToken
from tests.conftest import PASSWORD, Factory, GraphQLClient

LOGIN = """
mutation($u: String!, $p: String!) {
  login(input: {username: $u, password: $p}) {
    accessToken refreshToken expiresAt
    viewer { username role domain permissions }
    userErrors { field code message }
  }
}
"""
REFRESH = """
mutation($t: String!) {
  refreshAccessToken(input: {refreshToken: $t}) {
    accessToken refreshToken viewer { username } userErrors { field code }
  }
}
"""
VIEWER = "{ viewer { username role } }"


async def test_a_domain_administrator_signs_in_with_their_address(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com", managed=False)
    await make.account(example, "boss", admin=True)

    data = await gql.data(LOGIN, {"u": "Boss@Example.com", "p": PASSWORD})

    login = data["login"]
    assert login["userErrors"] == []
    assert login["viewer"] == {
        "username": "boss@example.com",
        "role": "DOMAIN_ADMIN",
        "domain": "example.com",
        "permissions": [],
    }
    assert datetime.fromisoformat(login["expiresAt"]) > datetime.now(UTC)
    assert (await gql.data(VIEWER, token=login["accessToken"]))["viewer"] == {
        "username": "boss@example.com",
        "role": "DOMAIN_ADMIN",
    }
    stored = await RefreshToken.all().values_list("token_hash", flat=True)
    assert login["refreshToken"] not in stored  # only its hash is kept


async def test_a_system_administrator_signs_in_with_a_bare_name(
    gql: GraphQLClient, make: Factory
) -> None:
    await make.system_admin("root")

    data = await gql.data(LOGIN, {"u": "root", "p": PASSWORD})

    assert data["login"]["viewer"] == {
        "username": "root",
        "role": "SYSTEM_ADMIN",
        "domain": None,
        "permissions": ["MANAGE_MAPI_EWS"],
    }


async def test_unknown_users_and_wrong_passwords_get_the_same_answer(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    await make.system_admin("root")

    answers = [
        await gql.data(LOGIN, {"u": u, "p": p})
        for u, p in [
            ("alice@example.com", "wrong-password"),
            ("ghost@example.com", PASSWORD),
            ("alice@nowhere.org", PASSWORD),
            ("root", "wrong-password"),
            ("nobody", PASSWORD),
            ("not an address@@", PASSWORD),
            ("x" * 5000, "y" * 5000),
        ]
    ]

    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["login"] == {
        "accessToken": None,
        "refreshToken": None,
        "expiresAt": None,
        "viewer": None,
        "userErrors": [
            {
                "field": None,
                "code": "INVALID_CREDENTIALS",
                "message": "The username or password is wrong.",
            }
        ],
    }


async def test_an_unknown_user_still_costs_a_full_password_check() -> None:
    assert _dummy_hash().startswith("$argon2id$")
    assert await verify_password(None, "anything") is False


async def test_a_refresh_token_is_rotated_and_good_once(gql: GraphQLClient, make: Factory) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    first = (await gql.data(LOGIN, {"u": "alice@example.com", "p": PASSWORD}))["login"]

    second = (await gql.data(REFRESH, {"t": first["refreshToken"]}))["refreshAccessToken"]
    replayed = (await gql.data(REFRESH, {"t": first["refreshToken"]}))["refreshAccessToken"]
    after_replay = (await gql.data(REFRESH, {"t": second["refreshToken"]}))["refreshAccessToken"]

    assert second["userErrors"] == []
    assert second["viewer"] == {"username": "alice@example.com"}
    assert second["refreshToken"] != first["refreshToken"]
    assert replayed["userErrors"] == [
        {"field": ["input", "refreshToken"], "code": "INVALID_CREDENTIALS"}
    ]
    # A replay means the token leaked: every token of that sign-in is revoked.
    assert after_replay["userErrors"] == [
        {"field": ["input", "refreshToken"], "code": "INVALID_CREDENTIALS"}
    ]


async def test_a_garbage_refresh_token_is_refused(gql: GraphQLClient) -> None:
    data = await gql.data(REFRESH, {"t": "garbage"})

    assert data["refreshAccessToken"]["userErrors"][0]["code"] == "INVALID_CREDENTIALS"


async def test_an_expired_access_token_is_unauthenticated_over_http(
    gql: GraphQLClient, make: Factory
) -> None:
    expired = make.token(
        Principal(role=Role.SYSTEM_ADMIN, subject_id=1, username="root"), minutes=-1
    )

    response = await gql.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {expired}"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {
        "errors": [
            {
                "message": "The access token is invalid or has expired.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }


async def test_a_token_signed_with_another_key_is_unauthenticated(
    gql: GraphQLClient, make: Factory
) -> None:
    from datetime import timedelta

    from api.auth.tokens import issue_access_token

    forged, _ = issue_access_token(
        Principal(role=Role.SYSTEM_ADMIN, subject_id=1, username="root"),
        key="someone-else's-key-that-is-long-enough-too",
        lifetime=timedelta(minutes=5),
    )

    response = await gql.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {forged}"}
    )

    assert response.status_code == 401


async def test_a_malformed_authorization_header_is_unauthenticated(gql: GraphQLClient) -> None:
    response = await gql.http.post(
        "/graphql", json={"query": VIEWER}, headers={"Authorization": "Basic abc"}
    )

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


LOGOUT = "mutation($t: String!) { logout(input: {refreshToken: $t}) { userErrors { code } } }"


async def test_logout_revokes_the_sign_in_and_every_token_rotated_from_it(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    first = (await gql.data(LOGIN, {"u": "alice@example.com", "p": PASSWORD}))["login"]
    other = (await gql.data(LOGIN, {"u": "alice@example.com", "p": PASSWORD}))["login"]
    second = (await gql.data(REFRESH, {"t": first["refreshToken"]}))["refreshAccessToken"]

    # Signing out with the token already rotated away still ends that sign-in.
    out = await gql.data(LOGOUT, {"t": first["refreshToken"]})
    after = (await gql.data(REFRESH, {"t": second["refreshToken"]}))["refreshAccessToken"]
    elsewhere = (await gql.data(REFRESH, {"t": other["refreshToken"]}))["refreshAccessToken"]

    assert out == {"logout": {"userErrors": []}}
    assert after["userErrors"] == [
        {"field": ["input", "refreshToken"], "code": "INVALID_CREDENTIALS"}
    ]
    # Another sign-in of the same account (another browser) is not touched.
    assert elsewhere["userErrors"] == []


async def test_logout_answers_the_same_for_an_unknown_token(gql: GraphQLClient) -> None:
    before = await RefreshToken.all().count()

    data = await gql.data(LOGOUT, {"t": "never-issued"})

    assert data == {"logout": {"userErrors": []}}
    assert await RefreshToken.all().count() == before
