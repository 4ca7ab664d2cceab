"""A mutation's expected failures, answered once for every mutation.

A service refuses with UserErrors (api/errors.py), and so does the domain rule when a mutation's
input names a domain it may not touch (api/graphql/directives.py). Every mutation is declared
with `mutation(...)`, whose innermost field extension turns that refusal into the mutation's own
payload: its userErrors, every other field at a default that reads as nothing done. A resolver
is then only its success: it calls its service and builds the payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from api.errors import UserErrors
from api.graphql.context import Info
from api.graphql.types import user_errors_of

P = TypeVar("P")


def refused(payload: Callable[..., P], refusal: UserErrors, **known: object) -> P:
    """The payload of a mutation that changed nothing: the refusal's userErrors, every other
    field at its default (each payload's defaults read as nothing done: empty lists, nulls,
    zeros), or as `known` says."""
    return payload(**known, user_errors=user_errors_of(list(refusal.errors)))


class AnswerRefusals(FieldExtension):
    """UserErrors raised while the mutation runs become its payload (`refused`)."""

    def apply(self, field: StrawberryField) -> None:
        self.field = field

    async def resolve_async(
        self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except UserErrors as refusal:
            # The field's type is its payload class (resolved by the time a request runs).
            payload = self.field.type
            if not isinstance(payload, type):
                raise TypeError(f"{self.field.name} does not answer with a payload") from refusal
            return refused(payload, refusal)


def mutation(
    *, extensions: Sequence[FieldExtension] = (), description: str | None = None
) -> StrawberryField:
    """strawberry.mutation, with its refusals answered as its payload. `extensions` are the
    field's others (its @auth); this one runs inside them, around the resolver alone."""
    # Without a resolver, strawberry.mutation's overload is typed Any; it is this field.
    return cast(
        StrawberryField,
        strawberry.mutation(extensions=[AnswerRefusals(), *extensions], description=description),
    )
