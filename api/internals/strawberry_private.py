"""Strawberry's private parts, each where the app needs what Strawberry does not offer publicly:

- the execution context that Strawberry's own execute uses, which ours extends
  (api/transport/executor.py);
- how Strawberry converts its types to graphql-core's: the back reference from a GraphQL type to
  its definition, its enum type, its object and field definitions (api/transport/plans.py
  compiles plans from them);
- how it converts an input (`InputContext`, its type wrappers, enums and scalars:
  api/graphql/inputs.py converts plain inputs as it would);
- its graphql-transport-ws handler and an operation on it (api/transport/websocket.py runs each
  operation through our pipeline), its `aclosing`, and the Starlette WebSocket behind its ASGI
  adapter (a `next` message written as text the pipeline encoded, `send_text`);
- the graphql-core resolve info behind Strawberry's `Info` (api/graphql/context.py reads the
  field's selection).

tests/test_internals.py checks each, so that an upgrade that moves one fails there by name.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.scalars import is_scalar
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.utils.aio import aclosing

# The key under which a graphql-core type's extensions hold its Strawberry definition.
DEFINITION_BACKREF: str = GraphQLCoreConverter.DEFINITION_BACKREF

__all__ = [
    "DEFINITION_BACKREF",
    "BaseGraphQLTransportWSHandler",
    "CustomGraphQLEnumType",
    "InputContext",
    "Operation",
    "StrawberryField",
    "StrawberryGraphQLCoreExecutionContext",
    "StrawberryList",
    "StrawberryObjectDefinition",
    "StrawberryOptional",
    "StrawberryType",
    "aclosing",
    "has_enum_definition",
    "is_scalar",
    "resolve_info",
    "send_text",
]


def resolve_info(info: Any) -> GraphQLResolveInfo[Any]:
    """The graphql-core resolve info behind Strawberry's Info (the field's nodes, the
    document's fragments)."""
    raw: GraphQLResolveInfo[Any] = info._raw_info
    return raw


async def send_text(websocket: AsyncWebSocketAdapter, text: str) -> None:
    """A message already encoded, sent as Strawberry's ASGI adapter sends one it encodes itself
    (its `send_json`): a text frame on its Starlette WebSocket, WebSocketDisconnected when the
    client is gone."""
    if not isinstance(websocket, ASGIWebSocketAdapter):
        raise TypeError(f"an ASGI WebSocket adapter was expected, not {type(websocket)}")
    try:
        await websocket.ws.send_text(text)
    except WebSocketDisconnect as gone:
        raise WebSocketDisconnected from gone
