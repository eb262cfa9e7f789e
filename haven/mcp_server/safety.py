"""The SQL the MCP server will run: one read-only statement, proven by PostgreSQL's own parser.

Layers (each alone has been bypassed somewhere, so all of them apply):
1. pglast (libpg_query, PostgreSQL's real parser) must find exactly one statement, a plain
   SELECT (CTEs, window functions, LATERAL, FILTER, ... included) or VALUES;
2. no data-modifying CTE, no SELECT INTO, no row locking (FOR UPDATE/SHARE);
3. no volatile function (side effects: pg_sleep, set_config, nextval, lo_import, dblink, ...),
   judged by ``pg_proc.provolatile`` in the server itself, except a few harmless ones;
4. executed as a prepared statement (the protocol refuses a second statement), in a read-only
   transaction, by a role whose statement and lock timeouts are set server-side.
"""

from __future__ import annotations

from dataclasses import dataclass

import pglast
from pglast import ast
from pglast.visitors import Visitor

from haven.errors import HavenError

HARMLESS_VOLATILE = frozenset(
    {"random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7"}
)


class UnsafeSql(HavenError):
    """The statement is not one the MCP server will run."""


@dataclass(frozen=True)
class CheckedSql:
    sql: str
    functions: frozenset[str]
    relations: frozenset[tuple[str | None, str]]


class _Collector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.functions: set[str] = set()
        self.relations: set[tuple[str | None, str]] = set()
        self.problem: str | None = None

    def visit_FuncCall(self, ancestors: object, node: ast.FuncCall) -> None:  # noqa: N802 - pglast's naming
        self.functions.add(node.funcname[-1].sval.lower())

    def visit_RangeVar(self, ancestors: object, node: ast.RangeVar) -> None:  # noqa: N802
        self.relations.add((node.schemaname, node.relname))

    def visit_InsertStmt(self, ancestors: object, node: ast.Node) -> None:  # noqa: N802
        self.problem = "it writes data (INSERT)"

    def visit_UpdateStmt(self, ancestors: object, node: ast.Node) -> None:  # noqa: N802
        self.problem = "it writes data (UPDATE)"

    def visit_DeleteStmt(self, ancestors: object, node: ast.Node) -> None:  # noqa: N802
        self.problem = "it writes data (DELETE)"

    def visit_MergeStmt(self, ancestors: object, node: ast.Node) -> None:  # noqa: N802
        self.problem = "it writes data (MERGE)"

    def visit_LockingClause(self, ancestors: object, node: ast.Node) -> None:  # noqa: N802
        self.problem = "it locks rows (FOR UPDATE/SHARE)"

    def visit_IntoClause(self, ancestors: object, node: ast.Node) -> None:  # noqa: N802
        self.problem = "it creates a table (SELECT INTO)"


def check(sql: str) -> CheckedSql:
    """Parse and vet ``sql``; raise UnsafeSql with one sentence saying why not."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise UnsafeSql("The query is empty; send one SELECT statement.")
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError as error:
        raise UnsafeSql(f"The query does not parse: {error}.") from None
    if len(statements) != 1:
        raise UnsafeSql(f"Send exactly one statement, not {len(statements)}.")
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__.removesuffix("Stmt")
        raise UnsafeSql(f"Only SELECT statements are allowed; this is a {kind} statement.")
    collector = _Collector()
    collector(statement)
    if collector.problem:
        raise UnsafeSql(
            f"The query is refused because {collector.problem}; only read-only SELECTs run here."
        )
    return CheckedSql(text, frozenset(collector.functions), frozenset(collector.relations))


def refuse_volatile(checked: CheckedSql, volatile: set[str]) -> None:
    """``volatile`` comes from the server's pg_proc; anything volatile and not harmless is refused."""
    dangerous = sorted(volatile - HARMLESS_VOLATILE)
    if dangerous:
        raise UnsafeSql(
            f"The query calls function(s) that can have side effects ({', '.join(dangerous)}); they are not allowed here."
        )
