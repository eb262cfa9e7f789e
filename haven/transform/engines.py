"""Do PostgreSQL and Spark build the same tables from the same raw data?

Each relation is read whole from both engines, every value brought to one text form, and the
rows compared by key: counts, a checksum over all shared columns, and the first differing rows
named. The type differences allowed, and only these: ``timestamptz`` (PostgreSQL) against
``timestamp`` in the UTC session time zone (Spark), ``numeric(p, s)`` against ``decimal(p, s)``,
``text[]`` against ``array<string>``, and a double precision value, compared to 12 significant
digits (engines sum and interpolate in different orders); ``row_data`` (jsonb against JSON text, whose key order and
number formats differ) and the build's own clock (``quarantined_at``) are not compared.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from haven.warehouse.spark import SparkEndpoint, connect

NOT_COMPARED = frozenset({"row_data", "quarantined_at", "dbt_partition"})
"""Columns not compared: the quarantine's row as JSON text (key order and number formats differ
from jsonb) and each build's clock, and the key partition only Spark's tables have
(``macros/changed_keys_on_spark.sql``)."""

BUILD_TIMES = frozenset({"dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to"})
"""A history's columns that may hold its build's clock: a deletion is recorded at the time of the
build that noticed it (as dbt's snapshot does), on each engine its own, and the deletion
record's id is made from that time. Histories with deletions are compared by key, updated_at
and dbt_is_deleted without these."""


def canonical(value: object) -> str | None:
    """One text form for a value from either engine (PyHive hands timestamps, decimals and arrays
    over as text; psycopg as Python objects)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, float):
        # a double computed on two engines may differ in its last bits (another summation
        # order): compared to 12 significant digits
        return format(float(format(value, ".12g")), "f")
    if isinstance(value, int | Decimal):
        number = Decimal(str(value)).normalize()
        return format(number, "f")
    if isinstance(value, list | tuple):
        return json.dumps([canonical(item) for item in value])
    text = str(value)
    if text.startswith("[") and text.endswith("]"):
        try:
            return json.dumps([canonical(item) for item in json.loads(text)])
        except ValueError:
            return text
    if len(text) >= 19 and text[4] == "-" and text[10] == " " and text[13] == ":":
        try:
            return canonical(datetime.fromisoformat(text))
        except ValueError:
            return text
    return text


def _postgres_rows(url: str, schema: str, table: str) -> tuple[list[str], list[tuple]]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(f'select * from "{schema}"."{table}"')
        return [column.name for column in cursor.description or []], cursor.fetchall()


def _spark_rows(endpoint: SparkEndpoint, schema: str, table: str) -> tuple[list[str], list[tuple]]:
    with closing(connect(endpoint)) as conn:
        cursor = conn.cursor()
        cursor.execute(f"select * from `{schema}`.`{table}`")
        rows = cursor.fetchall()
        return [column[0].split(".")[-1] for column in cursor.description], rows


def _keyed(
    columns: Sequence[str], rows: Iterable[tuple], shared: Sequence[str], key: Sequence[str]
) -> dict[tuple, tuple]:
    position = {name: index for index, name in enumerate(columns)}
    keyed = {}
    for row in rows:
        values = tuple(canonical(row[position[name]]) for name in shared)
        keyed[tuple(canonical(row[position[name]]) for name in key)] = values
    return keyed


def _checksum(rows: dict[tuple, tuple]) -> str:
    digest = hashlib.sha256()
    for key in sorted(rows, key=repr):
        digest.update(repr((key, rows[key])).encode())
    return digest.hexdigest()[:16]


def relation_differences(
    postgres_url: str,
    spark: SparkEndpoint,
    schema: str,
    table: str,
    key: Sequence[str],
    not_compared: frozenset[str] = NOT_COMPARED,
) -> list[str]:
    """What differs in one relation between the engines, in sentences (empty when equal);
    the columns ``not_compared`` are left out."""
    name = f"{schema}.{table}"
    postgres_columns, postgres_rows = _postgres_rows(postgres_url, schema, table)
    spark_columns, spark_rows = _spark_rows(spark, schema, table)
    problems = []
    only = set(postgres_columns) ^ set(spark_columns)
    if only - not_compared:
        problems.append(f"{name}: columns on one engine only: {sorted(only - not_compared)}")
    shared = [c for c in postgres_columns if c in spark_columns and c not in not_compared]
    postgres = _keyed(postgres_columns, postgres_rows, shared, key)
    spark_keyed = _keyed(spark_columns, spark_rows, shared, key)
    if len(postgres) != len(postgres_rows) or len(spark_keyed) != len(spark_rows):
        problems.append(f"{name}: key {list(key)} is not unique")
    if _checksum(postgres) == _checksum(spark_keyed):
        return problems
    missing = postgres.keys() - spark_keyed.keys()
    extra = spark_keyed.keys() - postgres.keys()
    changed = [k for k in postgres.keys() & spark_keyed.keys() if postgres[k] != spark_keyed[k]]
    problems.append(
        f"{name}: {len(postgres_rows)} rows on PostgreSQL, {len(spark_rows)} on Spark;"
        f" {len(missing)} missing on Spark, {len(extra)} only on Spark, {len(changed)} differ"
    )
    for row_key in sorted(changed, key=repr)[:3]:
        columns = [
            f"{column} {left!r} vs {right!r}"
            for column, left, right in zip(
                shared, postgres[row_key], spark_keyed[row_key], strict=True
            )
            if left != right
        ]
        problems.append(f"{name} key {row_key}: {'; '.join(columns[:4])}")
    return problems
