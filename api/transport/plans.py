"""Execution plans, compiled once per document, for the fields whose answers are plain data.

graphql-core completes every field alike: a resolve-info, the arguments, a resolver call, an
awaitable check and a dispatch on the type, for each field of each object (about 16 µs a
field, graphql-core issue 189). Most of a page of the MAPI/EWS tab needs none of that: below
its root field, every field is a Strawberry attribute with no arguments and no extensions, and
its answer is the attribute read and serialized.

For such a field, the first execution of a document compiles one Python function that reads
the attributes and builds the answer's lists and dicts directly (graphql-jit's approach); every
later execution of that document calls it. A field has a plan when it has no arguments, no
resolver and no field extension (so no @auth), and its type is a scalar, an enum, or an object
or list whose selected fields all have plans in turn, with no directive and no interface or
union anywhere below it. Every other field runs through graphql-core, as before.

A plan takes only the values it is sure of. A value of another type than the schema's, a null
where the schema says non-null, or a scalar that does not serialize raises, and graphql-core
completes the field from its start instead: the errors, null propagation and paths are its own.
A plan only reads attributes, so reading them again changes nothing.

`PARITY` runs graphql-core beside every plan and records each difference; the test suite turns
it on for every document it executes (tests/conftest.py).
"""

from __future__ import annotations

import keyword
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLError,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.execution.collect_fields import FieldDetailsList, collect_subfields
from graphql.pyutils import Undefined

from api.internals.strawberry_private import (
    DEFINITION_BACKREF,
    CustomGraphQLEnumType,
    StrawberryField,
    StrawberryObjectDefinition,
)

if TYPE_CHECKING:
    from graphql.execution.executor import Executor

Plan = Callable[[Any], Any]
"""The parent object -> the field's answer; raises when graphql-core must complete it."""

_DEFINITION = DEFINITION_BACKREF
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# Directives the parent's field collection has already applied to a field it collected.
_APPLIED = frozenset({"skip", "include"})


# The builtins a plan's code names; it sees no others.
_BUILTINS = (type, isinstance, list, tuple, str, bool, int, Exception)


class Bail(Exception):
    """A value the plan does not take as it is: graphql-core completes the field instead."""


def _bail() -> Any:
    raise Bail


def _leaf(coerce: Callable[[Any], Any], value: Any) -> Any:
    """A scalar or enum value off the plan's fast test, through graphql-core's own coercion.
    Null, Undefined and exceptions (which graphql-core reports as field errors) are not taken."""
    if value is None or value is Undefined or isinstance(value, Exception):
        raise Bail
    coerced = coerce(value)
    if coerced is None or coerced is Undefined:
        raise Bail
    return coerced


class _NoPlan(Exception):
    """Something in the field's selection needs graphql-core's generic completion."""


class _Compiler:
    """Writes a field's plan as one Python expression over the parent object `s`.

    The code holds only the schema's own Python attribute names (checked to be identifiers),
    response names (GraphQL names: letters, digits and underscores, written with repr) and
    names of constants held in the plan's own namespace."""

    def __init__(self, executor: Executor[Any]) -> None:
        self.executor = executor
        self.namespace: dict[str, Any] = {
            "__builtins__": {},
            "B": _bail,
            "L": _leaf,
            **{builtin.__name__: builtin for builtin in _BUILTINS},
        }
        self.names = 0

    def fresh(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def constant(self, value: object) -> str:
        name = self.fresh("c")
        self.namespace[name] = value
        return name

    def bind(self, expression: str) -> tuple[str, str]:
        """(the expression evaluated into a name, at its first use; that name)."""
        if expression.isidentifier():
            return expression, expression
        name = self.fresh("v")
        return f"({name} := {expression})", name

    def field(self, parent: GraphQLObjectType, group: FieldDetailsList, source: str) -> str:
        name = group[0].node.name.value
        for details in group:
            if (
                details.node.arguments
                or details.defer_usage is not None
                or details.fragment_variable_values is not None
            ):
                raise _NoPlan
        if name == "__typename":
            return repr(parent.name)
        definition = parent.fields.get(name)
        strawberry_field = definition.extensions.get(_DEFINITION) if definition else None
        if (
            definition is None
            or definition.args
            or not isinstance(strawberry_field, StrawberryField)
            or not strawberry_field.is_basic_field
            or strawberry_field.default_resolver is not getattr
            or not getattr(definition.resolve, "_is_default", False)
        ):
            raise _NoPlan
        attribute = strawberry_field.python_name
        if not attribute.isidentifier() or keyword.iskeyword(attribute):
            raise _NoPlan
        return self.value(definition.type, f"{source}.{attribute}", group)

    def value(self, type_: GraphQLOutputType, expression: str, group: FieldDetailsList) -> str:
        if isinstance(type_, GraphQLNonNull):
            return self.present(type_.of_type, expression, group, null_possible=True)
        first, name = self.bind(expression)
        inner = self.present(type_, name, group, null_possible=False)
        return f"(None if {first} is None else {inner})"

    def present(
        self,
        type_: GraphQLOutputType,
        expression: str,
        group: FieldDetailsList,
        *,
        null_possible: bool,
    ) -> str:
        """The answer for a value that must not be null (`null_possible`: it is not checked
        yet)."""
        first, name = self.bind(expression)
        if isinstance(type_, GraphQLList):
            item = self.fresh("i")
            each = self.value(type_.of_type, item, group)
            return (
                f"([{each} for {item} in {name}] "
                f"if type({first}) is list or type({name}) is tuple else B())"
            )
        if isinstance(type_, GraphQLObjectType):
            return self.object(type_, first, name, group, null_possible=null_possible)
        if isinstance(type_, GraphQLLeafType):
            return self.leaf(type_, first, name)
        raise _NoPlan  # an interface or union: its runtime type is resolved per value

    def leaf(self, type_: GraphQLLeafType, first: str, name: str) -> str:
        coerce = self.constant(type_.coerce_output_value)
        # Each test accepts only values that graphql-core's coercion returns unchanged.
        if type_ is GraphQLString or type_ is GraphQLID:
            test, answer = f"type({first}) is str", name
        elif type_ is GraphQLBoolean:
            test, answer = f"type({first}) is bool", name
        elif type_ is GraphQLInt:
            test = f"type({first}) is int and {_INT_MIN} <= {name} <= {_INT_MAX}"
            answer = name
        elif isinstance(type_, CustomGraphQLEnumType):
            names: dict[object, object] = {}
            member: object
            for member in type_.wrapped_cls:
                try:
                    names[member] = type_.coerce_output_value(member)
                except Exception:  # noqa: S112 - a member graphql-core refuses stays off the map
                    continue
            test = f"type({first}) is {self.constant(type_.wrapped_cls)}"
            answer = f"{self.constant(names)}[{name}]"
        else:
            return f"L({coerce}, {first})"
        return f"({answer} if {test} else L({coerce}, {name}))"

    def object(
        self,
        type_: GraphQLObjectType,
        first: str,
        name: str,
        group: FieldDetailsList,
        *,
        null_possible: bool,
    ) -> str:
        executor = self.executor
        grouped, defers, _ = collect_subfields(
            executor.schema,
            executor.fragments,
            executor.variable_values,
            executor.operation,
            type_,
            group,
            executor.hide_suggestions,
        )
        if defers:
            raise _NoPlan
        entries = ", ".join(
            f"{response!r}: {self.field(type_, sub_group, name)}"
            for response, sub_group in grouped.items()
        )
        if type_.is_type_of is None:
            test = f"not isinstance({first}, Exception)"
            if null_possible:
                test = f"{first} is not None and not isinstance({name}, Exception)"
        else:
            definition = type_.extensions.get(_DEFINITION)
            if not isinstance(definition, StrawberryObjectDefinition) or definition.is_type_of:
                raise _NoPlan  # an is_type_of of one's own may read the resolve info
            # Strawberry's own check (isinstance of the type or its interfaces) reads no info.
            test = f"{self.constant(type_.is_type_of)}({first}, None)"
        return f"({{{entries}}} if {test} else B())"


def _without_directives(
    selections: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> bool:
    """Whether nothing under `selections` carries a directive, fragments followed."""
    for selection in selections.selections if selections else ():
        if selection.directives:
            return False
        if isinstance(selection, FieldNode | InlineFragmentNode):
            below = selection.selection_set
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen:
                continue
            seen.add(name)
            fragment = fragments.get(name)
            if fragment is None or fragment.directives:
                return False
            below = fragment.selection_set
        if not _without_directives(below, fragments, seen):
            return False
    return True


def compile_plan(
    executor: Executor[Any], parent: GraphQLObjectType, group: FieldDetailsList
) -> Plan | None:
    """The plan of a field as selected (`group`: its nodes, merged), or None when the field
    needs graphql-core's generic completion."""
    fragments = executor.fragment_definitions
    for details in group:
        directives = details.node.directives or ()
        if any(directive.name.value not in _APPLIED for directive in directives):
            return None
        if not _without_directives(details.node.selection_set, fragments, set()):
            return None
    compiler = _Compiler(executor)
    try:
        expression = compiler.field(parent, group, "s")
        code = compile(
            f"def plan(s):\n    return {expression}\n",
            f"<plan of {parent.name}.{group[0].node.name.value}>",
            "exec",
        )
    except (_NoPlan, SyntaxError, RecursionError, MemoryError):
        return None
    exec(code, compiler.namespace)  # noqa: S102 - code written above from the schema's names
    plan: Plan = compiler.namespace["plan"]
    return plan


class Plans:
    """The plans of one operation, each compiled when its field is first executed (None for a
    field that has none). It holds its document, so the ids of the document's nodes that key it
    stay unique."""

    __slots__ = ("_plans", "document", "operation")

    def __init__(self, document: DocumentNode | None, operation: OperationDefinitionNode | None):
        self.document = document
        self.operation = operation
        self._plans: dict[tuple[object, ...], Plan | None] = {}

    def __len__(self) -> int:
        """How many fields have been compiled, with a plan or without one."""
        return len(self._plans)

    def plan(
        self, executor: Executor[Any], parent: GraphQLObjectType, group: FieldDetailsList
    ) -> Plan | None:
        if len(group) == 1:
            key: tuple[object, ...] = (parent, id(group[0].node))
        else:
            key = (parent, *[id(details.node) for details in group])
        try:
            return self._plans[key]
        except KeyError:
            plan = self._plans[key] = compile_plan(executor, parent, group)
            return plan


class PlanCache:
    """The plans of the operations most recently run, by operation (as the parser cache hands
    out one document per query text)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, Plans] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def plans(self, document: DocumentNode, operation: OperationDefinitionNode) -> Plans:
        key = id(operation)
        found = self._entries.get(key)
        if found is not None and found.operation is operation:
            self._entries.move_to_end(key)
            return found
        plans = self._entries[key] = Plans(document, operation)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return plans


# What a plan meets in values it does not take: its own refusal, and what reading an attribute
# of an object of another type or coercing a scalar raise. Anything else is a fault of the plan.
EXPECTED_REFUSALS = (Bail, AttributeError, KeyError, TypeError, ValueError, GraphQLError)


@dataclass
class Parity:
    """For the tests: graphql-core's answer beside every plan's. `differences` holds each field
    whose answers differed, with both; `answered`, how many fields plans answered; `refused`,
    each field whose plan left it to graphql-core, with the exception."""

    enabled: bool = False
    answered: int = 0
    differences: list[str] = field(default_factory=list)
    refused: list[tuple[str, Exception]] = field(default_factory=list)

    def clear(self) -> None:
        self.answered = 0
        self.differences.clear()
        self.refused.clear()


PARITY = Parity()
