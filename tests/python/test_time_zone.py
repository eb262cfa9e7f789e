"""The warehouse's time zone setting changes no result: a warehouse whose database defaults to
America/Los_Angeles (a self-hosted server takes its system's zone at initdb) builds exactly what a
UTC one builds, point-in-time test included, because the platform's roles run in the declared
reporting zone. With the reporting zone set to another zone, the daily figures are that zone's
days, checked against the source computed independently in that zone."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from haven.settings import Settings
from haven.source import simulator
from haven.transform.dbt import DbtOutcome, dbt_args, dbt_environment, run_dbt
from haven.transform.equality import create_reference, differences_from_full_rebuild
from haven.warehouse.endpoints import TRANSFORMER, Endpoints, up
from haven.warehouse.pii import store_pii_key
from ingestion.pipeline import ingest
from tests.python.conftest import settings_for

REFERENCE = "time_zone_reference"
SERVER_ZONE = "America/Los_Angeles"
REPORTING_ZONE = "Asia/Tokyo"


def build(environment: dict[str, str]) -> DbtOutcome:
    outcome = run_dbt(dbt_args("build", full_refresh=True), environment)
    assert outcome.success, [(node.name, node.message) for node in outcome.failures]
    return outcome


@pytest.fixture(scope="module")
def warehouse(haven_home: Path) -> tuple[Settings, Endpoints]:
    settings = settings_for(haven_home, "time_zone")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.02, seed=13, replace=True)
    assert not ingest(settings, endpoints, full_refresh=True).failed
    store_pii_key(settings, endpoints)  # the reference copies it with the rest
    create_reference(endpoints, REFERENCE)
    with psycopg.connect(endpoints.warehouse_url, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("alter database {} set timezone = {}").format(
                sql.Identifier(settings.warehouse_database), sql.Literal(SERVER_ZONE)
            )
        )
        conn.execute(
            sql.SQL("alter database {} set timezone = 'UTC'").format(sql.Identifier(REFERENCE))
        )
    return settings, endpoints


def test_a_warehouse_in_another_zone_builds_what_a_utc_one_builds(warehouse) -> None:
    settings, endpoints = warehouse
    with psycopg.connect(endpoints.warehouse_url) as conn:
        assert conn.execute("show timezone").fetchone() == (SERVER_ZONE,), "the test's premise"
    with psycopg.connect(endpoints.role_url(TRANSFORMER)) as conn:
        assert conn.execute("show timezone").fetchone() == ("UTC",), "the role's own zone"
    # a session in another zone than the reporting one builds nothing, and says why
    environment = {**dbt_environment(settings, endpoints), "PGTZ": SERVER_ZONE}
    refused = run_dbt(dbt_args("build", select="dim_dates"), environment)
    assert not refused.success and not refused.nodes
    assert f"runs in time zone {SERVER_ZONE}, not the reporting zone UTC" in str(refused.error)
    # as plain dbt would run (no PGTZ): the role's zone in this database is what holds
    environment = dbt_environment(settings, endpoints)
    del environment["PGTZ"]
    build(environment)  # customer_features_see_only_the_past among its tests
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []


def test_daily_figures_are_days_of_the_reporting_zone(warehouse, haven_home: Path) -> None:
    settings, endpoints = warehouse
    tokyo = settings_for(haven_home, "time_zone", reporting_time_zone=REPORTING_ZONE)
    try:
        up(tokyo)  # the roles' zone in this database
        build(dbt_environment(tokyo, endpoints))
        with psycopg.connect(endpoints.source_admin_url) as source:
            expected = dict(
                source.execute(
                    "select (placed_at at time zone %s)::date, count(*) from orders group by 1",
                    (REPORTING_ZONE,),
                ).fetchall()
            )
            utc_days = dict(
                source.execute(
                    "select (placed_at at time zone 'UTC')::date, count(*) from orders group by 1"
                ).fetchall()
            )
        with psycopg.connect(endpoints.warehouse_url) as warehouse_conn:
            daily = dict(
                warehouse_conn.execute(
                    "select placed_date, sum(orders_count) from analytics.agg_daily_order_status"
                    " group by 1"
                ).fetchall()
            )
        assert expected != utc_days, "the zones put some orders on other days"
        assert daily == expected
    finally:
        up(settings)  # back to UTC for anything that follows on this server
