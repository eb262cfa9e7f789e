"""The simulated Clutter Haven application database: create it at a scale, advance it in time,
damage it at a known rate.

All generation is set-based SQL (``sql/*.sql``) keyed by a seeded hash, so the same seed gives
checksum-equal data. The simulator's own bookkeeping (clock, defect record) lives in the ``sim``
schema, which the pipeline's read-only role cannot see.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources

import psycopg
from psycopg import sql

from haven.errors import HavenError
from haven.warehouse.connection import connect
from haven.warehouse.endpoints import SOURCE_READER, Endpoints

APP_TABLES = (
    "categories",
    "vendors",
    "customers",
    "listings",
    "orders",
    "order_items",
    "payments",
    "shipments",
    "refunds",
    "reviews",
    "order_status_events",
)
"""Every application table, parents before children."""

BASE_COUNTS = {"vendors": 2_500, "customers": 60_000, "listings": 220_000, "orders": 120_000}
"""Rows generated at scale factor 1 (about one million rows in all, with the child tables)."""

DAILY_GROWTH = {"vendors": 0.002, "customers": 0.003, "listings": 0.003, "orders": 0.004}
"""New rows per simulated day, as a share of the scale-1 counts times the scale factor."""

NOT_CREATED = "The source has not been created yet; run `haven source init` first."
HOURLY_STREAMS = 500_000
"""An hourly step's random streams are numbered from here (a day's by its day number)."""
DEFAULT_ANCHOR = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
"""The simulated "now" right after ``init``: fixed, so the same seed gives the same data any day."""


@dataclass(frozen=True)
class Defect:
    """One kind of damage: which table and column it hits, and the SQL that does it."""

    table: str
    kind: str
    column: str
    assignment: str


DEFECTS = (
    Defect("customers", "malformed_email", "email", "email = replace(email, '@', '.at.')"),
    Defect("customers", "null_required", "email", "email = null"),
    Defect("listings", "null_required", "title", "title = null"),
    Defect(
        "orders",
        "future_date",
        "placed_at",
        "placed_at = placed_at + interval '1 day' * (1825 + floor(sim.u(901, id) * 1825))",
    ),
    Defect("orders", "unknown_currency", "currency", "currency = 'ZZZ'"),
    Defect(
        "order_items", "orphan_foreign_key", "listing_id", "listing_id = listing_id + 1000000000"
    ),
    Defect(
        "order_items", "negative_amount", "unit_price_cents", "unit_price_cents = -unit_price_cents"
    ),
    Defect("payments", "negative_amount", "amount_cents", "amount_cents = -abs(amount_cents)"),
    Defect("payments", "duplicate", "provider_reference", ""),
)
"""Each kind damages ``rate`` of its table's candidate rows; kinds on one table never share a row."""


@dataclass(frozen=True)
class SourceState:
    seed: int
    scale: Decimal
    clock: datetime
    defect_rate: Decimal
    ticked_days: int
    ticked_hours: int
    rows: dict[str, int]


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def init(
    endpoints: Endpoints,
    *,
    scale: float,
    seed: int,
    defect_rate: float = 0.0,
    replace: bool = False,
    progress: Progress = _quiet,
) -> tuple[SourceState, bool]:
    """Create the application database; return its state and whether anything was generated.

    Re-running with the same scale and seed changes nothing; anything else needs ``replace``.
    """
    _check_arguments(scale=scale, defect_rate=defect_rate)
    with connect(endpoints.source_admin_url, purpose="source database") as conn:
        existing = _read_meta(conn)
        if existing is not None and not replace:
            if existing.seed == seed and existing.scale == Decimal(str(scale)):
                return state(conn), False
            raise HavenError(
                f"The source already holds SF {existing.scale} seed {existing.seed}; "
                f"pass --replace to drop it and generate SF {scale:g} seed {seed}."
            )
        if existing is None and _has_foreign_tables(conn):
            raise HavenError(
                "The source database already has application tables the simulator did not make; "
                "point HAVEN_SOURCE_URL at an empty database to simulate one."
            )
        counts = {name: max(8, round(base * scale)) for name, base in BASE_COUNTS.items()}
        with conn.transaction():
            progress("dropping any previous simulation")
            conn.execute("drop schema if exists sim cascade")
            for table in reversed(APP_TABLES):
                conn.execute(
                    sql.SQL("drop table if exists {} cascade").format(sql.Identifier(table))
                )
            conn.execute("set local max_parallel_workers_per_gather = 0")
            _run_script(conn, "sim.sql", seed=seed)
            conn.execute(
                "insert into sim.meta (seed, scale, anchor, clock, defect_rate) values (%s, %s, %s, %s, %s)",
                (
                    seed,
                    Decimal(str(scale)),
                    DEFAULT_ANCHOR,
                    DEFAULT_ANCHOR,
                    Decimal(str(defect_rate)),
                ),
            )
            _run_script(conn, "schema.sql")
            progress(
                f"generating two years of history at SF {scale:g} ({sum(counts.values()):,} seed rows)"
            )
            _run_script(
                conn, "generate.sql", seed=seed, anchor=DEFAULT_ANCHOR.isoformat(), **counts
            )
            progress("adding keys and indexes")
            _run_script(conn, "constraints.sql")
            if defect_rate > 0:
                progress(f"injecting defects at rate {defect_rate:g}")
                _inject_defects(
                    conn, defect_rate, floors=dict.fromkeys(APP_TABLES, 0), at=DEFAULT_ANCHOR
                )
            _sync_identities(conn)
            _grant_reader(conn, endpoints)
        progress("analyzing")
        for table in APP_TABLES:
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(table)))
        return state(conn), True


def tick(
    endpoints: Endpoints,
    *,
    days: int | None = None,
    hours: int | None = None,
    defect_rate: float | None = None,
    progress: Progress = _quiet,
) -> tuple[SourceState, SourceState]:
    """Advance the application ``days`` simulated days, or ``hours`` simulated hours: one
    transaction per step, then its late commits. An hour has a day's kinds of change at a
    twenty-fourth of a day's rates (at least one new row of each growing table). Returns the
    state before and after."""
    steps, hourly = tick_steps(days, hours)
    with connect(endpoints.source_admin_url, purpose="source database") as conn:
        conn.execute(
            "alter table if exists sim.meta"
            " add column if not exists ticked_hours integer not null default 0"
        )
        meta = _read_meta(conn)
        if meta is None:
            raise HavenError(NOT_CREATED)
        rate = float(meta.defect_rate) if defect_rate is None else defect_rate
        before = state(conn)
        _check_arguments(scale=float(meta.scale), defect_rate=rate)
        for _ in range(steps):
            _step(conn, meta, hourly=hourly, rate=rate, progress=progress)
            meta = _read_meta(conn)
            assert meta is not None
        return before, state(conn)


def tick_steps(days: int | None, hours: int | None) -> tuple[int, bool]:
    """How many steps a tick takes and whether they are hours: ``days`` (1 when neither is
    given) or ``hours``, not both, each at least 1; one sentence otherwise."""
    if days is not None and hours is not None:
        raise HavenError("Tick by --days or by --hours, not both.")
    if hours is not None:
        if hours < 1:
            raise HavenError(f"--hours must be at least 1, got {hours}.")
        return hours, True
    days = 1 if days is None else days
    if days < 1:
        raise HavenError(f"--days must be at least 1, got {days}.")
    return days, False


def _step(
    conn: psycopg.Connection, meta: _Meta, *, hourly: bool, rate: float, progress: Progress
) -> None:
    """One day or one hour of the application, committed, then its late commits."""
    start = meta.clock.astimezone(UTC)
    span = 1 if hourly else 24
    day = meta.ticked_days + meta.ticked_hours // 24 + 1
    if hourly:
        # random streams of their own (a day's stream is its day number), names by day and hour
        stream, label = HOURLY_STREAMS + meta.ticked_hours + 1, f"{day}h{start:%H}"
        progress(f"day {day}, hour {start:%H}: {start:%Y-%m-%d %H:00}")
    else:
        stream, label = meta.ticked_days + 1, str(day)
        progress(f"day {day}: {start:%Y-%m-%d}")
    fraction = span / 24
    parameters = {"stream": stream, "start": start.isoformat(), "fraction": fraction}
    counts = {
        f"new_{name}": max(1, round(BASE_COUNTS[name] * float(meta.scale) * share * fraction))
        for name, share in DAILY_GROWTH.items()
    }
    with conn.transaction():
        floors = _max_ids(conn)
        conn.execute("set local max_parallel_workers_per_gather = 0")
        _run_script(
            conn,
            "tick.sql",
            **parameters,
            seed=meta.seed,
            day=day,
            label=label,
            hours=span,
            new_category=str(not hourly or start.hour == 0).lower(),
            **counts,
        )
        if rate > 0:
            _inject_defects(conn, rate, floors=floors, at=start + timedelta(hours=span))
        _sync_identities(conn)
    with conn.transaction():
        _run_script(conn, "late_commits.sql", **parameters)
        conn.execute(
            "update sim.meta set clock = clock + %s, ticked_days = ticked_days + %s,"
            " ticked_hours = ticked_hours + %s",
            (timedelta(hours=span), int(not hourly), int(hourly)),
        )


def require_created(endpoints: Endpoints) -> None:
    """One sentence, before anything reads it, when the simulated source does not exist yet."""
    with connect(endpoints.source_admin_url, purpose="source database") as conn:
        if _read_meta(conn) is None:
            raise HavenError(NOT_CREATED)


def state(conn: psycopg.Connection) -> SourceState:
    meta = _read_meta(conn)
    if meta is None:
        raise HavenError(NOT_CREATED)
    rows = {
        table: int(
            conn.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(table))
            ).fetchone()[0]
        )  # type: ignore[index]
        for table in APP_TABLES
    }
    return SourceState(
        meta.seed,
        meta.scale,
        meta.clock,
        meta.defect_rate,
        meta.ticked_days,
        meta.ticked_hours,
        rows,
    )


def source_state(endpoints: Endpoints) -> SourceState:
    with connect(endpoints.source_admin_url, purpose="source database") as conn:
        return state(conn)


def deletions(endpoints: Endpoints) -> dict[str, set[int]]:
    """The simulator's own record of the rows its ticks hard-deleted, per table: what the tests
    check raw's deletion marks and the histories against (never the pipeline's output)."""
    with connect(endpoints.source_admin_url, purpose="source database") as conn:
        if conn.execute("select to_regclass('sim.deletions')").fetchone() == (None,):
            return {}
        record: dict[str, set[int]] = {}
        for table, row_id in conn.execute("select table_name, row_id from sim.deletions"):
            record.setdefault(table, set()).add(int(row_id))
        return record


# -- internals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    seed: int
    scale: Decimal
    clock: datetime
    defect_rate: Decimal
    ticked_days: int
    ticked_hours: int
    """Hourly steps ticked (a source created before hourly ticks has no column: 0)."""


def _check_arguments(*, scale: float, defect_rate: float) -> None:
    if not 0 < scale <= 100:
        raise HavenError(
            f"--scale must be between 0 and 100 (1 is about a million rows), got {scale:g}."
        )
    if not 0 <= defect_rate <= 1 / len(DEFECTS):
        raise HavenError(
            f"--defect-rate must be between 0 and {1 / len(DEFECTS):.3f} "
            f"(each of {len(DEFECTS)} kinds damages that share of rows), got {defect_rate:g}."
        )


def _read_meta(conn: psycopg.Connection) -> _Meta | None:
    exists = conn.execute("select to_regclass('sim.meta') is not null").fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(
        "select seed, scale, clock, defect_rate, ticked_days,"
        " coalesce((to_jsonb(meta) ->> 'ticked_hours')::integer, 0) from sim.meta as meta"
    ).fetchone()
    return _Meta(*row) if row else None


def _has_foreign_tables(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "select count(*) from information_schema.tables where table_schema = 'public' and table_name = any(%s)",
        (list(APP_TABLES),),
    ).fetchone()
    return bool(row and row[0])


def _run_script(conn: psycopg.Connection, name: str, **parameters: object) -> None:
    """Run one of ``sql/*.sql`` with ``{name}`` placeholders filled from trusted values (numbers,
    ISO timestamps we formatted ourselves)."""
    template = resources.files("haven.source").joinpath("sql", name).read_text()
    for key, value in parameters.items():
        template = template.replace("{" + key + "}", str(value))
    unfilled = sorted(set(re.findall(r"\{[a-z_]+\}", template)))
    if unfilled:  # a placeholder inside a string literal would run, silently wrong
        raise ValueError(f"sql/{name}: no value for {', '.join(unfilled)}")
    conn.execute(template)  # type: ignore[arg-type]


def _max_ids(conn: psycopg.Connection) -> dict[str, int]:
    return {
        table: int(
            conn.execute(
                sql.SQL("select coalesce(max(id), 0) from {}").format(sql.Identifier(table))
            ).fetchone()[0]  # type: ignore[index]
        )
        for table in APP_TABLES
    }


def _inject_defects(
    conn: psycopg.Connection, rate: float, *, floors: dict[str, int], at: datetime
) -> None:
    """Damage ``rate`` of the rows above ``floors`` for every defect kind, and record each row."""
    kinds_per_table: dict[str, int] = {}
    for defect in DEFECTS:
        slot = kinds_per_table.get(defect.table, 0)
        kinds_per_table[defect.table] = slot + 1
        table = sql.Identifier(defect.table)
        chosen = sql.SQL(
            "id > {floor} and sim.u(900, id) >= {low} and sim.u(900, id) < {high}"
            " and not exists (select from sim.defects as d where d.table_name = {name} and d.row_id = id)"
        ).format(
            floor=sql.Literal(floors[defect.table]),
            low=sql.Literal(slot * rate),
            high=sql.Literal((slot + 1) * rate),
            name=sql.Literal(defect.table),
        )
        if defect.kind == "duplicate":
            damaged = sql.SQL(
                "insert into {table} (id, order_id, provider_reference, payment_method, status, amount_cents,"
                " currency, paid_at, created_at, updated_at)"
                " select b.base + row_number() over (order by p.id), p.order_id, p.provider_reference,"
                " p.payment_method, p.status, p.amount_cents, p.currency, p.paid_at,"
                " p.created_at + interval '1 second', p.updated_at + interval '1 second'"
                " from {table} as p cross join (select max(id) as base from {table}) as b where {chosen}"
                " returning id"
            ).format(table=table, chosen=chosen)
        else:
            damaged = sql.SQL("update {table} set {assignment} where {chosen} returning id").format(
                table=table,
                assignment=sql.SQL(defect.assignment),
                chosen=chosen,  # type: ignore[arg-type]
            )
        conn.execute(
            sql.SQL(
                "with damaged as ({damaged}) insert into sim.defects (table_name, row_id, defect, column_name, injected_at)"
                " select {name}, id, {kind}, {column}, {at} from damaged"
            ).format(
                damaged=damaged,
                name=sql.Literal(defect.table),
                kind=sql.Literal(defect.kind),
                column=sql.Literal(defect.column),
                at=sql.Literal(at),
            )
        )


def _sync_identities(conn: psycopg.Connection) -> None:
    """Rows are inserted with explicit ids (deterministic); keep each identity ahead of them."""
    for table in APP_TABLES:
        conn.execute(
            sql.SQL(
                "select setval(pg_get_serial_sequence({name}, 'id'), greatest(1, (select max(id) from {table})))"
            ).format(name=sql.Literal(table), table=sql.Identifier(table))
        )


def _grant_reader(conn: psycopg.Connection, endpoints: Endpoints) -> None:
    """On the simulated source the pipeline reads as ``haven_source_reader``: SELECT on the
    application tables and nothing else (not the ``sim`` schema)."""
    if endpoints.source_url == endpoints.source_admin_url:
        return
    conn.execute(
        sql.SQL(
            "do $$ begin if not exists (select from pg_roles where rolname = {role_literal}) then"
            " create role {role} login; end if; end $$"
        ).format(role_literal=sql.Literal(SOURCE_READER), role=sql.Identifier(SOURCE_READER))
    )
    database = sql.Identifier(conn.info.dbname)
    reader = sql.Identifier(SOURCE_READER)
    conn.execute(sql.SQL("alter role {} nosuperuser nocreatedb nocreaterole").format(reader))
    conn.execute(sql.SQL("grant connect on database {} to {}").format(database, reader))
    conn.execute(sql.SQL("grant usage on schema public to {}").format(reader))
    conn.execute(sql.SQL("grant select on all tables in schema public to {}").format(reader))
    conn.execute(
        sql.SQL("alter default privileges in schema public grant select on tables to {}").format(
            reader
        )
    )
    conn.execute(sql.SQL("revoke all on schema sim from public"))
