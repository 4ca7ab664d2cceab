"""What introspection returns, known before it runs, so that it costs what it returns
(api/transport/cost.py): the average length of each of its lists over the schema, how often a
type reference is wrapped once more, and the exact lists of one named type (`__type(name:)`).

Averages make the sum exact along `__schema { types { fields { args } } }`: the types' fields,
counted type by type, add up to every field of the schema. The full introspection query is then
priced within a few percent of what it returns (tests/test_hostile.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from graphql import (
    GraphQLNamedType,
    GraphQLSchema,
    GraphQLType,
    is_abstract_type,
    is_enum_type,
    is_input_object_type,
    is_interface_type,
    is_object_type,
    is_wrapping_type,
)


@dataclass(frozen=True, slots=True)
class IntrospectionLists:
    """What introspection's lists hold in one schema: each list's average length, by (type,
    field), and of the type references (fields', arguments' and input fields' types), the
    share wrapped at least 1, 2, ... times."""

    averages: dict[tuple[str, str], float]
    wrapping: tuple[float, ...]

    def wrapped(self, level: int) -> float:
        """How likely a reference wrapped `level - 1` times is wrapped once more."""
        shares = (1.0, *self.wrapping)
        if level >= len(shares) or shares[level - 1] == 0:
            return 0.0
        return shares[level] / shares[level - 1]


@cache
def introspection_lists(schema: GraphQLSchema) -> IntrospectionLists:
    """What introspection's lists hold in `schema` (computed once a schema)."""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if is_object_type(t) or is_interface_type(t)]
    fields = [f for t in with_fields for f in t.fields.values()]
    inputs = [f for t in types if is_input_object_type(t) for f in t.fields.values()]
    directives = list(schema.directives)
    count = max(1, len(types))
    references = [
        *(f.type for f in fields),
        *(a.type for f in fields for a in f.args.values()),
        *(f.type for f in inputs),
        *(a.type for d in directives for a in d.args.values()),
    ]
    depths = [_wrappers(reference) for reference in references]
    deepest = max(depths, default=0)
    return IntrospectionLists(
        averages={
            ("__Schema", "types"): float(len(types)),
            ("__Schema", "directives"): float(len(directives)),
            ("__Type", "fields"): len(fields) / count,
            ("__Type", "interfaces"): sum(len(t.interfaces) for t in with_fields) / count,
            ("__Type", "possibleTypes"): sum(
                len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)
            )
            / count,
            ("__Type", "enumValues"): sum(len(t.values) for t in types if is_enum_type(t)) / count,
            ("__Type", "inputFields"): len(inputs) / count,
            ("__Field", "args"): sum(len(f.args) for f in fields) / max(1, len(fields)),
            ("__Directive", "args"): sum(len(d.args) for d in directives) / max(1, len(directives)),
        },
        wrapping=tuple(
            sum(depth >= level for depth in depths) / max(1, len(depths))
            for level in range(1, deepest + 1)
        ),
    )


def exact_lengths(schema: GraphQLSchema, named: GraphQLNamedType) -> dict[str, float]:
    """The lists of one named type, as `__type(name:)` returns them."""
    fields = getattr(named, "fields", {}) if not is_input_object_type(named) else {}
    return {
        "fields": float(len(fields)),
        "interfaces": float(len(getattr(named, "interfaces", ()))),
        "possibleTypes": float(
            len(schema.get_possible_types(named)) if is_abstract_type(named) else 0
        ),
        "enumValues": float(len(getattr(named, "values", {}))),
        "inputFields": float(len(named.fields) if is_input_object_type(named) else 0),
        "ofType": 0.0,
    }


def _wrappers(reference: GraphQLType) -> int:
    depth = 0
    while is_wrapping_type(reference):
        reference = reference.of_type
        depth += 1
    return depth
