"""The document limits: parse with a token cap, validate with depth, aliases and cost; and what
an operation asks to spend of its caller's budget (its requested cost).

Both steps are cached by the query's text (a string hashes once; a document would be hashed
node by node per request), and the validation rules are built once: Strawberry's limiters make
a new rule class per instance, and graphql-core's caches key on rule classes.

Several rules (depth, aliases, cost, introspection depth, and graphql-core's overlapping fields)
walk each fragment again at every spread: a document whose fragments spread the next one twice,
level after level, would cost them 2^levels. So before any rule runs, the parser measures each
operation with its fragments spread, each fragment measured once, and refuses one that holds
more fields than the token limit lets a document write out: no valid document loses by it, and
every rule then walks at most that many fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    parse,
    specified_rules,
    validate,
)
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from api.services.login_batches import MAX_REPORTS
from api.settings import Settings
from api.transport.cost import CostModel, Measure, cost_rule

CACHE_SIZE = 256
# Validation stops after this many errors: a document built to fail everywhere costs no more.
_MAX_ERRORS = 20
# Strawberry's depth limiter skips introspection fields, and graphql-core's
# MaxIntrospectionDepthRule counts only fields/interfaces/possibleTypes/inputFields, not
# `ofType`. The full introspection query (graphql-core's, every option on) reaches depth 15
# under `__schema`; clients asking for deeper type references get a few levels more.
INTROSPECTION_MAX_DEPTH = 20


@lru_cache(maxsize=CACHE_SIZE)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    document = parse(query, max_tokens=max_tokens)
    for operation, fields in _spread_sizes(document):
        if fields > max_tokens:
            raise GraphQLError(
                f"The document spreads its fragments into {fields} fields, over the limit of "
                f"{max_tokens}: select the fields you need once instead of spreading fragments "
                "into each other.",
                operation,
            )
    return document


def _spread_sizes(document: DocumentNode) -> list[tuple[OperationDefinitionNode, int]]:
    """Each operation's fields once its fragments are spread, in time proportional to the
    document: a fragment is measured once, whatever spreads it (a cycle counts nothing here;
    validation reports it)."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    measured: dict[str, int] = {}
    measuring: set[str] = set()

    def size(selections: SelectionSetNode | None) -> int:
        total = 0
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                total += 1 + size(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += size(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragment(selection.name.value)
        return total

    def fragment(name: str) -> int:
        if name not in measured:
            if name in measuring or name not in fragments:
                return 0
            measuring.add(name)
            measured[name] = size(fragments[name].selection_set)
            measuring.discard(name)
        return measured[name]

    return [
        (definition, size(definition.selection_set))
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]


def _depth(
    selections: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> int:
    """How deep `selections` nest, fragments followed (each once per path)."""
    if selections is None:
        return 0
    deepest = 0
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            depth = 1 + _depth(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                continue
            depth = _depth(fragment.selection_set, fragments, seen | {name})
        elif isinstance(selection, InlineFragmentNode):
            depth = _depth(selection.selection_set, fragments, seen)
        deepest = max(deepest, depth)
    return deepest


class IntrospectionDepthRule(ValidationRule):
    """Bounds how deep a selection under `__schema` or `__type` nests, `ofType` included."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> None:
        fragments = {
            definition.name.value: definition
            for definition in self.context.document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self._check(node.selection_set, fragments, frozenset())

    def _check(
        self,
        selections: SelectionSetNode | None,
        fragments: dict[str, FragmentDefinitionNode],
        seen: frozenset[str],
    ) -> None:
        for selection in selections.selections if selections else ():
            if isinstance(selection, FieldNode):
                if selection.name.value in ("__schema", "__type"):
                    if 1 + _depth(selection.selection_set, fragments) > INTROSPECTION_MAX_DEPTH:
                        self.report_error(
                            GraphQLError(
                                "The introspection query nests deeper than "
                                f"{INTROSPECTION_MAX_DEPTH} levels.",
                                selection,
                            )
                        )
                else:
                    self._check(selection.selection_set, fragments, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:
                    self._check(fragments[name].selection_set, fragments, seen | {name})
            elif isinstance(selection, InlineFragmentNode):
                self._check(selection.selection_set, fragments, seen)


class Limits:
    """The document limits (tokens, depth, aliases, cost), introspection and field suggestions
    as configured."""

    def __init__(self, settings: Settings) -> None:
        self.max_tokens = settings.max_tokens
        self.max_cost = settings.max_query_cost
        # What one request may carry of each batched list, however many fields it spreads
        # them over: a gateway's batch of reports, an enable's usernames.
        self.batches = {"reports": MAX_REPORTS, "usernames": settings.batch_size_max}
        self.hide_suggestions = not settings.suggests_fields
        self.costs = CostModel(
            default_page=settings.page_size_default, max_page=settings.page_size_max
        )
        self.rules: tuple[type[ASTValidationRule], ...] = (
            *specified_rules,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
            *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
            IntrospectionDepthRule,
            *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
            cost_rule(max_cost=settings.max_query_cost, model=self.costs),
            *(() if settings.allows_introspection else (NoSchemaIntrospectionCustomRule,)),
        )
        self.errors: Callable[[GraphQLSchema, str], list[GraphQLError]] = lru_cache(
            maxsize=CACHE_SIZE
        )(self._validate)
        self._requested: Callable[
            [GraphQLSchema, str, str | None, tuple[tuple[str, object], ...]], Measure
        ] = lru_cache(maxsize=4 * CACHE_SIZE)(self._requested_cost)

    def parse(self, query: str) -> DocumentNode:
        """The document (cached by text); GraphQLError for a syntax error or too many tokens."""
        return _parse(query, self.max_tokens)

    def _validate(self, schema: GraphQLSchema, query: str) -> list[GraphQLError]:
        return validate(
            schema,
            self.parse(query),
            self.rules,
            max_errors=_MAX_ERRORS,
            hide_suggestions=self.hide_suggestions,
        )

    def requested_cost(
        self,
        schema: GraphQLSchema,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, object] | None,
    ) -> Measure:
        """The cost of the named operation of a valid document with these variables, and the
        batched lists it carries. Cached by text and by what of the variables can size it:
        integers and nulls (pages), the lengths of lists (also one level inside an input
        object) and ten-character strings (dates)."""
        sizes = tuple(
            (name, shape)
            for name, value in (variables or {}).items()
            if (shape := _shape(value)) is not _IRRELEVANT
        )
        return self._requested(schema, query, operation_name, sizes)

    def _requested_cost(
        self,
        schema: GraphQLSchema,
        query: str,
        operation_name: str | None,
        sizes: tuple[tuple[str, object], ...],
    ) -> Measure:
        document = self.parse(query)
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode) and (
                operation_name is None
                or (definition.name is not None and definition.name.value == operation_name)
            ):
                return self.costs.measure(schema, document, definition, _sized(sizes))
        return Measure(0)

    def refusal(self, measure: Measure) -> str | None:
        """Why an operation of this requested cost may not run at all, whatever the budget."""
        if measure.cost > self.max_cost:
            return (
                f"The operation costs {measure.cost}, over the limit of {self.max_cost}: ask "
                "for fewer ids, usernames, reports or days, smaller pages or fewer fields."
            )
        # One field over the limit is answered by that field's own userErrors.
        for name, (count, fields) in measure.batched.items():
            if fields > 1 and count > self.batches[name]:
                return (
                    f"The operation carries {count} {name} in all, over the limit of "
                    f"{self.batches[name]} a request, however many fields they are spread over."
                )
        return None


_IRRELEVANT = object()


def _shape(value: object) -> object:
    """What of a variable's value can change an operation's cost (see requested_cost)."""
    if value is None or type(value) is int:
        return value
    if type(value) is list:
        return ("list", len(value))
    if type(value) is str:
        return value if len(value) == 10 else _IRRELEVANT
    if type(value) is dict:
        lists = tuple((key, len(item)) for key, item in value.items() if type(item) is list)
        return ("object", lists) if lists else _IRRELEVANT
    return _IRRELEVANT


def _sized(sizes: tuple[tuple[str, object], ...]) -> dict[str, object]:
    """Variables as the cost model reads them, rebuilt from their shapes: a list of the same
    length, an input object with lists of the same lengths."""
    variables: dict[str, object] = {}
    for name, shape in sizes:
        if isinstance(shape, tuple) and shape[0] == "list":
            variables[name] = [None] * shape[1]
        elif isinstance(shape, tuple):
            variables[name] = {key: [None] * length for key, length in shape[1]}
        else:
            variables[name] = shape
    return variables
