"""Incremental builds equal full rebuilds: after every tick (new rows, updates, late commits, hard
deletes, defects, a row fixed and a row broken in the source) each relation the transforms build
equals a full refresh of the same raw data, and each snapshot holds the history whole-table
snapshots record. The reference is a second database on the same server with its own history."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from haven.settings import Settings
from haven.source import simulator
from haven.transform.dbt import (
    DbtOutcome,
    build_variables,
    dbt_args,
    dbt_environment,
    read_run_results,
    run_dbt,
)
from haven.transform.equality import create_reference, differences_from_full_rebuild
from haven.warehouse.endpoints import Endpoints, up
from ingestion.pipeline import ingest
from tests.python.conftest import settings_for

REFERENCE = "incremental_reference"
TICKS = 4


def build(
    settings: Settings, endpoints: Endpoints, database: str | None = None, **options: object
) -> DbtOutcome:
    environment = dbt_environment(settings, endpoints)
    if database is not None:
        environment["HAVEN_DBT_DATABASE"] = database
    outcome = run_dbt(dbt_args("build", **options), environment)  # type: ignore[arg-type]
    assert outcome.success, [(node.name, node.message) for node in outcome.failures]
    return outcome


@pytest.fixture(scope="module")
def warehouse(haven_home: Path) -> tuple[Settings, Endpoints]:
    settings = settings_for(haven_home, "incremental")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.02, seed=11, defect_rate=0.02, replace=True)
    assert not ingest(settings, endpoints, full_refresh=True).failed
    build(settings, endpoints, full_refresh=True)
    create_reference(endpoints, REFERENCE)
    return settings, endpoints


def fix_and_break_a_customer(endpoints: Endpoints) -> tuple[int, int]:
    """In the source: give a quarantined customer a valid email, and blank a clean one's."""
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as conn:
        fixed = conn.execute(
            "update customers set email = 'fixed' || id || '@mail.com', updated_at = now()"
            " where id = (select min(id) from customers where email !~* '^[a-z0-9._%%+-]+@[a-z0-9.-]+[.][a-z]{2,}$')"
            " returning id"
        ).fetchone()
        broken = conn.execute(
            "update customers set email = null, updated_at = now()"
            " where id = (select max(id) from customers where email like '%%@%%.%%')"
            " returning id"
        ).fetchone()
    assert fixed and broken, "the source has a malformed and a valid email to swap"
    return fixed[0], broken[0]


def quarantined_customers(endpoints: Endpoints) -> set[int]:
    with psycopg.connect(endpoints.warehouse_url) as conn:
        return {
            int(row[0])
            for row in conn.execute(
                "select source_key from quarantine.quarantined_rows where source_table = 'customers'"
            )
        }


def test_every_tick_then_incremental_build_equals_a_full_rebuild(warehouse) -> None:
    settings, endpoints = warehouse
    for day in range(1, TICKS + 1):
        simulator.tick(endpoints, days=1)
        if day == 2:
            fixed, broken = fix_and_break_a_customer(endpoints)
        assert not ingest(settings, endpoints).failed
        incremental = build(settings, endpoints)
        inserted = {node.name: node.rows_affected for node in incremental.nodes}
        if day == 2:
            quarantined = quarantined_customers(endpoints)
            assert fixed not in quarantined and broken in quarantined

        # every model rebuilt from raw in the reference; the history compared over whole tables
        assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == [], (
            f"after tick {day}"
        )
        # the rebuild's artifacts are its own: target/ still holds the incremental build's
        results = {
            result.unique_id: result.rows_affected
            for result in read_run_results(settings.dbt_target_dir)
        }
        assert results["model.clutter_haven.fct_orders"] == inserted["fct_orders"]
        assert (settings.dbt_target_dir / REFERENCE / "run_results.json").exists()
        # the incremental build rewrote the orders that changed, not all of them
        with psycopg.connect(endpoints.warehouse_url) as conn:
            orders = conn.execute("select count(*) from analytics.fct_orders").fetchone()[0]
        assert 0 < inserted["fct_orders"] < orders / 2


def bump_load_id(endpoints: Endpoints, table: str, key: int) -> None:
    """Mark a raw row as written again, as a reload by the loader would."""
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute(
            f"update raw_app.{table} set _dlt_load_id = extract(epoch from clock_timestamp())::text"
            " where id = %s",
            (key,),
        )


def changed_tests_build(settings: Settings, endpoints: Endpoints, **options: object) -> DbtOutcome:
    return run_dbt(
        dbt_args("build", variables=build_variables(**options)),  # type: ignore[arg-type]
        dbt_environment(settings, endpoints),
    )


PAYMENT_ORPHAN_TEST = (
    "relationships_unless_quarantined_stg_app__payments_order_id__order_id__orders"
    "__ref_quarantined_rows___ref_stg_app__orders_"
)


def test_an_incremental_run_tests_the_rows_it_changed_and_still_fails_on_an_orphan(
    warehouse,
) -> None:
    settings, endpoints = warehouse
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        (old, old_order), (new, new_order) = conn.execute(
            "select payment_id, order_id from staging.stg_app__payments order by payment_id limit 2"
        ).fetchall()
        # an orphan this run does not write (as a faulty earlier build would leave it)
        conn.execute(
            "update staging.stg_app__payments set order_id = -2 where payment_id = %s", (old,)
        )
    # an incremental run does not read it; the nightly run, testing every row, fails on it
    assert changed_tests_build(settings, endpoints).success
    nightly = changed_tests_build(settings, endpoints, full_tests=True)
    assert [node.name for node in nightly.failures] == [PAYMENT_ORPHAN_TEST]
    bump_load_id(endpoints, "payments", old)
    assert changed_tests_build(settings, endpoints).success

    # an orphan the incremental run writes: its test fails the run
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute("update raw_app.payments set order_id = -1 where id = %s", (new,))
    bump_load_id(endpoints, "payments", new)
    try:
        failed = changed_tests_build(settings, endpoints)
        assert [node.name for node in failed.failures] == [PAYMENT_ORPHAN_TEST]
    finally:
        with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
            conn.execute(
                "update raw_app.payments set order_id = %s where id = %s", (new_order, new)
            )
        bump_load_id(endpoints, "payments", new)
    assert changed_tests_build(settings, endpoints).success
    assert old_order is not None


def test_a_duplicate_key_written_by_an_incremental_run_fails_it(warehouse) -> None:
    settings, endpoints = warehouse
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        customer = conn.execute(
            "select min(customer_id) from staging.stg_app__customers"
        ).fetchone()[0]
        # a second version of the customer that ties with the first (same updated_at, same load)
        conn.execute(
            "insert into raw_app.customers select * from raw_app.customers where id = %s",
            (customer,),
        )
        conn.execute(
            "update raw_app.customers set city = 'Elsewhere',"
            " _dlt_load_id = extract(epoch from now())::text where id = %s",
            (customer,),
        )
    try:
        failed = changed_tests_build(settings, endpoints)
        assert not failed.success
        assert "stg_app__customers" in [node.name for node in failed.failures]
    finally:
        with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
            conn.execute(
                "delete from raw_app.customers where ctid = (select max(ctid) from raw_app.customers where id = %s)",
                (customer,),
            )
        bump_load_id(endpoints, "customers", customer)
    assert changed_tests_build(settings, endpoints).success
