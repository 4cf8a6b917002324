"""The cost budget of a GraphQL query, computed from the parsed document before anything runs.

Every selected field costs 1 for each object it is selected on, aliases included, so ``{a: __typename b: __typename}``
costs 2. A field returning a list multiplies what is selected under it by the list's size: ``experiments`` and ``logs``
by their ``limit`` (default when omitted), ``experimentPage``'s ``items`` by the page's ``limit`` (the page itself
costs ``PAGE_QUERY_COST``, and so do the navigator's ``tree`` and ``search``, lists sized by their ``limit``), any
other list by ``ASSUMED_LIST_SIZE``. ``metric`` costs
``METRIC_READ_COST`` (it reads the whole step range from storage) and each of its ``steps``/``values`` lists
``2 * maxPoints`` (a min/max bucket keeps up to two points). ``seriesBatch`` is a list as long as its
``experimentIds``, each item costing ``SERIES_BATCH_READ_COST`` plus its point arrays (``2 * maxPoints`` each, its
default ``DEFAULT_BATCH_POINTS``): 1,000 runs at 200 buckets fit the budget, 1,000 at 1,000 do not. A query is refused (400, before it runs) past
``MAX_COST``, past ``MAX_DEPTH`` nested selections (fragments expanded), or when its text is longer than
``MAX_QUERY_CHARS`` or has more than ``MAX_TOKENS`` tokens. docs/server.md lists the numbers.

``experimentPage`` costs, as it runs, ``FILTER_TERM_COST`` per filter comparison (and params/metrics order key)
per experiment in its scope (namespaces, workspace, directory), counted before its query runs.
Text fields are priced by their size as they are answered (``TextBudget``: the budget the document's cost left):
``readme``, ``notes`` and ``environment`` 1 per ``TEXT_CHARS_PER_COST`` characters, ``readmeHtml`` 1 per
``README_HTML_CHARS_PER_COST`` characters of readme (rendering is what costs). Past the budget the query stops
with an error saying so (400).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode, FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLList, GraphQLNonNull,
    GraphQLObjectType, GraphQLSchema, InlineFragmentNode, IntValueNode, OperationDefinitionNode, SelectionSetNode,
    ListValueNode, VariableNode,
)
from graphql import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef

MAX_QUERY_CHARS = 100_000
MAX_TOKENS = 10_000
MAX_DEPTH = 15
MAX_COST = 1_000_000
METRIC_READ_COST = 10_000
# One experiment's series in a seriesBatch: an experiment lookup and one read, as for ``metric``, but priced per item
# so that a workspace chart of 1,000 runs fits the budget once its buckets are few enough to keep the answer small.
SERIES_BATCH_READ_COST = 100
ASSUMED_LIST_SIZE = 10

# Caps the resolvers enforce; the defaults are what the cost counts when an argument is omitted.
DEFAULT_MAX_POINTS = 10_000
MAX_POINTS = 50_000
DEFAULT_LOGS_LIMIT = 1_000
MAX_LOGS_LIMIT = 10_000
DEFAULT_EXPERIMENTS_LIMIT = 100
MAX_EXPERIMENTS_LIMIT = 10_000
DEFAULT_BATCH_POINTS = 200
MAX_SERIES_BATCH = 1_000

# experimentPage: its filtered, sorted SQL query and the COUNT beside it, whatever is selected; its ``items`` list is
# sized by the page's ``limit``.
PAGE_QUERY_COST = 1_000
# The navigator's tree level (a GROUP BY over its scope) and its search (a text match over every experiment in
# scope): each one query over the scope, priced like a page; their lists are sized by their ``limit``.
SCAN_QUERIES = {("Query", "tree"), ("Query", "search")}
DEFAULT_TREE_LIMIT = 1_000
MAX_TREE_LIMIT = 10_000
DEFAULT_SEARCH_LIMIT = 50
MAX_SEARCH_LIMIT = 1_000
_ABSENT = object()  # an argument the query does not give
# Text answered (readme, notes, environment as JSON): 1 per this many characters; readmeHtml: 1 per character of the
# readme rendered (markdown-it takes ~12 µs a character: the whole budget is ~12 s of rendering).
TEXT_CHARS_PER_COST = 100
README_HTML_CHARS_PER_COST = 1
# experimentPage's filter and orderBy: each comparison (and each params./metrics. order key) is an expression the
# database evaluates for every experiment in scope (PostgreSQL ~0.1 ms each over jsonb): priced at this times
# terms × experiments, counted before the page's query runs.
FILTER_TERM_COST = 4

# (type, field) → (argument giving the list size, its default)
SIZED_LISTS = {("Query", "experiments"): ("limit", DEFAULT_EXPERIMENTS_LIMIT),
               ("Experiment", "logs"): ("limit", DEFAULT_LOGS_LIMIT),
               ("Query", "tree"): ("limit", DEFAULT_TREE_LIMIT), ("Query", "search"): ("limit", DEFAULT_SEARCH_LIMIT)}
# (type, field, argument) → its largest accepted value; more is refused before the query runs.
CAPS = {("Query", "experiments", "limit"): MAX_EXPERIMENTS_LIMIT, ("Experiment", "logs", "limit"): MAX_LOGS_LIMIT,
        ("Experiment", "metric", "maxPoints"): MAX_POINTS, ("Query", "seriesBatch", "maxPoints"): MAX_POINTS,
        ("Query", "experimentPage", "limit"): MAX_EXPERIMENTS_LIMIT, ("Query", "tree", "limit"): MAX_TREE_LIMIT,
        ("Query", "search", "limit"): MAX_SEARCH_LIMIT}
POINT_LISTS = {("Metric", "steps"), ("Metric", "values")}
POINT_ARRAYS = {("SeriesEnvelope", "steps"), ("SeriesEnvelope", "values"), ("SeriesEnvelope", "times")}  # JSON arrays


META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef, "__typename": TypeNameMetaFieldDef}


class QueryTooExpensive(Exception):
    """The query is over one of the limits; the message says which and by how much."""


class TextBudget:
    """What a query may still spend on text once it runs: the budget its document's cost left. Resolvers on one
    query's worker loop charge it, so no lock."""

    def __init__(self, left: int) -> None:
        self.left = left

    def charge(self, field: str, chars: int, chars_per_cost: int = TEXT_CHARS_PER_COST) -> None:
        self.spend(field, -(-chars // chars_per_cost),
                   f"1 per {chars_per_cost} characters{' of readme' if field == 'readmeHtml' else ''}; ask for "
                   "fewer experiments or fewer text fields")

    def spend(self, what: str, cost: int, how: str) -> None:
        self.left -= cost
        if self.left < 0:
            raise QueryTooExpensive(f"query is over the budget of {MAX_COST:,} once {what} is counted ({what} "
                                    f"costs {cost:,}: {how})")


def comparisons(node: Any) -> int:
    """The comparisons of a parsed filter (``format.filter``'s AST: BoolOp items, Compare leaves)."""
    if node is None:
        return 0
    items = getattr(node, "items", None)
    return 1 if items is None else sum(comparisons(item) for item in items)


@dataclass(frozen=True)
class Cost:
    cost: int
    depth: int


def check_source(query: str) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise QueryTooExpensive(f"query text is {len(query):,} characters; at most {MAX_QUERY_CHARS:,} are accepted")


def check_cost(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None,
               variables: dict[str, Any] | None) -> Cost:
    """The cost and depth of the operation that would run (every operation when none is named and several exist:
    execution refuses that anyway); ``QueryTooExpensive`` past a limit. ``document`` must have passed validation."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)
                  and (operation_name is None or (d.name is not None and d.name.value == operation_name))]
    worst = Cost(0, 0)
    for operation in operations:
        root = schema.get_root_type(operation.operation)
        if root is None:
            continue
        defaults = {v.variable.name.value: v.default_value for v in operation.variable_definitions or ()}
        found = _Counter(schema, fragments, variables or {}, defaults).selection(root, operation.selection_set, None)
        worst = Cost(max(worst.cost, found.cost), max(worst.depth, found.depth))
    if worst.depth > MAX_DEPTH:
        raise QueryTooExpensive(f"query is nested {worst.depth} levels deep; at most {MAX_DEPTH} are accepted")
    if worst.cost > MAX_COST:
        raise QueryTooExpensive(
            f"query cost {worst.cost:,} is over the budget of {MAX_COST:,} (each field counts once per object it is "
            f"selected on, lists by their limit, metric {METRIC_READ_COST:,} plus 2·maxPoints per steps/values list;"
            " ask for less, or split the query)")
    return worst


class _Counter:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any],
                 defaults: dict[str, Any]) -> None:
        self.schema, self.fragments, self.variables, self.defaults = schema, fragments, variables, defaults
        # Memoized per (fragment, type, maxPoints in scope): a fragment used twice by a fragment used twice ... is
        # counted in linear time, however large the cost it adds up to.
        self.memo: dict[tuple[str, str, int | None, int], Cost] = {}
        self.page_size = DEFAULT_EXPERIMENTS_LIMIT  # the enclosing experimentPage's limit: its items list's size

    def int_argument(self, node: FieldNode, name: str, default: int, parent: str = "") -> int:
        value = self._int_argument(node, name, default)
        cap = CAPS.get((parent, node.name.value, name))
        if cap is not None and value > cap:
            raise QueryTooExpensive(f"{node.name.value}({name}: {value}) asks for too much: {name} is at most {cap:,}")
        return value

    def _argument(self, node: FieldNode, name: str) -> Any:
        """Argument ``name`` of ``node`` as written, a variable resolved to its value; ``_ABSENT`` when not given."""
        for argument in node.arguments or ():
            if argument.name.value == name:
                value: Any = argument.value
                if isinstance(value, VariableNode):
                    key = value.name.value
                    value = self.variables[key] if key in self.variables else self.defaults.get(key)
                return value
        return _ABSENT

    def _int_argument(self, node: FieldNode, name: str, default: int) -> int:
        value = self._argument(node, name)
        if isinstance(value, IntValueNode):
            value = int(value.value)
        # Anything else (absent, null, a wrongly typed variable) is defaulted, or refused by execution itself.
        return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else default

    def list_argument_size(self, node: FieldNode, name: str) -> int:
        value = self._argument(node, name)
        if value is _ABSENT:
            return 0
        if isinstance(value, ListValueNode):
            return len(value.values)
        return len(value) if isinstance(value, list) else 1  # GraphQL coerces a single value to a list of one

    def selection(self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None,
                  max_points: int | None) -> Cost:
        """Cost of one object of type ``parent`` with this selection, and the selection's depth."""
        total, depth = 0, 0
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                found = self.field(parent, node, max_points)
            elif isinstance(node, InlineFragmentNode):
                on = self.schema.get_type(node.type_condition.name.value) if node.type_condition else parent
                found = self.selection(on if isinstance(on, GraphQLObjectType) else parent, node.selection_set,
                                       max_points)
            elif isinstance(node, FragmentSpreadNode):
                found = self.spread(parent, node.name.value, max_points)
            else:
                continue
            total += found.cost
            depth = max(depth, found.depth)
            if total > MAX_COST:  # already refused: stop counting
                return Cost(total, depth)
        return Cost(total, depth)

    def spread(self, parent: GraphQLObjectType, name: str, max_points: int | None) -> Cost:
        key = (name, parent.name, max_points, self.page_size)
        if key not in self.memo:
            self.memo[key] = Cost(0, 0)  # validation refuses fragment cycles; this only guards the recursion
            fragment = self.fragments.get(name)
            on = self.schema.get_type(fragment.type_condition.name.value) if fragment else None
            self.memo[key] = self.selection(on if isinstance(on, GraphQLObjectType) else parent,
                                            fragment.selection_set if fragment else None, max_points)
        return self.memo[key]

    def field(self, parent: GraphQLObjectType, node: FieldNode, max_points: int | None) -> Cost:
        name = node.name.value
        field = META_FIELDS.get(name) if name.startswith("__") else parent.fields.get(name)
        cost, size = 1, 1
        return_type = field.type if field is not None else None
        while isinstance(return_type, GraphQLNonNull):
            return_type = return_type.of_type
        if isinstance(return_type, GraphQLList):
            sized = SIZED_LISTS.get((parent.name, name))
            size = self.int_argument(node, *sized, parent.name) if sized else ASSUMED_LIST_SIZE
            if (parent.name, name) == ("ExperimentPage", "items"):
                size = self.page_size
            if (parent.name, name) in POINT_LISTS:
                size = 2 * (max_points if max_points is not None else DEFAULT_MAX_POINTS)
            while isinstance(return_type, (GraphQLList, GraphQLNonNull)):
                return_type = return_type.of_type
        if (parent.name, name) in POINT_ARRAYS:  # priced like the point lists they stand for
            size = 2 * (max_points if max_points is not None else DEFAULT_BATCH_POINTS)
        if (parent.name, name) == ("Query", "seriesBatch"):
            size = self.list_argument_size(node, "experimentIds")
            if size > MAX_SERIES_BATCH:
                raise QueryTooExpensive(f"seriesBatch(experimentIds) names {size:,} experiments; at most "
                                        f"{MAX_SERIES_BATCH:,} are accepted")
            max_points = self.int_argument(node, "maxPoints", DEFAULT_BATCH_POINTS, parent.name)
            cost += size * SERIES_BATCH_READ_COST
        if (parent.name, name) == ("Experiment", "metric"):
            cost += METRIC_READ_COST
            max_points = self.int_argument(node, "maxPoints", DEFAULT_MAX_POINTS, parent.name)
        page_size = self.page_size
        if (parent.name, name) in SCAN_QUERIES:
            cost += PAGE_QUERY_COST
        if (parent.name, name) == ("Query", "experimentPage"):
            cost += PAGE_QUERY_COST
            self.page_size = self.int_argument(node, "limit", DEFAULT_EXPERIMENTS_LIMIT, parent.name)
        try:
            if node.selection_set is None or not isinstance(return_type, GraphQLObjectType):
                return Cost(cost + (size if size > 1 else 0), 1)
            child = self.selection(return_type, node.selection_set, max_points)
            return Cost(cost + size * child.cost, child.depth + 1)
        finally:
            self.page_size = page_size
