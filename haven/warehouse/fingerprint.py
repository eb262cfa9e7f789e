"""Row-level fingerprints of a table, comparable across servers: the proof that raw equals source."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    checksum: str


def table_fingerprint(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: list[str],
    *,
    key: str | tuple[str, ...] = "id",
    where: sql.Composable | None = None,
) -> Fingerprint:
    """Row count and an md5 over every row's text form in key order.

    Each value is cast to text with NULL spelled out, so two tables with the same rows give the
    same checksum whichever server (and column type within a family) holds them.
    """
    row_text = sql.SQL(", ").join(
        sql.SQL("coalesce({}::text, '\\N')").format(sql.Identifier(column)) for column in columns
    )
    query = sql.SQL(
        "select count(*), coalesce(md5(string_agg(concat_ws('|', {row}), E'\\n' order by {key})), '')"
        " from {schema}.{table}"
    ).format(
        row=row_text,
        key=sql.SQL(", ").join(
            sql.Identifier(name) for name in ((key,) if isinstance(key, str) else key)
        ),
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
    )
    if where is not None:
        query += sql.SQL(" where ") + where
    row = conn.execute(query).fetchone()
    assert row is not None
    return Fingerprint(int(row[0]), str(row[1]))
