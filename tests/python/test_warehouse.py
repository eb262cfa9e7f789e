"""`haven up` and the role boundaries, against the real embedded server; clear errors for bad URLs."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from haven.settings import Settings
from haven.warehouse.endpoints import (
    ANALYST,
    LOADER,
    MCP,
    ML,
    TRANSFORMER,
    Endpoints,
    apply_roles,
    up,
)

ALL_ROLES = (LOADER, TRANSFORMER, ANALYST, ML, MCP)


@pytest.fixture(scope="module")
def warehouse(module_env: tuple[Settings, Endpoints]) -> Endpoints:
    _, endpoints = module_env
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute("create table if not exists raw_app.secret_source_copy (id int, email text)")
        conn.execute("alter table raw_app.secret_source_copy owner to haven_loader")
        conn.execute("create table if not exists analytics.fct_example (id int)")
        conn.execute("alter table analytics.fct_example owner to haven_transformer")
        conn.execute("create table if not exists ml.customer_features (id int)")
        conn.execute("alter table ml.customer_features owner to haven_transformer")
    # grants on tables created after the roles were applied come from the default privileges or a re-apply
    apply_roles(endpoints)
    return endpoints


def can_select(endpoints: Endpoints, role: str, relation: str) -> bool:
    with psycopg.connect(endpoints.role_url(role), autocommit=True) as conn:
        try:
            conn.execute(f"select * from {relation} limit 1")
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def test_no_role_is_superuser(warehouse: Endpoints) -> None:
    with psycopg.connect(warehouse.warehouse_url) as conn:
        rows = conn.execute(
            "select rolname, rolsuper, rolcreaterole, rolcanlogin from pg_roles where rolname = any(%s)",
            (list(ALL_ROLES),),
        ).fetchall()
    assert {row[0] for row in rows} == set(ALL_ROLES)
    assert all(
        not superuser and not createrole and login for _, superuser, createrole, login in rows
    )


@pytest.mark.parametrize(
    ("role", "relation", "allowed"),
    [
        (TRANSFORMER, "raw_app.secret_source_copy", True),
        (ANALYST, "raw_app.secret_source_copy", False),
        (ML, "raw_app.secret_source_copy", False),
        (MCP, "raw_app.secret_source_copy", False),
        (ANALYST, "analytics.fct_example", True),
        (ANALYST, "ml.customer_features", False),
        (ML, "ml.customer_features", True),
        (ML, "analytics.fct_example", False),
        (MCP, "analytics.fct_example", True),
        (MCP, "ml.customer_features", True),
        (LOADER, "analytics.fct_example", False),
    ],
)
def test_role_boundaries(warehouse: Endpoints, role: str, relation: str, allowed: bool) -> None:
    assert can_select(warehouse, role, relation) is allowed


def test_only_the_loader_writes_raw(warehouse: Endpoints) -> None:
    for role in (TRANSFORMER, ANALYST, MCP):
        with (
            psycopg.connect(warehouse.role_url(role), autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("insert into raw_app.secret_source_copy values (1, 'x@example.com')")
    with psycopg.connect(warehouse.role_url(LOADER), autocommit=True) as conn:
        conn.execute("insert into raw_app.secret_source_copy values (1, 'x@example.com')")


def test_roles_are_idempotent(warehouse: Endpoints) -> None:
    apply_roles(warehouse)
    apply_roles(warehouse)
    assert can_select(warehouse, ANALYST, "analytics.fct_example")


def test_roles_are_applied_by_commands_starting_together(warehouse: Endpoints) -> None:
    """Two haven commands starting at once both set up the roles (PostgreSQL refuses two
    concurrent updates of one role's row: "tuple concurrently updated")."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: apply_roles(warehouse), range(12)))
    assert can_select(warehouse, ANALYST, "analytics.fct_example")


def test_up_json_prints_one_line(haven, haven_home) -> None:
    result = haven("up", "--json", home=haven_home)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    urls = json.loads(lines[0])
    assert set(urls) == {
        "warehouse_url",
        "source_url",
        "prefect_api_url",
        "problems",
        "warnings",
    }
    assert urls["problems"] == [] and urls["warnings"] == [], "the embedded server lacks nothing"
    with psycopg.connect(urls["warehouse_url"]) as conn:
        assert conn.execute("select current_database()").fetchone() == ("haven",)
    assert httpx.get(f"{urls['prefect_api_url']}/health", timeout=10).json() is True
    again = haven("up", "--json", home=haven_home)
    assert json.loads(again.stdout) == urls, "a second `haven up` reuses both servers"
    pool = httpx.get(f"{urls['prefect_api_url']}/work_pools/haven-local", timeout=10).json()
    assert pool["type"] == "process"
    status = json.loads(haven("status", "--json", home=haven_home).stdout)
    assert status["prefect"]["ui_url"] == urls["prefect_api_url"].removesuffix("/api")
    exported = haven("env", home=haven_home).stdout
    assert f"export PREFECT_API_URL={urls['prefect_api_url']}" in exported


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://localhost/warehouse", "must be a postgresql:// URL"),
        ("postgresql://127.0.0.1:1/warehouse", "Cannot connect to the warehouse"),
        ("postgresql://127.0.0.1:5432", "must name a database"),
    ],
)
def test_bad_warehouse_url_is_one_clear_sentence(
    haven, haven_home, url: str, expected: str
) -> None:
    result = haven("up", env={"HAVEN_WAREHOUSE_URL": url, "HAVEN_SOURCE_URL": url}, home=haven_home)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr


def test_password_never_printed(haven, haven_home) -> None:
    url = "postgresql://someone:hunter2@127.0.0.1:1/warehouse"
    result = haven("up", env={"HAVEN_WAREHOUSE_URL": url, "HAVEN_SOURCE_URL": url}, home=haven_home)
    assert result.returncode == 1
    assert "hunter2" not in result.stderr + result.stdout
    assert "***" in result.stderr


def test_configured_servers_are_used_as_they_are(
    module_env: tuple[Settings, Endpoints], haven, haven_home
) -> None:
    """With the URLs set nothing is started: the same code runs against the given servers."""
    _, endpoints = module_env
    prefect = json.loads(haven("up", "--json", home=haven_home).stdout)["prefect_api_url"]
    result = haven(
        "up",
        "--json",
        env={
            "HAVEN_WAREHOUSE_URL": endpoints.warehouse_url,
            "HAVEN_SOURCE_URL": endpoints.source_admin_url,
            "PREFECT_API_URL": prefect,
            "HAVEN_PII_HASH_KEY": "a-configured-warehouse-sets-its-own",
        },
        home=haven_home / "unused",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["warehouse_url"] == endpoints.warehouse_url
    assert json.loads(result.stdout)["prefect_api_url"] == prefect
    assert not (haven_home / "unused" / "pg").exists(), "no embedded server was created"
    assert not (haven_home / "unused" / "prefect").exists(), "no Prefect server was started"


def test_up_records_runs_kept_while_the_warehouse_was_down(haven, haven_home) -> None:
    from datetime import UTC, datetime

    from haven.ops.history import RunRecord, keep_pending

    settings = Settings(home=haven_home, warehouse_url=None, source_url=None)
    run = RunRecord(started_at=datetime.now(UTC), status="failed", error="the warehouse was down")
    keep_pending(run, settings.pending_runs_dir)
    result = haven("up", home=haven_home)
    assert result.returncode == 0, result.stderr
    assert "recorded 1 run(s)" in result.stderr
    with psycopg.connect(up(settings).warehouse_url) as conn:
        row = conn.execute(
            "select status from ops.runs where run_id = %s", (run.run_id,)
        ).fetchone()
    assert row == ("failed",)
    assert not list(settings.pending_runs_dir.glob("*.pickle"))
