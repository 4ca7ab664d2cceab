"""The private parts of Strawberry and Tortoise the app uses (api/internals/), each checked for
what the app relies on: after an upgrade, a failure here names the part that moved."""

from api.graphql.schema import build_schema
from api.internals import strawberry_private, tortoise_private
from api.models import Account, LoginEvent, ProtocolSession
from tests.conftest import Factory


def test_strawberry_keeps_each_part_the_app_imports_from_it() -> None:
    for name in strawberry_private.__all__:
        assert getattr(strawberry_private, name, None) is not None, name


def test_strawberry_keeps_its_definition_on_each_graphql_core_type() -> None:
    schema = build_schema()._schema
    account = schema.type_map["Account"]

    definition = account.extensions[strawberry_private.DEFINITION_BACKREF]

    assert isinstance(definition, strawberry_private.StrawberryObjectDefinition)
    assert isinstance(schema.type_map["MailProtocol"], strawberry_private.CustomGraphQLEnumType)
    assert all(isinstance(field, strawberry_private.StrawberryField) for field in definition.fields)


def test_strawberry_s_execution_context_is_graphql_core_s_executor() -> None:
    """api/transport/executor.py extends it, overriding graphql-core 3.3's Executor methods."""
    from graphql.execution.executor import Executor

    context = strawberry_private.StrawberryGraphQLCoreExecutionContext
    assert issubclass(context, Executor)
    assert all(callable(getattr(context, name, None)) for name in ("build", "execute_field"))


async def test_tortoise_builds_a_model_from_a_raw_row_by_its_own_rules(make: Factory) -> None:
    domain = await make.domain("example.com")
    await make.account(domain, "alice")
    row = dict((await Account.filter(username="alice").values())[0])

    account = tortoise_private.from_row(Account, row)

    assert (account.username, account.domain_id) == ("alice", domain.id)
    assert tortoise_private.columns(Account) >= {"id", "username", "domain_id", "last_login"}


def test_tortoise_names_each_model_s_time_columns_and_key_range() -> None:
    times = tortoise_private.time_columns(ProtocolSession)

    assert {"started_at", "last_seen_at", "expires_at", "ended_at"} <= set(times)
    assert tortoise_private.largest_key(Account) == 2**31 - 1  # int4
    assert tortoise_private.largest_key(LoginEvent) == 2**63 - 1  # int8
