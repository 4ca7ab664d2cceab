"""A hostile client, generated: documents shaped to cost the server (fragments spread into each
other, aliases by the hundred, deep nesting, the same field a thousand times, odd ids, long lists,
wide date ranges, nested introspection), sent anonymously and as each role, over HTTP and
WebSocket. Each is answered, or refused with a coded error: never a 5xx, never
INTERNAL_SERVER_ERROR, no log line above INFO, and the server's event loop never held long.

Hypothesis draws the documents, derandomized, so CI sends the same ones every run;
MAPI_EWS_HOSTILE_EXAMPLES (default 60) sends more."""

from __future__ import annotations

import base64
import logging
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.settings import Settings
from tests.conftest import Factory
from tests.servers import serving
from tests.test_hostile import watched
from tests.ws import websocket

EXAMPLES = int(os.environ.get("MAPI_EWS_HOSTILE_EXAMPLES", "60"))
CODES = {"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "NOT_FOUND", "THROTTLED"}
KINDS = ["Account", "Domain", "MapiEwsLoginEvent", "AuditEntry", "MapiEwsSession", "Usage", ""]
Request = tuple[str, dict[str, Any]]


def _id(kind: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


ids = st.one_of(
    st.builds(
        _id,
        st.sampled_from(KINDS),
        st.one_of(st.integers(-3, 2**80).map(str), st.text(max_size=12)),
    ),
    st.text(max_size=30),
)


def explosion(levels: int, fanout: int) -> Request:
    spreads = " ".join(["...F{next}"] * fanout)
    fragments = " ".join(
        f"fragment F{i} on Query {{ {spreads.format(next=i + 1)} }}" for i in range(levels)
    )
    return f"query {{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}", {}


def aliases(count: int, field: str) -> Request:
    return "query { " + " ".join(f"a{i}: {field}" for i in range(count)) + " }", {}


def deep(levels: int) -> Request:
    return "query { " + "viewer { " * levels + "role" + " }" * (levels + 1), {}


def same_field(count: int) -> Request:
    return "query { " + "__typename " * count + "}", {}


def nodes(values: list[str], count: int) -> Request:
    fields = " ".join(f"n{i}: nodes(ids: $ids) {{ id }}" for i in range(count))
    return f"query($ids: [ID!]!) {{ {fields} }}", {"ids": values}


def reports(count: int, fields: int) -> Request:
    report = {"emailAddress": "user@example.com", "protocol": "EWS"}
    selections = " ".join(
        f"r{i}: recordProtocolLogins(input: {{reports: $r}}) {{ results {{ allowed }} }}"
        for i in range(fields)
    )
    return f"mutation($r: [RecordProtocolLoginInput!]!) {{ {selections} }}", {"r": [report] * count}


def usernames(count: int) -> Request:
    document = (
        "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { sessionsEnding } }"
    )
    return document, {"u": [f"user{i}" for i in range(count)]}


def history(start: str, end: str, count: int) -> Request:
    fields = " ".join(
        f"h{i}: mapiEwsUsageHistory(from: $f, to: $t) {{ date peakEnabled }}" for i in range(count)
    )
    return f"query($f: Date!, $t: Date!) {{ {fields} }}", {"f": start, "t": end}


def introspection(count: int, levels: int) -> Request:
    type_ref = "name " + "ofType { name " * levels + "}" * levels
    one = f"__schema {{ types {{ fields {{ args {{ type {{ {type_ref} }} }} }} }} }}"
    return aliases(count, one)


dates = st.one_of(st.dates().map(str), st.text(max_size=12))
HOSTILE = st.one_of(
    st.builds(explosion, st.integers(1, 60), st.integers(1, 4)),
    st.builds(aliases, st.integers(1, 400), st.sampled_from(["__typename", "viewer { role }"])),
    st.builds(deep, st.integers(1, 400)),
    st.builds(same_field, st.integers(1, 1990)),
    st.builds(nodes, st.lists(ids, max_size=120), st.integers(1, 40)),
    st.builds(reports, st.integers(0, 600), st.integers(1, 3)),
    st.builds(usernames, st.integers(0, 700)),
    st.builds(history, dates, dates, st.integers(1, 40)),
    st.builds(introspection, st.integers(1, 40), st.integers(0, 30)),
)


def generated(count: int) -> list[Request]:
    drawn: list[Request] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(HOSTILE)
    def draw(request: Request) -> None:
        drawn.append(request)

    draw()
    return drawn


def check(errors: list[dict[str, Any]], request: Request) -> None:
    for error in errors:
        code = error.get("extensions", {}).get("code")
        assert code in CODES, (request[0][:300], error)


async def tokens(make: Factory) -> dict[str, str | None]:
    example = await make.domain("example.com")
    admin = await make.account(example, "admin", admin=True)
    user = await make.account(example, "user")
    return {
        "anonymous": None,
        "user": await make.token_for(user),
        "domain-admin": await make.token_for(admin),
        "system-admin": await make.token_for(await make.system_admin()),
        "gateway": await make.gateway(),
    }


async def test_no_hostile_document_costs_the_server_or_answers_as_its_fault(
    settings: Settings, make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    roles = await tokens(make)
    requests = generated(EXAMPLES)
    # Budgets would soon refuse everything with THROTTLED: the limits are what is under test.
    app = create_app(settings.model_copy(update={"cost_limits": {}}))
    with caplog.at_level(logging.INFO):
        async with serving(app) as url, watched() as lag:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                for role, token in roles.items():
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    for request in requests:
                        query, variables = request
                        body = {"query": query, "variables": variables}
                        response = await http.post("/graphql", json=body, headers=headers)
                        assert response.status_code < 500, (role, query[:300], response.text)
                        check(response.json().get("errors", []), request)
            for role in ("anonymous", "domain-admin"):
                async with websocket(url, token=roles[role]) as ws:
                    assert await ws.init() == {"type": "connection_ack"}
                    for number, (query, variables) in enumerate(requests):
                        await ws.subscribe(str(number), query, variables)
                        answer = await ws.receive(wait=30)
                        while answer["type"] == "next":  # then complete
                            check(answer["payload"].get("errors", []), (query, variables))
                            answer = await ws.receive(wait=30)
                        if answer["type"] == "error":
                            check(answer["payload"], (query, variables))
                        else:
                            assert answer == {"id": str(number), "type": "complete"}

    assert lag.worst < 1.0, lag.worst
    assert not [r.getMessage() for r in caplog.records if r.levelno > logging.INFO]
