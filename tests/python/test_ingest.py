"""Ingestion: raw_app equals the source after init and after ticks (deletes included), a re-run
loads nothing, drift is reported or stops the table it affects, and errors are clear."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from haven.settings import Settings
from haven.source import simulator
from haven.warehouse.endpoints import Endpoints, up
from haven.warehouse.fingerprint import table_fingerprint
from ingestion.app.helpers import column_types, source_columns
from ingestion.app.settings import DELETED_AT, TABLES
from ingestion.pipeline import IngestReport, ingest
from tests.python.conftest import settings_for

LIVE = sql.SQL("{} is null").format(sql.Identifier(DELETED_AT))


def assert_raw_equals_source(endpoints: Endpoints) -> None:
    with (
        psycopg.connect(endpoints.source_admin_url) as source,
        psycopg.connect(endpoints.warehouse_url) as raw,
    ):
        for spec in TABLES:
            columns = list(source_columns(source, "public", spec.name))
            expected = table_fingerprint(source, "public", spec.name, columns)
            actual = table_fingerprint(
                raw, "raw_app", spec.name, columns, where=LIVE if spec.mutable else None
            )
            assert actual == expected, f"raw_app.{spec.name} differs from the source"


@pytest.fixture(scope="module")
def loaded(haven_home: Path) -> tuple[Settings, Endpoints, IngestReport]:
    settings = settings_for(haven_home, "ingest")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.02, seed=21, replace=True)
    report = ingest(settings, endpoints, full_refresh=True)
    return settings, endpoints, report


def test_first_ingest_lands_every_table(loaded) -> None:
    _, endpoints, report = loaded
    assert not report.failed
    assert set(report.tables) == {spec.name for spec in TABLES}
    assert all(row.loaded > 0 for row in report.tables.values())
    assert_raw_equals_source(endpoints)


def test_second_run_without_change_loads_nothing(loaded) -> None:
    settings, endpoints, _ = loaded
    again = ingest(settings, endpoints)
    assert again.loaded_rows == 0, {name: row.loaded for name, row in again.tables.items()}
    assert sum(row.deleted for row in again.tables.values()) == 0
    assert_raw_equals_source(endpoints)


def test_ticks_with_updates_late_commits_and_deletes_are_mirrored(loaded) -> None:
    settings, endpoints, _ = loaded
    for _ in range(3):
        simulator.tick(endpoints, days=1)
        report = ingest(settings, endpoints)
        assert not report.failed
    assert_raw_equals_source(endpoints)
    with psycopg.connect(endpoints.warehouse_url) as raw:
        deleted = raw.execute(
            f"select count(*) from raw_app.listings where {DELETED_AT} is not null"
        ).fetchone()[0]
    assert deleted > 0, "hard-deleted listings are kept in raw and marked"


def test_late_commit_before_the_cursor_is_picked_up(loaded) -> None:
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        latest = source.execute("select max(updated_at) from customers").fetchone()[0]
        source.execute(
            "update customers set city = 'Late Town', updated_at = %s - interval '30 hours' where id = 3",
            (latest,),
        )
    report = ingest(settings, endpoints)
    assert report.tables["customers"].loaded == 1
    with psycopg.connect(endpoints.warehouse_url) as raw:
        assert raw.execute("select city from raw_app.customers where id = 3").fetchone() == (
            "Late Town",
        )


def test_a_row_deleted_then_restored_unchanged_is_live_again(loaded) -> None:
    """An application that undeletes a row (restores it from its own backup, updated_at and
    all, recent enough to be in the overlap window): the ingest must load it again, not take it
    for the deleted version raw holds."""
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        (customer,) = source.execute(
            "select id from customers as c where not exists (select from orders as o"
            " where o.customer_id = c.id) and not exists (select from reviews as r"
            " where r.customer_id = c.id) order by updated_at desc limit 1"
        ).fetchone()
        source.execute(
            "create table restored as select * from customers where id = %s", (customer,)
        )
        source.execute("delete from customers where id = %s", (customer,))
    assert ingest(settings, endpoints).tables["customers"].deleted == 1
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("insert into customers select * from restored")
        source.execute("drop table restored")
    assert ingest(settings, endpoints).tables["customers"].loaded == 1
    with psycopg.connect(endpoints.warehouse_url) as raw:
        assert raw.execute(
            f"select count(*) from raw_app.customers where id = %s and {DELETED_AT} is null",
            (customer,),
        ).fetchone() == (1,)
    assert_raw_equals_source(endpoints)


def databases(settings: Settings) -> dict[str, str]:
    return {
        "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
        "HAVEN_SOURCE_DATABASE": settings.source_database,
    }


def test_an_update_that_skips_updated_at_is_found_and_repaired(loaded, haven, haven_home) -> None:
    """A backfill that never moved updated_at, on a recent order (inside the window the ingest
    re-reads) and on the oldest one. The cursor loads neither; the plain ingest's value check
    of the window finds the recent one and names it; `haven ingest --repair` compares every
    row, reads both again, and raw equals the source in every column."""
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        recent, old = source.execute(
            "select (select id from orders order by updated_at desc, id limit 1),"
            " (select id from orders order by updated_at, id limit 1)"
        ).fetchone()
        source.execute(
            "update orders set shipping_cents = shipping_cents + 777,"
            " total_cents = total_cents + 777 where id = any(%s)",
            ([recent, old],),
        )
    report = ingest(settings, endpoints, values="changed")
    orders = report.tables["orders"]
    assert orders.loaded == 0 and orders.values is not None
    assert orders.values.differing == [(recent,)], "the window holds the recent order only"
    assert all(
        not row.values.differing
        for row in report.tables.values()
        if row.values and row.table != "orders"
    )
    result = haven("ingest", home=haven_home, env=databases(settings))
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output
    assert "values differ from the source in orders" in output and "haven ingest --repair" in output
    wide = {**databases(settings), "COLUMNS": "200"}  # the note on one line of its cell
    repaired = haven("ingest", "--repair", home=haven_home, env=wide)
    output = " ".join((repaired.stdout + repaired.stderr).split())
    assert repaired.returncode == 0 and "2 differing row(s) read again" in output, output
    assert_every_row_matches(endpoints, "orders")
    assert_raw_equals_source(endpoints)
    again = ingest(settings, endpoints, values="all")
    assert all(row.values is not None and not row.values.differing for row in again.tables.values())
    assert again.loaded_rows == 0


def test_a_repair_of_many_rows_re_syncs_the_table_and_keeps_its_deletions(
    loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More differing rows than a repair reads by key (lowered to 1 here): the table is loaded
    again whole, its deletion marks kept, and raw equals the source."""
    from ingestion import pipeline

    settings, endpoints, _ = loaded
    deleted = deleted_keys(endpoints, "customers")
    assert deleted, "the ticks deleted customers"
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute(
            "update customers set city = upper(city) where id in (select id from customers order by id limit 3)"
        )
    monkeypatch.setattr(pipeline, "REPAIR_KEYS", 1)
    report = ingest(settings, endpoints, values="all", repair=True)
    customers = report.tables["customers"]
    assert customers.resynced and customers.values is not None
    assert customers.values.repaired == 3 and not customers.values.differing
    assert deleted_keys(endpoints, "customers") == deleted
    assert_every_row_matches(endpoints, "customers")


def column_type(endpoints: Endpoints, schema: str, table: str, column: str) -> str:
    with psycopg.connect(endpoints.warehouse_url) as warehouse:
        return column_types(warehouse, schema, table, (column,))[column]


def test_a_widened_numeric_lands_in_place_and_a_narrowed_one_stops(loaded) -> None:
    """numeric(5, 4) to (7, 5): raw's column is widened, values kept, no re-sync, and a value
    that needs the new digits lands. Then to (6, 3), which rounds the source's values: the
    table stops with a sentence naming the column and the re-sync, which then brings raw back
    to the source's values."""
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table vendors alter column commission_rate type numeric(7, 5)")
        source.execute(
            "update vendors set commission_rate = 0.12345, updated_at ="
            " (select max(updated_at) from vendors) + interval '1 second' where id = 1"
        )
    report = ingest(settings, endpoints, values="all")
    vendors = report.tables["vendors"]
    assert vendors.widened == ["commission_rate to numeric(7, 5)"], vendors
    assert not vendors.resynced and not report.failed and vendors.loaded == 1
    assert column_type(endpoints, "raw_app", "vendors", "commission_rate") == "numeric(7,5)"
    assert vendors.values is not None and not vendors.values.differing
    assert_every_row_matches(endpoints, "vendors")
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table vendors alter column commission_rate type numeric(6, 3)")
    report = ingest(settings, endpoints)
    assert [row.table for row in report.failed] == ["vendors"]
    problem = report.tables["vendors"].problem or ""
    assert "vendors.commission_rate narrowed" in problem and "--resync vendors" in problem
    assert not ingest(settings, endpoints, resync=frozenset({"vendors"})).failed
    assert column_type(endpoints, "raw_app", "vendors", "commission_rate") == "numeric(6,3)"
    assert_every_row_matches(endpoints, "vendors")


def test_new_column_is_loaded_and_reported(loaded) -> None:
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table vendors add column if not exists loyalty_tier text")
        source.execute(
            "update vendors set loyalty_tier = 'gold', updated_at = (select max(updated_at) from vendors) + interval '1 second' where id <= 2"
        )
    report = ingest(settings, endpoints)
    assert report.tables["vendors"].new_columns == ["loyalty_tier"]
    assert not report.failed
    with psycopg.connect(endpoints.warehouse_url) as raw:
        assert raw.execute(
            "select count(*) from raw_app.vendors where loyalty_tier = 'gold'"
        ).fetchone() == (2,)
    assert_raw_equals_source(endpoints)


def assert_every_row_matches(endpoints: Endpoints, table: str) -> None:
    """Independent of the fingerprint: an md5 over each live row's columns (the source's
    columns, in its order), key by key."""
    with (
        psycopg.connect(endpoints.source_admin_url) as source,
        psycopg.connect(endpoints.warehouse_url) as raw,
    ):
        columns = ", ".join(f'"{name}"' for name in source_columns(source, "public", table))
        query = "select id, md5(row({columns})::text) from {relation} {where} order by id"
        expected = source.execute(
            query.format(columns=columns, relation=table, where="")
        ).fetchall()
        actual = raw.execute(
            query.format(
                columns=columns, relation=f"raw_app.{table}", where=f"where {DELETED_AT} is null"
            )
        ).fetchall()
    assert len(actual) == len(expected), (
        f"raw_app.{table}: {len(actual)} rows, source {len(expected)}"
    )
    differing = [a[0] for a, e in zip(actual, expected, strict=True) if a != e]
    assert not differing, f"raw_app.{table} differs from the source for keys {differing[:5]}"


def deleted_keys(endpoints: Endpoints, table: str) -> set[int]:
    with psycopg.connect(endpoints.warehouse_url) as raw:
        return {
            row[0]
            for row in raw.execute(f"select id from raw_app.{table} where {DELETED_AT} is not null")
        }


def test_a_column_added_with_a_default_lands_for_every_row(loaded) -> None:
    """The usual migration: PostgreSQL fills the column for every row without touching
    updated_at. The ingest loads the table again whole, its deletions kept."""
    settings, endpoints, _ = loaded
    deleted = deleted_keys(endpoints, "customers")
    assert deleted, "the ticks deleted customers"
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table customers add column loyalty_tier text default 'basic'")
    report = ingest(settings, endpoints)
    assert report.tables["customers"].new_columns == ["loyalty_tier"]
    assert report.tables["customers"].resynced and not report.failed
    assert_every_row_matches(endpoints, "customers")
    assert deleted_keys(endpoints, "customers") == deleted
    assert_raw_equals_source(endpoints)
    assert ingest(settings, endpoints).loaded_rows == 0


def test_a_renamed_column_stops_its_table_until_it_is_resynced(loaded, haven, haven_home) -> None:
    settings, endpoints, _ = loaded
    deleted = deleted_keys(endpoints, "customers")
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table customers rename column city to town")
    report = ingest(settings, endpoints)
    assert [row.table for row in report.failed] == ["customers"]
    problem = report.tables["customers"].problem or ""
    assert "customers.city" in problem and "haven ingest --resync customers" in problem
    result = haven("ingest", home=haven_home, env=databases(settings))
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1 and "customers.city" in output and "Traceback" not in output
    result = haven("ingest", "--resync", "customers", home=haven_home, env=databases(settings))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_every_row_matches(endpoints, "customers")
    assert deleted_keys(endpoints, "customers") == deleted
    with psycopg.connect(endpoints.warehouse_url) as raw:
        columns = {
            row[0]
            for row in raw.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'raw_app' and table_name = 'customers'"
            )
        }
    assert "town" in columns and "city" not in columns
    refused = haven("ingest", "--resync", "clients", home=haven_home, env=databases(settings))
    assert (
        refused.returncode == 1 and "no such application table" in refused.stderr + refused.stdout
    )
    # renamed back, and the table gone from raw as a re-sync killed after its drop leaves it:
    # the next ingest loads it afresh, without the column dlt last saw
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table customers rename column town to city")
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as raw:
        raw.execute("drop table raw_app.customers cascade")
    assert not ingest(settings, endpoints).tables["customers"].problem
    assert_every_row_matches(endpoints, "customers")


def test_type_change_stops_only_that_table(loaded, haven, haven_home) -> None:
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table reviews alter column rating type text")
        source.execute(
            "update orders set updated_at = (select max(updated_at) from orders) + interval '1 second' where id = 1"
        )
    try:
        report = ingest(settings, endpoints)
        assert [row.table for row in report.failed] == ["reviews"]
        assert "reviews.rating" in (report.tables["reviews"].problem or "")
        assert report.tables["orders"].loaded == 1, "the other tables still load"
        result = haven(
            "ingest",
            home=haven_home,
            env={
                "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
                "HAVEN_SOURCE_DATABASE": settings.source_database,
            },
        )
        assert result.returncode == 1
        assert "reviews.rating" in result.stderr and "Traceback" not in result.stderr
    finally:
        with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
            source.execute(
                "alter table reviews alter column rating type smallint using rating::smallint"
            )
    assert not ingest(settings, endpoints).failed


def test_null_primary_key_stops_that_table(loaded) -> None:
    settings, endpoints, _ = loaded
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table refunds drop constraint refunds_pkey")
        source.execute("alter table refunds alter column id drop identity")
        source.execute("alter table refunds alter column id drop not null")
        source.execute(
            "insert into refunds (id, order_id, payment_id, amount_cents, reason, refunded_at, created_at, updated_at) select null, order_id, payment_id, amount_cents, reason, refunded_at, created_at, now() from refunds limit 1"
        )
    report = ingest(settings, endpoints)
    assert [row.table for row in report.failed] == ["refunds"]
    assert "refunds.id" in (report.tables["refunds"].problem or "")
    assert "NULL" in (report.tables["refunds"].problem or "")


def test_source_down_is_a_clear_error(haven, haven_home) -> None:
    result = haven(
        "ingest",
        home=haven_home,
        env={"HAVEN_SOURCE_URL": "postgresql://nobody@127.0.0.1:1/app"},
    )
    assert result.returncode == 1
    assert "Cannot connect to the source database" in result.stderr
    assert "Traceback" not in result.stderr
