"""Incremental builds equal full rebuilds: after every tick (new rows, updates, late commits, hard
deletes, defects, a row fixed and a row broken in the source) each relation the transforms build
equals a full refresh of the same raw data, and each snapshot holds the history whole-table
snapshots record. The reference is a second database on the same server with its own history."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from haven.settings import Settings
from haven.source import simulator
from haven.transform.changes import (
    UNIT_TESTS,
    below,
    build_if_changed,
    plan_build,
    project_hash,
)
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
from ingestion.pipeline import PIPELINE_NAME, ingest
from tests.python.conftest import haven_environment, settings_for
from tests.python.test_ingest import column_type
from tests.python.test_ingest_recovery import PHASES, kill_at

REFERENCE = "incremental_reference"
TICKS = ({"days": 1}, {"days": 1}, {"hours": 1}, {"hours": 1}, {"days": 1})
"""Days, and hours: the first hour of a day opens a seasonal category, the second changes no
category (so the run leaves the models below categories alone)."""
CATEGORY_MODELS = {"base_app__categories", "stg_app__categories", "dim_categories"}
"""The models below raw categories and no other raw table."""


def run_build(settings: Settings, endpoints: Endpoints) -> DbtOutcome:
    """A run's build: the part of the project below the raw tables that changed since the last
    complete build, recorded."""
    outcome = build_if_changed(settings, endpoints, full_refresh=False, variables=build_variables())
    assert outcome is not None, "raw changed, so the run builds"
    assert outcome.success, [(node.name, node.message) for node in outcome.failures]
    return outcome


def rows_with_recorded_keys(endpoints: Endpoints, model: str, key: str = "order_id") -> int:
    """Rows of an analytics model whose key its last run recorded as written."""
    with psycopg.connect(endpoints.warehouse_url) as conn:
        return conn.execute(
            f"select count(*) from analytics.{model}"  # noqa: S608 (fixed names)
            f" where {key} in (select {key} from ops.written__{model})"
        ).fetchone()[0]


def assert_tests_read_the_recorded_keys(settings: Settings) -> None:
    """The run's tests of an incremental model read the rows whose keys its run recorded (by
    the model's index), and only a test that compares rows also reads the rows sharing a value
    with them (macros/changes.sql, postgres__get_where_subquery)."""
    results = json.loads((settings.dbt_target_dir / "run_results.json").read_text())
    compiled = {
        result["unique_id"].split(".")[2]: result.get("compiled_code") or ""
        for result in results["results"]
        if result["unique_id"].startswith("test.")
    }
    recorded = f'(order_id) in (select order_id from "{settings.warehouse_database}"."ops"."written__fct_orders")'
    sharing = f'or order_id in (select order_id from "{settings.warehouse_database}"."analytics"."fct_orders"'
    assert recorded in compiled["not_null_fct_orders_order_id"]
    assert sharing not in compiled["not_null_fct_orders_order_id"]
    assert recorded in compiled["unique_fct_orders_order_id"]
    assert sharing in compiled["unique_fct_orders_order_id"]


@pytest.fixture(scope="module")
def warehouse(haven_home: Path) -> tuple[Settings, Endpoints]:
    settings = settings_for(haven_home, "incremental")
    endpoints = up(settings)
    simulator.init(endpoints, scale=0.02, seed=11, defect_rate=0.02, replace=True)
    assert not ingest(settings, endpoints, full_refresh=True).failed
    outcome = build_if_changed(settings, endpoints, full_refresh=True, variables={})
    assert outcome is not None and outcome.success
    assert "unit_test" in {node.resource_type for node in outcome.nodes}
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
    for day, step in enumerate(TICKS, start=1):
        simulator.tick(endpoints, **step)
        if day == 2:
            fixed, broken = fix_and_break_a_customer(endpoints)
        assert not ingest(settings, endpoints).failed
        incremental = run_build(settings, endpoints)
        inserted = {node.name: node.rows_affected for node in incremental.nodes}
        if day == 2:
            quarantined = quarantined_customers(endpoints)
            assert fixed not in quarantined and broken in quarantined
        # the complete build of the same project files ran the unit tests (the fixture's)
        assert "unit_test" not in {node.resource_type for node in incremental.nodes}
        assert_tests_read_the_recorded_keys(settings)
        if day == 1:
            # the source starts on the first of a month: that day is a new as-of date, which
            # the features compute for everyone, and their other dates for the change set alone
            with psycopg.connect(endpoints.warehouse_url) as conn:
                (stored, dates, new_date) = conn.execute(
                    "select count(*), count(distinct as_of_date),"
                    " count(*) filter (where as_of_date = %s) from ml.customer_features",
                    (simulator.DEFAULT_ANCHOR.date(),),
                ).fetchone()
            assert dates == 12 and new_date > 0
            assert new_date <= inserted["customer_features"] < stored / 4, inserted
        if day == 4:
            # an hour that changed no category: the models below categories alone do not run
            assert not CATEGORY_MODELS & set(inserted), sorted(CATEGORY_MODELS & set(inserted))
            assert "dim_listings" in inserted and "fct_orders" in inserted
        else:
            assert set(inserted) >= CATEGORY_MODELS, f"tick {day}: {step}"

        # every model rebuilt from raw in the reference; the history compared over whole tables
        assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == [], (
            f"after tick {day}: {step}"
        )
        # the rebuild's artifacts are its own: target/ still holds the incremental build's
        results = {
            result.unique_id: result.rows_affected
            for result in read_run_results(settings.dbt_target_dir)
        }
        assert results["model.clutter_haven.fct_orders"] == inserted["fct_orders"]
        # dbt's count is the rows the strategy inserted: every row whose key it recorded
        assert inserted["fct_orders"] == rows_with_recorded_keys(endpoints, "fct_orders")
        assert (settings.dbt_target_dir / REFERENCE / "run_results.json").exists()
        # the incremental build rewrote the orders that changed, not all of them
        with psycopg.connect(endpoints.warehouse_url) as conn:
            orders = conn.execute("select count(*) from analytics.fct_orders").fetchone()[0]
        assert 0 < inserted["fct_orders"] < orders / 2


def test_a_run_builds_below_the_raw_tables_that_changed_and_everything_when_the_project_did(
    warehouse,
) -> None:
    """After the ticks nothing is left to build; one category marked changed in raw gives the
    part below raw categories (no order model runs), and it is built and tested; the nightly
    run, a full refresh, another reporting time zone or changed project files build it all."""
    settings, endpoints = warehouse
    environment = dbt_environment(settings, endpoints)
    project = project_hash(environment)
    incremental = build_variables()
    with psycopg.connect(endpoints.warehouse_url) as conn:
        assert plan_build(conn, project, incremental) is None
        with conn.cursor() as cursor:
            cursor.execute("select min(id) from raw_app.categories")
            (category,) = cursor.fetchone()
    bump_load_id(endpoints, "categories", category)
    with psycopg.connect(endpoints.warehouse_url) as conn:
        plan = plan_build(conn, project, incremental)
        assert plan is not None and plan.select == "source:app.categories+"
        assert plan.exclude == "resource_type:unit_test"
        for everything in (
            plan_build(conn, project, {}),
            plan_build(conn, project, incremental, full_refresh=True),
            plan_build(
                conn,
                project_hash({**environment, "HAVEN_REPORTING_TIME_ZONE": "Asia/Tokyo"}),
                incremental,
            ),
            plan_build(conn, "another project", incremental),
        ):
            assert everything is not None and everything.select is None
    built = run_build(settings, endpoints)
    names = {node.name for node in built.nodes}
    assert CATEGORY_MODELS | {"dim_listings", "quarantined_rows"} <= names
    assert not names & {"fct_orders", "stg_app__orders", "customer_features"}, sorted(names)
    assert any(node.resource_type == "test" for node in built.nodes)
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []

    # an order loaded again unchanged: its fact row is rewritten, but its day's sales, its
    # customer's features and scorecards come out as they were, so none of their rows is
    with psycopg.connect(endpoints.warehouse_url) as conn:
        (order,) = conn.execute("select max(order_id) from analytics.fct_orders").fetchone()
    bump_load_id(endpoints, "orders", order)
    written = {node.name: node.rows_affected for node in run_build(settings, endpoints).nodes}
    assert written["fct_orders"] == 1
    for model in ("agg_daily_sales", "customer_features", "agg_vendor_scorecards"):
        assert written[model] == 0, (model, written[model])
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []


HISTORIES = {
    "customers": ("snp_customers", "customer_id"),
    "listings": ("snp_listings", "listing_id"),
}


def assert_histories_record_each_deletion_once(endpoints: Endpoints) -> None:
    """Each history closes every key the simulator deleted (its own record, not the pipeline's
    output) with exactly one deletion version, the current one; any other key whose current
    version is a deletion is one quarantine holds. Deleted categories leave staging."""
    deleted = simulator.deletions(endpoints)
    assert deleted.get("categories") and deleted.get("listings"), deleted
    with psycopg.connect(endpoints.warehouse_url) as conn:
        quarantined = {
            (table, int(key))
            for table, key in conn.execute(
                "select source_table, source_key from quarantine.quarantined_rows"
            )
        }
        for table, (history, key) in HISTORIES.items():
            rows = conn.execute(
                f"select {key}, count(*) filter (where dbt_is_deleted = 'True'),"
                " bool_or(dbt_is_deleted = 'True' and dbt_valid_to is null),"
                " count(*) filter (where dbt_valid_to is null)"
                f" from snapshots.{history} group by {key}"
            ).fetchall()
            recorded = {row[0] for row in rows}
            expected = deleted.get(table, set()) & recorded
            closed = {k for k, deletions, current, open_ in rows if current and open_ == 1}
            once = {k for k, deletions, *_ in rows if deletions == 1}
            assert expected <= closed & once, (
                f"{history}: deletions not recorded once: {sorted(expected - (closed & once))[:5]}"
            )
            others = {k for k in closed - expected if (table, k) not in quarantined}
            assert not others, (
                f"{history}: closed keys the source did not delete: {sorted(others)[:5]}"
            )
        staged = {
            row[0] for row in conn.execute("select category_id from staging.stg_app__categories")
        }
        assert not staged & deleted["categories"], "staging keeps deleted categories"


def test_a_full_refresh_of_raw_keeps_the_deletions_the_warehouse_has_not_seen(warehouse) -> None:
    """A tick that hard-deletes (listings, customers, categories), then raw replaced from the
    source: the deletions it had not seen survive as marks, and the next incremental run closes
    each history once and equals a full rebuild. Then again with the refresh killed while it
    loads, and a plain ingest after it."""
    settings, endpoints = warehouse
    simulator.tick(endpoints, days=2)
    report = ingest(settings, endpoints, full_refresh=True)
    assert not report.failed
    assert sum(row.kept_deleted for row in report.tables.values()) > 0
    run_build(settings, endpoints)
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []
    assert_histories_record_each_deletion_once(endpoints)

    env = haven_environment(
        {
            "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
            "HAVEN_SOURCE_DATABASE": settings.source_database,
        },
        settings.home,
    )
    for _attempt in range(5):
        simulator.tick(endpoints, days=2)
        if kill_at(
            PHASES["during load"], settings.dlt_dir / PIPELINE_NAME, ["--full-refresh"], env
        ):
            break
        assert not ingest(settings, endpoints).failed  # it finished first: tick and try again
    else:
        pytest.fail("haven ingest --full-refresh was never caught while loading")
    assert not ingest(settings, endpoints).failed
    run_build(settings, endpoints)
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []
    assert_histories_record_each_deletion_once(endpoints)


def test_a_column_added_in_the_source_keeps_the_models_and_histories_equal(warehouse) -> None:
    """A migration adds a column with a default (every row gets it, no updated_at moves): the
    ingest loads listings again whole, its deletions kept; the incremental run equals a full
    rebuild and each history still records each deletion once."""
    settings, endpoints = warehouse
    simulator.tick(endpoints, days=2)
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table listings add column shelf text not null default 'A'")
    report = ingest(settings, endpoints)
    assert not report.failed and report.tables["listings"].resynced
    assert report.tables["listings"].kept_deleted > 0
    run_build(settings, endpoints)
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []
    assert_histories_record_each_deletion_once(endpoints)


def test_a_widened_column_and_a_repaired_row_flow_down_equal_to_a_full_rebuild(warehouse) -> None:
    """The application widens vendors.commission_rate and backfills an old order without moving
    updated_at. The ingest widens raw's column in place and reads the order again; the
    incremental build widens staging and the history in place (no full refresh), and every
    table and history equals a full rebuild of the same raw."""
    settings, endpoints = warehouse
    simulator.tick(endpoints, days=1)
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as source:
        source.execute("alter table vendors alter column commission_rate type numeric(7, 5)")
        source.execute(
            "update vendors set commission_rate = 0.12345, updated_at = now()"
            " where id = (select min(id) from vendors)"
        )
        (order,) = source.execute(
            "update orders set shipping_cents = shipping_cents + 5, total_cents = total_cents + 5"
            " where id = (select id from orders order by updated_at, id limit 1) returning id"
        ).fetchone()
    report = ingest(settings, endpoints, values="all", repair=True)
    assert not report.failed and report.tables["vendors"].widened
    assert not report.tables["vendors"].resynced
    repaired = report.tables["orders"].values
    assert repaired is not None and repaired.repaired == 1 and not repaired.differing
    run_build(settings, endpoints)
    for schema, table in (("raw_app", "vendors"), ("staging", "stg_app__vendors")):
        assert column_type(endpoints, schema, table, "commission_rate") == "numeric(7,5)", table
    with psycopg.connect(endpoints.warehouse_url) as conn:
        assert conn.execute(
            "select count(*) from snapshots.snp_vendors where commission_rate = 0.12345"
            " and dbt_valid_to is null"
        ).fetchone() == (1,), "the history's current version holds the value with five digits"
        assert (
            conn.execute(
                "select total_cents from staging.stg_app__orders where order_id = %s", (order,)
            ).fetchone()
            == conn.execute(
                "select total_cents from raw_app.orders where id = %s", (order,)
            ).fetchone()
        )
    assert differences_from_full_rebuild(settings, endpoints, REFERENCE) == []
    assert_histories_record_each_deletion_once(endpoints)


def bump_load_id(endpoints: Endpoints, table: str, key: int) -> None:
    """Mark a raw row as written again, as a reload by the loader would."""
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute(
            f"update raw_app.{table} set _dlt_load_id = extract(epoch from clock_timestamp())::text"
            " where id = %s",
            (key,),
        )


def changed_tests_build(
    settings: Settings, endpoints: Endpoints, table: str | None = None, **options: object
) -> DbtOutcome:
    """`dbt build` with a run's vars: of the part below the raw ``table``, as a run that loaded
    only that table builds it (``plan_build``), or of everything."""
    return run_dbt(
        dbt_args(
            "build",
            select=below([table]) if table else None,
            exclude=UNIT_TESTS if table else None,
            variables=build_variables(**options),  # type: ignore[arg-type]
        ),
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
    assert changed_tests_build(settings, endpoints, "payments").success
    nightly = changed_tests_build(settings, endpoints, full_tests=True)
    assert [node.name for node in nightly.failures] == [PAYMENT_ORPHAN_TEST]
    bump_load_id(endpoints, "payments", old)
    assert changed_tests_build(settings, endpoints, "payments").success

    # an orphan the incremental run writes: its test fails the run
    with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
        conn.execute("update raw_app.payments set order_id = -1 where id = %s", (new,))
    bump_load_id(endpoints, "payments", new)
    try:
        failed = changed_tests_build(settings, endpoints, "payments")
        assert [node.name for node in failed.failures] == [PAYMENT_ORPHAN_TEST]
    finally:
        with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
            conn.execute(
                "update raw_app.payments set order_id = %s where id = %s", (new_order, new)
            )
        bump_load_id(endpoints, "payments", new)
    assert changed_tests_build(settings, endpoints, "payments").success
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
        failed = changed_tests_build(settings, endpoints, "customers")
        assert not failed.success
        assert "stg_app__customers" in [node.name for node in failed.failures]
    finally:
        with psycopg.connect(endpoints.warehouse_url, autocommit=True) as conn:
            conn.execute(
                "delete from raw_app.customers where ctid = (select max(ctid) from raw_app.customers where id = %s)",
                (customer,),
            )
        bump_load_id(endpoints, "customers", customer)
    assert changed_tests_build(settings, endpoints, "customers").success
