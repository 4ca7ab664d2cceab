"""The document limits: parse with a token cap, validate with depth, aliases and cost; and what
an operation asks to spend of its caller's budget (its requested cost).

Both steps are cached by the query's text (a string hashes once; a document would be hashed
node by node per request), and the validation rules are built once: Strawberry's limiters make
a new rule class per instance, and graphql-core's caches key on rule classes.
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

from api.settings import Settings
from api.transport.cost import CostModel, cost_rule

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
    return parse(query, max_tokens=max_tokens)


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
            [GraphQLSchema, str, str | None, tuple[tuple[str, int | None], ...]], int
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
    ) -> int:
        """The cost of the named operation of a valid document with these variables. Cached
        by text and by the variables that can size a page (integers and nulls)."""
        pages = tuple(
            (name, value)
            for name, value in (variables or {}).items()
            if value is None or (type(value) is int)
        )
        return self._requested(schema, query, operation_name, pages)

    def _requested_cost(
        self,
        schema: GraphQLSchema,
        query: str,
        operation_name: str | None,
        pages: tuple[tuple[str, int | None], ...],
    ) -> int:
        document = self.parse(query)
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode) and (
                operation_name is None
                or (definition.name is not None and definition.name.value == operation_name)
            ):
                return self.costs.cost(schema, document, definition, dict(pages))
        return 0
