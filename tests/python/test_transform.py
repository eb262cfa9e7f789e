"""The dbt layer on a small generated source with defects: build passes, quarantine catches exactly
the damaged rows, roles see exactly their schemas, incremental equals full refresh after a tick,
features do not leak, failing tests are named, sqlfluff passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from haven.ops.reconcile import STAGED_TEST
from haven.settings import PROJECT_DIR, Settings
from haven.source import simulator
from haven.transform.dbt import (
    DbtOutcome,
    dbt_args,
    dbt_environment,
    parse_artifact,
    read_run_results,
    run_dbt,
)
from haven.warehouse.endpoints import ANALYST, MCP, ML, Endpoints, up
from haven.warehouse.fingerprint import table_fingerprint
from ingestion.pipeline import ingest
from tests.python.conftest import settings_for

DEFECT_RATE = 0.02


def build(settings: Settings, endpoints: Endpoints, **options: object) -> DbtOutcome:
    return run_dbt(dbt_args("build", **options), dbt_environment(settings, endpoints))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def warehouse(haven_home: Path) -> tuple[Settings, Endpoints, DbtOutcome]:
    settings = settings_for(haven_home, "transform")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.05, seed=5, defect_rate=DEFECT_RATE, replace=True)
    ingest(settings, endpoints, full_refresh=True)
    outcome = build(settings, endpoints, full_refresh=True)
    return settings, endpoints, outcome


def test_build_passes_every_model_history_and_test(warehouse) -> None:
    _, _, outcome = warehouse
    assert outcome.success, [(node.name, node.message) for node in outcome.failures]
    kinds = {node.resource_type for node in outcome.nodes}
    assert {"model", "test", "seed", "unit_test"} <= kinds
    built = {node.name for node in outcome.nodes if node.status == "success"}
    assert {"snp_customers", "snp_vendors", "snp_listings"} <= built
    assert sum(1 for node in outcome.nodes if node.resource_type == "test") > 100


def test_artifacts_parse_as_the_librarys_parser_parses_them(warehouse, tmp_path: Path) -> None:
    """parse_artifact imports only the model of the artifact's version; the result is what
    dbt-artifacts-parser's own parser gives, and a version it does not know is refused."""
    import json

    from dbt_artifacts_parser import parser

    settings, _, outcome = warehouse
    path = settings.dbt_target_dir / "run_results.json"
    parsed = parse_artifact(path, "run_results")
    assert parsed == parser.parse_run_results(json.loads(path.read_text()))
    assert [result.unique_id for result in read_run_results(settings.dbt_target_dir)] == [
        result.unique_id for result in parsed.results
    ]
    assert len(parsed.results) == len(outcome.nodes)
    unknown = json.loads(path.read_text())
    unknown["metadata"]["dbt_schema_version"] = (
        "https://schemas.getdbt.com/dbt/run-results/v99.json"
    )
    (tmp_path / "run_results.json").write_text(json.dumps(unknown))
    with pytest.raises(ValueError, match="Not a run_results.json"):
        parse_artifact(tmp_path / "run_results.json", "run_results")


def test_quarantine_catches_exactly_the_damaged_rows(warehouse) -> None:
    _, endpoints, _ = warehouse
    with psycopg.connect(endpoints.source_admin_url) as source:
        damaged = {
            (table, key)
            for table, key in source.execute("select table_name, row_id from sim.defects")
        }
    with psycopg.connect(endpoints.warehouse_url) as warehouse_conn:
        caught = {
            (table, int(key))
            for table, key in warehouse_conn.execute(
                "select source_table, source_key from quarantine.quarantined_rows"
            )
        }
    assert damaged, "the source was generated with defects"
    missed, false_alarms = damaged - caught, caught - damaged
    recall = 1 - len(missed) / len(damaged)
    precision = 1 - len(false_alarms) / len(caught)
    print(
        f"quarantine: {len(damaged)} damaged, {len(caught)} caught, precision {precision:.4f}, recall {recall:.4f}"
    )
    assert not missed, f"damaged rows not quarantined: {sorted(missed)[:10]}"
    assert not false_alarms, f"clean rows quarantined: {sorted(false_alarms)[:10]}"


def can_read(endpoints: Endpoints, role: str, relation: str) -> bool:
    with psycopg.connect(endpoints.role_url(role), autocommit=True) as conn:
        try:
            conn.execute(f"select 1 from {relation} limit 1")
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


@pytest.mark.parametrize(
    ("role", "relation", "allowed"),
    [
        (ANALYST, "analytics.fct_orders", True),
        (ANALYST, "analytics.dim_customers", True),
        (ANALYST, "ml.customer_features", False),
        (ANALYST, "staging.stg_app__customers", False),
        (ANALYST, "quarantine.quarantined_rows", False),
        (ML, "ml.training_customer_churn", True),
        (ML, "analytics.fct_orders", False),
        (ML, "staging.stg_app__orders", False),
        (MCP, "analytics.agg_daily_sales", True),
        (MCP, "ml.vendor_features", True),
        (MCP, "staging.stg_app__customers", False),
        (MCP, "raw_app.customers", False),
    ],
)
def test_grants_give_each_role_exactly_its_schemas(
    warehouse, role: str, relation: str, allowed: bool
) -> None:
    _, endpoints, _ = warehouse
    assert can_read(endpoints, role, relation) is allowed


def test_no_personal_data_past_staging(warehouse) -> None:
    _, endpoints, _ = warehouse
    with psycopg.connect(endpoints.warehouse_url) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema in ('staging', 'analytics', 'ml', 'snapshots')"
                " and table_name not like 'base_app__%%'"
            )
        }
        assert not columns & {
            "email",
            "first_name",
            "last_name",
            "phone",
            "street_address",
            "postal_code",
        }
        hashes = conn.execute("select email_hash from analytics.dim_customers limit 50").fetchall()
        assert all(len(value) == 64 for (value,) in hashes)


def test_no_key_material_leaves_the_warehouse(warehouse, haven, haven_home) -> None:
    """The masking key and its HMAC pads are in no compiled or run SQL under target/ or dbt's
    log, not in
    `haven env`, not in the server's statement statistics; only the transformer reads them."""
    from haven.warehouse.endpoints import ANALYST, MCP
    from haven.warehouse.pii import hmac_pads, pii_hash_key

    settings, endpoints, _ = warehouse
    key = pii_hash_key(settings, endpoints)
    secrets_ = [key, *hmac_pads(key)]
    for path in [*(PROJECT_DIR / "target").rglob("*"), *(PROJECT_DIR / "logs").rglob("*")]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(secret in text for secret in secrets_), f"key material in {path}"
    exported = haven(
        "env", home=haven_home, env={"HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database}
    )
    assert exported.returncode == 0 and "HAVEN_DBT_DATABASE" in exported.stdout
    assert not any(secret in exported.stdout for secret in secrets_)
    with psycopg.connect(endpoints.warehouse_url) as conn:
        statements = " ".join(
            row[0] for row in conn.execute("select query from pg_stat_statements")
        )
    assert "haven_private" in statements, "the masking read the key from its table"
    assert not any(secret in statements for secret in secrets_)
    for role in (ANALYST, MCP):
        assert not can_read(endpoints, role, "haven_private.pii_key")


def fingerprint(
    endpoints: Endpoints, relation: str, key: str, columns: list[str] | None = None
) -> object:
    schema, table = relation.split(".")
    with psycopg.connect(endpoints.warehouse_url) as conn:
        if columns is None:
            columns = [
                row[0]
                for row in conn.execute(
                    "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
                    " order by ordinal_position",
                    (schema, table),
                )
            ]
        return table_fingerprint(conn, schema, table, columns, key=key)


def test_incremental_build_after_a_tick_equals_a_full_refresh(warehouse) -> None:
    settings, endpoints, _ = warehouse
    with psycopg.connect(endpoints.warehouse_url) as conn:
        as_of_dates = [row[0] for row in conn.execute("select as_of_date from ml.ml_feature_dates")]
    features_before = fingerprint_features(endpoints, as_of_dates)

    simulator.tick(endpoints, days=2)
    assert not ingest(settings, endpoints).failed
    incremental = build(settings, endpoints)
    assert incremental.success, [(node.name, node.message) for node in incremental.failures]
    after_incremental = {
        "analytics.fct_orders": fingerprint(endpoints, "analytics.fct_orders", "order_id"),
        "analytics.fct_order_items": fingerprint(
            endpoints, "analytics.fct_order_items", "order_item_id"
        ),
    }
    full = build(settings, endpoints, select="fct_orders fct_order_items", full_refresh=True)
    assert full.success
    after_full = {
        "analytics.fct_orders": fingerprint(endpoints, "analytics.fct_orders", "order_id"),
        "analytics.fct_order_items": fingerprint(
            endpoints, "analytics.fct_order_items", "order_item_id"
        ),
    }
    assert after_incremental == after_full

    # no leakage: two more days of events change no feature as of a date that existed before
    features_after = fingerprint_features(endpoints, as_of_dates)
    shared = set(features_before) & set(features_after)
    assert shared, "feature dates overlap between the two builds"
    assert {day: features_before[day] for day in shared} == {
        day: features_after[day] for day in shared
    }


def fingerprint_features(endpoints: Endpoints, as_of_dates: list[object]) -> dict[object, object]:
    with psycopg.connect(endpoints.warehouse_url) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'ml' and table_name = 'customer_features' order by ordinal_position"
            )
        ]
        present = {
            row[0] for row in conn.execute("select distinct as_of_date from ml.customer_features")
        }
        return {
            day: table_fingerprint(
                conn,
                "ml",
                "customer_features",
                columns,
                key="customer_id",
                where=sql.SQL("as_of_date = {}").format(sql.Literal(day)),
            )
            for day in as_of_dates
            if day in present
        }


def test_a_failing_test_fails_the_build_and_is_named(warehouse, haven, haven_home) -> None:
    settings, endpoints, _ = warehouse
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute(
            # as a load would: a new load id, so the incremental staging model sees the change
            "update raw_app.listings set item_condition = 'broken',"
            " _dlt_load_id = extract(epoch from clock_timestamp())::text"
            " where id = (select min(id) from raw_app.listings where _haven_deleted_at is null and title is not null)"
        )
    try:
        result = haven(
            "build",
            "--select",
            "stg_app__listings",
            home=haven_home,
            env={
                "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
                "HAVEN_SOURCE_DATABASE": settings.source_database,
            },
        )
        assert result.returncode == 1
        assert "accepted_values_stg_app__listings_item_condition" in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    finally:
        with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
            conn.execute(
                "update raw_app.listings set item_condition = 'good',"
                " _dlt_load_id = extract(epoch from clock_timestamp())::text"
                " where item_condition = 'broken'"
            )
        assert build(settings, endpoints, select="stg_app__listings").success


def test_a_failed_reconciliation_says_what_it_found_and_what_to_run(
    warehouse, haven, haven_home
) -> None:
    """A staged row raw no longer holds (a ghost, as a full refresh that lost a deletion left
    them): the build fails naming the table, how many rows more, and the command that repairs."""
    settings, endpoints, _ = warehouse
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute(
            "create table public.ghost as select * from raw_app.listings where id ="
            " (select min(listing_id) from staging.stg_app__listings)"
        )
        conn.execute("delete from raw_app.listings where id = (select id from public.ghost)")
    try:
        result = haven(
            "build",
            "--select",
            STAGED_TEST,
            home=haven_home,
            env={
                "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
                "HAVEN_SOURCE_DATABASE": settings.source_database,
            },
        )
        error = " ".join((result.stdout + result.stderr).split("error:")[-1].split())
        assert result.returncode == 1, result.stdout
        assert "(listings: 1 more)" in error and "`haven run --full-refresh`" in error, error
        assert "Traceback" not in result.stderr
    finally:
        with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
            conn.execute("insert into raw_app.listings select * from public.ghost")
            conn.execute("drop table public.ghost")
    assert build(settings, endpoints, select=STAGED_TEST).success


def test_docs_generate(warehouse) -> None:
    settings, endpoints, _ = warehouse
    outcome = run_dbt(["docs", *dbt_args("generate")], dbt_environment(settings, endpoints))
    assert outcome.success
    catalog = (settings.dbt_target_dir / "catalog.json").read_text()
    assert "fct_orders" in catalog and "customer_features" in catalog


def test_sqlfluff_lint_passes(warehouse) -> None:
    """sqlfluff renders each model through dbt, against a database with no models in it, so
    every model renders as its first (full) build whatever state the warehouse is in."""
    settings, endpoints, _ = warehouse
    with psycopg.connect(endpoints.warehouse_url, dbname="postgres", autocommit=True) as conn:
        conn.execute("drop database if exists lint_empty")
        conn.execute("create database lint_empty")
    environment = {
        **os.environ,
        **dbt_environment(settings, endpoints),
        "HAVEN_DBT_DATABASE": "lint_empty",
    }
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "sqlfluff"),
            "lint",
            "models",
            "tests",
            "--processes",
            "2",
            "--nocolor",
        ],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
