"""``haven bench queries``: the analyst query suite (``haven/bench/queries/*.sql``), run warm with
pgbench one script per query, with the mart indexes and without them in the same run.

Reports p50/p95/p99 per query in both phases, the suite's improvement, index utilisation (share
of mart indexes whose ``idx_scan`` grew during the indexed phase) and a one-line plan per query.
The unindexed phase drops the marts' indexes and always recreates them from their saved
definitions afterwards.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.connection import connect
from haven.warehouse.embedded import BIN_DIRECTORY
from haven.warehouse.endpoints import ANALYST, ML, TRANSFORMER, Endpoints

MART_SCHEMAS = ("analytics", "ml")
P95_TARGET_MS = 100.0
IMPROVEMENT_TARGET = 0.60


@dataclass
class PhaseResult:
    transactions: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float


@dataclass
class QueryResult:
    name: str
    question: str
    indexed: PhaseResult
    unindexed: PhaseResult
    plan: str

    @property
    def improvement(self) -> float:
        return 1 - self.indexed.mean_ms / self.unindexed.mean_ms if self.unindexed.mean_ms else 0.0


@dataclass
class QueryBenchmark:
    scale: str
    seconds_per_query: int | None
    transactions_per_query: int | None = None
    queries: list[QueryResult] = field(default_factory=list)
    indexes_total: int = 0
    indexes_used: list[str] = field(default_factory=list)
    indexes_unused: list[str] = field(default_factory=list)

    @property
    def suite_improvement(self) -> float:
        indexed = sum(q.indexed.mean_ms for q in self.queries)
        unindexed = sum(q.unindexed.mean_ms for q in self.queries)
        return 1 - indexed / unindexed if unindexed else 0.0

    @property
    def utilisation(self) -> float:
        return len(self.indexes_used) / self.indexes_total if self.indexes_total else 0.0

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["suite_improvement"] = self.suite_improvement
        data["index_utilisation"] = self.utilisation
        for query, entry in zip(self.queries, data["queries"], strict=True):
            entry["improvement"] = query.improvement
        return data


def suite() -> list[tuple[str, str, str]]:
    """(name, question, script) for every query file, in order."""
    folder = resources.files("haven.bench").joinpath("queries")
    scripts = sorted(
        (entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql")
    )
    return [
        (name.removesuffix(".sql"), script.splitlines()[0].removeprefix("-- ").strip(), script)
        for name, script in scripts
    ]


def pgbench_length(seconds: int | None, transactions: int | None) -> list[str]:
    """pgbench's ``-t transactions`` when given, else ``-T seconds``; one sentence for a value
    it cannot run with."""
    if transactions is not None:
        if transactions < 1:
            raise HavenError(f"--transactions must be at least 1, got {transactions}.")
        return ["-t", str(transactions)]
    if seconds is None or seconds < 1:
        raise HavenError(f"--seconds must be at least 1, got {seconds}.")
    return ["-T", str(seconds)]


def run(
    settings: Settings,
    endpoints: Endpoints,
    *,
    scale: str,
    seconds: int | None = 3,
    transactions: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> QueryBenchmark:
    """Each query with pgbench for ``seconds`` (pgbench -T), or for ``transactions`` (-t)
    when given, in each phase."""
    length = pgbench_length(seconds, transactions)
    if transactions is not None:
        seconds = None
    timeout = 600 if seconds is None else seconds * 10 + 60
    variables = _variables(endpoints)
    result = QueryBenchmark(scale, seconds, transactions)
    queries = suite()
    with tempfile.TemporaryDirectory(prefix="haven-bench-") as scratch:
        work = Path(scratch)
        plans = {name: _plan(endpoints, script, variables) for name, _, script in queries}
        usage_before = _index_usage(endpoints)
        indexed: dict[str, PhaseResult] = {}
        for name, _, script in queries:
            progress(f"with indexes: {name}")
            indexed[name] = _pgbench(endpoints, work, name, script, variables, length, timeout)
        usage_after = _index_usage(endpoints)
        result.indexes_total = len(usage_after)
        result.indexes_used = sorted(
            i for i, scans in usage_after.items() if scans > usage_before.get(i, 0)
        )
        result.indexes_unused = sorted(set(usage_after) - set(result.indexes_used))
        definitions = _drop_indexes(endpoints)
        try:
            unindexed = {}
            for name, _, script in queries:
                progress(f"without indexes: {name}")
                unindexed[name] = _pgbench(
                    endpoints, work, name, script, variables, length, timeout
                )
        finally:
            progress("recreating the mart indexes")
            _recreate_indexes(endpoints, definitions)
    for name, question, _ in queries:
        result.queries.append(
            QueryResult(name, question, indexed[name], unindexed[name], plans[name])
        )
    return result


def _role_for(script: str) -> str:
    """Each question runs as the role that would ask it: the ML team for ml, analysts otherwise."""
    return ML if re.search(r"\bml\.", script) else ANALYST


def _variables(endpoints: Endpoints) -> dict[str, int]:
    with connect(endpoints.role_url(ANALYST), purpose="warehouse") as conn:
        built = conn.execute(
            "select to_regclass('analytics.dim_vendors') is not null"
            " and to_regclass('analytics.dim_customers') is not null"
            " and to_regclass('analytics.fct_orders') is not null"
        ).fetchone()
        if not built or not built[0]:
            raise HavenError(
                "The marts have not been built yet; run `haven run` (or `haven build`) before"
                " benchmarking queries."
            )
        row = conn.execute(
            "select (select max(vendor_id) from analytics.dim_vendors), (select max(customer_id) from analytics.dim_customers),"
            " (select max(order_id) from analytics.fct_orders)"
        ).fetchone()
    if not row or row[0] is None:
        raise HavenError(
            "The marts are empty; run `haven run` (or `haven build`) before benchmarking queries."
        )
    return {"vendors": int(row[0]), "customers": int(row[1]), "orders": int(row[2])}


def _substitute(script: str, variables: dict[str, int], *, midpoint: bool) -> str:
    """The script as one plain statement: \\set lines resolved (for EXPLAIN)."""
    values = dict(variables)
    for line in script.splitlines():
        match = re.match(r"\\set (\w+) random\((\d+), :?(\w+)\)", line.strip())
        if match:
            low = int(match.group(2))
            high = (
                values.get(match.group(3)) if not match.group(3).isdigit() else int(match.group(3))
            )
            values[match.group(1)] = (low + int(high or low)) // 2 if midpoint else low
    body = "\n".join(
        line
        for line in script.splitlines()
        if not line.startswith("\\") and not line.startswith("--")
    )
    for key, value in sorted(values.items(), key=lambda item: -len(item[0])):
        body = body.replace(f":{key}", str(value))
    return body.strip().rstrip(";")


def _plan(endpoints: Endpoints, script: str, variables: dict[str, int]) -> str:
    with connect(endpoints.role_url(_role_for(script)), purpose="warehouse") as conn:
        row = conn.execute(
            f"explain (format json) {_substitute(script, variables, midpoint=True)}"
        ).fetchone()  # noqa: S608 - our own scripts
    assert row is not None
    scans: list[str] = []

    def walk(node: dict[str, object]) -> None:
        if "Relation Name" in node:
            target = f"{node['Relation Name']}"
            scans.append(
                f"{node['Node Type']} {target}"
                + (f" via {node['Index Name']}" if node.get("Index Name") else "")
            )
        for child in node.get("Plans", []):  # type: ignore[union-attr]
            walk(child)  # type: ignore[arg-type]

    top = row[0][0]["Plan"]
    walk(top)
    return f"{top['Node Type']} (cost {top['Total Cost']:.0f}): " + "; ".join(scans)


def _pgbench(
    endpoints: Endpoints,
    work: Path,
    name: str,
    script: str,
    variables: dict[str, int],
    length: list[str],
    timeout: float,
) -> PhaseResult:
    """One query's phase: ``length`` is pgbench's ``-T seconds`` or ``-t transactions``."""
    path = work / f"{name}.sql"
    path.write_text(script)
    url = urlsplit(endpoints.role_url(_role_for(script)))
    environment = {
        **os.environ,
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": unquote(url.username or ANALYST),
        "PGPASSWORD": unquote(url.password or ""),
        "PGDATABASE": url.path.lstrip("/"),
    }
    defines = [
        argument for key, value in variables.items() for argument in ("-D", f"{key}={value}")
    ]
    base = [
        str(BIN_DIRECTORY / "pgbench"),
        "-n",
        "-M",
        "prepared",
        "-c",
        "1",
        *defines,
        "-f",
        str(path),
    ]
    subprocess.run(
        [*base, "-t", "5"], env=environment, capture_output=True, check=True, timeout=120
    )  # warm-up
    for old in work.glob(f"{name}.log*"):
        old.unlink()
    completed = subprocess.run(
        [*base, *length, "-l", f"--log-prefix={work / (name + '.log')}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise HavenError(
            f"pgbench failed on {name}: {completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else 'no output'}."
        )
    latencies = [
        int(line.split()[2]) / 1000
        for log in work.glob(f"{name}.log*")
        for line in log.read_text().splitlines()
        if line.strip()
    ]
    if not latencies:
        raise HavenError(f"pgbench ran no transaction of {name}.")
    cut = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [latencies[0]] * 99
    return PhaseResult(
        len(latencies), statistics.median(latencies), cut[94], cut[98], statistics.fmean(latencies)
    )


def _index_usage(endpoints: Endpoints) -> dict[str, int]:
    with connect(endpoints.warehouse_url, purpose="warehouse") as conn:
        rows = conn.execute(
            "select s.schemaname || '.' || s.relname || ' (' || pg_get_indexdef(s.indexrelid, 0, true) || ')', s.idx_scan"
            " from pg_stat_user_indexes as s where s.schemaname = any(%s)",
            (list(MART_SCHEMAS),),
        ).fetchall()
    return {name: int(scans or 0) for name, scans in rows}


def _drop_indexes(endpoints: Endpoints) -> list[tuple[str, str]]:
    """Drop every mart index (as their owner), returning (name, definition) to recreate them."""
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn:
        definitions = [
            (f"{schema}.{name}", definition)
            for schema, name, definition in conn.execute(
                "select schemaname, indexname, indexdef from pg_indexes where schemaname = any(%s)",
                (list(MART_SCHEMAS),),
            ).fetchall()
        ]
        with conn.transaction():
            for name, _ in definitions:
                schema, index = name.split(".")
                conn.execute(
                    psycopg.sql.SQL("drop index {}.{}").format(
                        psycopg.sql.Identifier(schema), psycopg.sql.Identifier(index)
                    )
                )
    return definitions


def _recreate_indexes(endpoints: Endpoints, definitions: list[tuple[str, str]]) -> None:
    with connect(endpoints.role_url(TRANSFORMER), purpose="warehouse") as conn, conn.transaction():
        for _, definition in definitions:
            conn.execute(
                definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1).replace(
                    "CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX IF NOT EXISTS", 1
                )
            )  # type: ignore[arg-type]


def _length(result: QueryBenchmark) -> str:
    if result.transactions_per_query is not None:
        return f"{result.transactions_per_query} transactions"
    return f"{result.seconds_per_query} s"


def write_report(result: QueryBenchmark, directory: Path, machine: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "queries.json"
    json_path.write_text(json.dumps({"machine": machine, **result.to_json()}, indent=2))
    lines = [
        f"# Query benchmark, SF {result.scale} ({machine})",
        "",
        f"pgbench, one client, {_length(result)} per query per phase, warm; latencies in ms.",
        "",
        "| query | p50 | p95 | p99 | p95 without indexes | improvement | plan (with indexes) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for query in result.queries:
        flag = "" if query.indexed.p95_ms < P95_TARGET_MS else " ⚠"
        lines.append(
            f"| {query.name}: {query.question} | {query.indexed.p50_ms:.2f} | {query.indexed.p95_ms:.2f}{flag} | "
            f"{query.indexed.p99_ms:.2f} | {query.unindexed.p95_ms:.2f} | {query.improvement:.0%} | {query.plan} |"
        )
    slow = [q.name for q in result.queries if q.indexed.p95_ms >= P95_TARGET_MS]
    lines += [
        "",
        f"Suite: {result.suite_improvement:.0%} faster with the mart indexes (target ≥ {IMPROVEMENT_TARGET:.0%}): "
        f"{'met' if result.suite_improvement >= IMPROVEMENT_TARGET else 'missed'}.",
        f"p95 < {P95_TARGET_MS:.0f} ms for every query: {'met' if not slow else 'missed by ' + ', '.join(slow)}.",
        f"Index utilisation: {len(result.indexes_used)} of {result.indexes_total} mart indexes used "
        f"({result.utilisation:.0%}); unused: {', '.join(result.indexes_unused) or 'none'}.",
    ]
    markdown_path = directory / "queries.md"
    markdown_path.write_text("\n".join(lines) + "\n")
    return json_path, markdown_path
