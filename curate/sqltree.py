"""What an SQL query does, read from DuckDB's parse tree (``json_serialize_sql``: nothing is bound
or run): whether it decides each row on its own (a ``filter``'s ``where``, a per-shard ``sql``),
which order its rows come in, and what in it gives other rows from run to run."""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any, Literal

import duckdb

from curate.duck import default_cursor, parse_tree_text


@functools.cache
def _aggregate_names() -> frozenset[str]:
    """DuckDB's aggregate functions (this process's DuckDB: read once)."""
    con = default_cursor()
    try:
        return frozenset(row[0] for row in con.sql("SELECT DISTINCT function_name FROM duckdb_functions() "
                                                   "WHERE function_type = 'aggregate'").fetchall())
    finally:
        con.close()


def not_row_local(expression: str) -> str | None:
    """Why ``expression`` is not row-local (an aggregate, a window, a subquery), or None when it
    is: found in DuckDB's parse tree (``json_serialize_sql``; nothing is bound or run). A filter
    evaluates its ``where`` shard by shard, so such an expression would give each shard its own
    answer, and a window hands back its verdicts in another order than the rows'."""
    tree = _parse_tree(f"SELECT ({expression}\n) FROM input")
    # the expression's own select list: FROM input is the wrapper's, not the expression's
    select = tree.get("statements", [{}])[0].get("node", {}).get("select_list", tree)
    found = _not_row_local_parts(select)
    return found[0] if found else None


QueryOrder = Literal["input", "query", "unordered"]


def query_order(query: str) -> QueryOrder:
    """Which order the rows of ``query`` (a SELECT over ``input``) come in, from its parse tree:
    ``"query"`` when it ends in an ORDER BY of its own; ``"input"`` when it is a plain
    ``SELECT … FROM input [WHERE …] [LIMIT …]`` of row-local expressions, which DuckDB returns in
    the input's order (``preserve_insertion_order``); ``"unordered"`` for anything else — a join,
    an ``IN``/``EXISTS`` subquery, ``DISTINCT``, ``QUALIFY``, a set operation, a CTE — whose rows
    DuckDB hands back in a different order from run to run (measured: four orders in four runs
    of 1M rows), for the caller to put in the input's order."""
    found = _beyond_plain_select(query)
    if "an ORDER BY" in found:
        return "query"
    return "input" if set(found) <= {"a LIMIT"} else "unordered"


def query_not_row_local(query: str) -> str | None:
    """What keeps ``query`` from deciding each row on its own (so that it gives the same rows run
    shard by shard as over the whole table), or None: it must be a plain ``SELECT … FROM input
    [WHERE …]`` of row-local expressions — no join, subquery, aggregate, window, DISTINCT,
    QUALIFY, ORDER BY or LIMIT (per shard, each shard would be ordered or cut on its own)."""
    found = [why for why in _beyond_plain_select(query)
             if why not in ("a subquery", "something curate cannot read")]  # a constant; a mistake said elsewhere
    return found[0] if found else None


def _beyond_plain_select(query: str) -> list[str]:
    """What ``query`` has beyond ``SELECT <row-local expressions> FROM input [WHERE <row-local>]``."""
    try:
        node = _parse_tree(query)["statements"][0]["node"]
    except (duckdb.Error, KeyError, IndexError, TypeError):
        return ["something curate cannot read"]
    if node.get("type") != "SELECT_NODE":
        kind = node.get("type")
        return ["a set operation (UNION, EXCEPT…)" if kind == "SET_OPERATION_NODE" else "not a plain SELECT"]
    found: list[str] = []
    modifiers = {m.get("type") for m in node.get("modifiers") or [] if isinstance(m, dict)}
    for modifier, said in (("ORDER_MODIFIER", "an ORDER BY"), ("LIMIT_MODIFIER", "a LIMIT"),
                           ("LIMIT_PERCENT_MODIFIER", "a LIMIT"), ("DISTINCT_MODIFIER", "DISTINCT")):
        if modifier in modifiers:
            found.append(said)
    found += [f"a modifier {m}" for m in sorted(modifiers - {"ORDER_MODIFIER", "LIMIT_MODIFIER",
                                                            "LIMIT_PERCENT_MODIFIER", "DISTINCT_MODIFIER"})]
    source = node.get("from_table") or {}
    if (node.get("cte_map") or {}).get("map"):
        found.append("a WITH clause")
    if not (source.get("type") == "BASE_TABLE" and str(source.get("table_name", "")).lower() == "input"
            and not source.get("schema_name") and not source.get("catalog_name")):
        found.append("a FROM other than the table alone (a join, a subquery, a function)")
    if source.get("sample") or node.get("sample"):
        found.append("a sample")
    if node.get("group_expressions") or node.get("group_sets"):
        found.append("a GROUP BY")
    if node.get("having") is not None:
        found.append("a HAVING")
    if node.get("qualify") is not None:
        found.append("a QUALIFY")
    parts = [node.get("select_list"), node.get("where_clause")]
    found += _not_row_local_parts(parts)
    if '"SUBQUERY"' in json.dumps(parts) and "a subquery over the table" not in found:
        found.append("a subquery")
    return found


# What in a query gives other rows (or other values) each time it runs: a cached result is then
# reused as the first run left it, and a --no-cache run differs. Each with how to make it repeatable.
_UNREPEATABLE_CALLS = {
    **dict.fromkeys(("random", "setseed"), "for a seeded sample use the `sample` step"),
    **dict.fromkeys(("uuid", "gen_random_uuid", "uuidv4", "uuidv7"), "derive ids from the row (md5(uid))"),
    **dict.fromkeys(("now", "get_current_timestamp", "transaction_timestamp", "today", "current_date",
                     "current_time", "current_timestamp", "current_localtimestamp", "current_localtime",
                     "localtime", "localtimestamp", "get_current_time"),
                    "write the date into the query as a literal"),
}
_ORDER_SENSITIVE_AGGREGATES = ("any_value", "arbitrary", "first", "last", "list", "array_agg", "string_agg",
                               "group_concat", "listagg", "list_distinct")

# Window functions whose value depends on the order of rows that tie (rank and dense_rank do not).
_ORDER_SENSITIVE_WINDOWS = ("row_number", "first_value", "last_value", "nth_value", "lag", "lead", "ntile",
                            "first", "last", "any_value", "list", "array_agg", "string_agg")


def _ends_with_uid(orders: Any) -> bool:
    """Whether a window's ORDER BY ends with the uid column (unique: no ties left)."""
    if not isinstance(orders, list) or not orders:
        return False
    last = orders[-1].get("expression") if isinstance(orders[-1], dict) else None
    names = last.get("column_names") if isinstance(last, dict) and last.get("class") == "COLUMN_REF" else None
    return bool(names) and str(names[-1]).lower() == "uid"


def unrepeatable(query: str) -> list[str]:
    """What in ``query`` (SQL text) makes its result differ from run to run, each with its fix:
    random or clock functions, ``DISTINCT ON`` without ``ORDER BY`` (DuckDB keeps any row of a
    group), a sample without a seed, ``any_value``/``first``/``list``… without ``ORDER BY`` inside.
    Read from the parse tree; nothing is bound or run. Empty when nothing is found (or it does not
    parse: the step's own checks say so)."""
    try:
        tree = _parse_tree(query)
    except duckdb.Error:
        return []
    found: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind, name = node.get("class"), str(node.get("function_name", "")).lower()
            if kind == "FUNCTION" and name in _UNREPEATABLE_CALLS:
                found[f"calls {name}() ({_UNREPEATABLE_CALLS[name]})"] = None
            elif kind == "COLUMN_REF" and [str(c).lower() for c in node.get("column_names") or []] in (
                    [["current_date"], ["current_time"], ["current_timestamp"], ["localtime"], ["localtimestamp"]]):
                name = node["column_names"][0].lower()
                found[f"reads {name} ({_UNREPEATABLE_CALLS[name]})"] = None
            elif kind == "FUNCTION" and name in _ORDER_SENSITIVE_AGGREGATES \
                    and not (node.get("order_bys") or {}).get("orders"):
                found[f"takes {name}() without ORDER BY inside it (write {name}(… ORDER BY uid))"] = None
            elif kind == "WINDOW" and name in _ORDER_SENSITIVE_WINDOWS and not _ends_with_uid(node.get("orders")):
                found[f"numbers or picks rows with {name}() OVER (…) whose ORDER BY does not end with uid: rows "
                      "that tie on it come in any order (end it with uid)"] = None
            modifiers = node.get("modifiers") if isinstance(node.get("modifiers"), list) else []
            kinds = {m.get("type") for m in modifiers if isinstance(m, dict)}
            if any(m.get("type") == "DISTINCT_MODIFIER" and m.get("distinct_on_targets") for m in modifiers
                   if isinstance(m, dict)) and "ORDER_MODIFIER" not in kinds:
                found["keeps any row of each DISTINCT ON group (add ORDER BY the DISTINCT ON columns, then uid)"] = None
            sample = node.get("sample")
            if isinstance(sample, dict) and not sample.get("repeatable"):
                found["samples without a seed (USING SAMPLE 10% (bernoulli, 42), or the `sample` step)"] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree.get("statements", tree))
    return list(found)


# What DuckDB says of itself and of this machine, which an untrusted spec's SQL could copy into its
# outputs: duckdb_settings() holds the run's absolute paths, the user's home directory and name
# (temp_directory, secret_directory), current_setting() each one, pragma_* and the catalogs more.
_MACHINE_FUNCTIONS = ("current_setting", "getvariable", "which_secret", "current_database", "current_schema",
                      "current_schemas", "current_user", "session_user", "user")
_MACHINE_PREFIXES = ("duckdb_", "pragma_")
_MACHINE_SCHEMAS = ("information_schema", "pg_catalog")


def machine_reads(query: str) -> list[str]:
    """What in ``query`` reads DuckDB's settings or catalogs rather than the table (for an
    untrusted spec: its SQL may read the run's rows and nothing of this machine). Empty when
    nothing is found or it does not parse (the step's own checks say so)."""
    try:
        tree = _parse_tree(query)
    except duckdb.Error:
        return []
    found: dict[str, None] = {}
    stack = [tree.get("statements", tree)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name = str(node.get("function_name", "")).lower()
            if node.get("class") == "FUNCTION" and (name in _MACHINE_FUNCTIONS or name.startswith(_MACHINE_PREFIXES)):
                found[f"{name}()"] = None
            if node.get("type") == "BASE_TABLE":
                table, schema = str(node.get("table_name", "")).lower(), str(node.get("schema_name", "")).lower()
                if schema in _MACHINE_SCHEMAS or table.startswith(_MACHINE_PREFIXES) or table in _MACHINE_SCHEMAS:
                    found[f"{schema + '.' if schema else ''}{table}"] = None
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


def untrusted_reads_problem(what: str, query: str) -> str | None:
    """The problem of an untrusted spec whose ``what`` (SQL text) reads the machine, or None."""
    found = machine_reads(query)
    if not found:
        return None
    return (f"{what} reads {', '.join(found)}: DuckDB's settings and catalogs, which hold this machine's paths, "
            "the user's home directory and name; an untrusted spec's SQL may read only the run's rows "
            "(review the spec and run it without --untrusted if it must)")


class UnrepeatableWarning(UserWarning):
    """A step's SQL gives other rows from run to run (:func:`unrepeatable`)."""


def warn_unrepeatable(label: str, what: str, query: str) -> None:
    """Warn (once per step and reason) when ``query`` is not repeatable; ``what`` names it
    ("its query", "its 'where'")."""
    if reasons := unrepeatable(query):
        warnings.warn(f"step '{label}': {what} {'; '.join(reasons)}: what it keeps changes from run to run, "
                      "and a cached result is reused as the first run left it", UnrepeatableWarning, stacklevel=2)


def _parse_tree(sql: str) -> Any:
    """A fresh copy of ``sql``'s parse tree (the JSON text is serialized once: curate.duck)."""
    return json.loads(parse_tree_text(sql))


def _not_row_local_parts(tree: Any) -> list[str]:
    """What in ``tree`` (a part of a parse tree) is not row-local: aggregates, windows, subqueries
    that read ``input``."""
    aggregates = _aggregate_names()
    found: list[str] = []

    def reads_input(node: Any) -> bool:
        if isinstance(node, dict):
            if str(node.get("table_name", "")).lower() == "input":
                return True
            return any(reads_input(value) for value in node.values())
        return isinstance(node, list) and any(reads_input(value) for value in node)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("class")
            if kind == "SUBQUERY":  # its own aggregates are its business; reading the shard is not row-local
                if reads_input(node):
                    found.append("a subquery over the table")
                return
            if kind == "WINDOW":
                found.append(f"a window function ({node.get('function_name', 'OVER')})")
            elif kind == "FUNCTION" and str(node.get("function_name", "")).lower() in aggregates:
                found.append(f"an aggregate ({node['function_name'].replace('count_star', 'count(*)')})")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found
