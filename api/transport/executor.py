"""graphql-core's executor, with compiled plans for the fields whose answers are plain data.

A field with a plan (api/transport/plans.py) is answered by it; a field without one, or whose
values the plan does not take, by graphql-core, so its errors and null rules are unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLError, GraphQLObjectType
from graphql.execution.collect_fields import FieldDetailsList
from graphql.execution.executor import CollectedErrors
from graphql.pyutils import Path, UndefinedType

from api.internals.strawberry_private import StrawberryGraphQLCoreExecutionContext
from api.transport.plans import PARITY, Plans


class _NoPlans(Plans):
    def plan(self, *_: object) -> None:
        return None


_NO_PLANS = _NoPlans(None, None)


def _name(parent_type: GraphQLObjectType, field_details_list: FieldDetailsList) -> str:
    return f"{parent_type.name}.{field_details_list[0].node.name.value}"


class PlainFieldExecutor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, plans: Plans | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plans = plans if plans is not None else Plans(None, None)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any | UndefinedType:
        plan = self.plans.plan(self, parent_type, field_details_list)
        middleware = self.middleware_manager
        if plan is not None and not (middleware and middleware.middlewares):
            try:
                answer = plan(source)
            except Exception as refused:  # a value the plan does not take: graphql-core's path
                if PARITY.enabled:
                    PARITY.refused.append((_name(parent_type, field_details_list), refused))
            else:
                if PARITY.enabled:
                    self._compare(parent_type, source, field_details_list, path, answer)
                return answer
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _compare(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        answer: Any,
    ) -> None:
        """graphql-core's own answer for a field the plan answered, and its errors, recorded
        in PARITY when they differ from the plan's."""
        kept, self.collected_errors = self.collected_errors, CollectedErrors()
        plans, self.plans = self.plans, _NO_PLANS  # graphql-core alone, all the way down
        try:
            expected = super().execute_field(parent_type, source, field_details_list, path, None)
            errors = [error.formatted for error in self.collected_errors.errors]
        except GraphQLError as raised:
            expected, errors = None, [raised.formatted]
        finally:
            self.collected_errors, self.plans = kept, plans
        if self.is_awaitable(expected):
            expected.close()  # type: ignore[attr-defined]
            errors.append({"message": "graphql-core's answer is awaitable"})
        PARITY.answered += 1
        if errors or orjson.dumps(expected) != orjson.dumps(answer):
            PARITY.differences.append(
                f"{_name(parent_type, field_details_list)} at {path.as_list()}: the plan "
                f"answered {answer!r}; graphql-core {expected!r} with errors {errors}"
            )
