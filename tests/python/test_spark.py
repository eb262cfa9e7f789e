"""The Spark engine on a real loopback cluster: `haven up --engine spark` starts a master, two
workers and a Thrift server, and a query runs on executors on both workers; the lake holds the
newest version of every raw row; plain `dbt build --target spark` builds every model and
every table equals PostgreSQL's; after a tick with hard deletes `haven run --engine spark`
builds incrementally while a worker is killed (every unit and data test passes on Spark),
rewriting only the key partitions of changed keys, and every table equals PostgreSQL's
incremental build again; the next `haven up` replaces the worker (the master and the Thrift
server keep running); `haven down` stops every process."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from haven.settings import PROJECT_DIR, Settings
from haven.transform.engines import BUILD_TIMES, relation_differences
from haven.warehouse.endpoints import up as warehouse_up
from haven.warehouse.spark import SparkEndpoint
from tests.python.conftest import HAVEN, haven_environment, run_haven

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None and not os.environ.get("JAVA_HOME"),
    reason="Java is not installed (`make test` installs Debian's openjdk-17 as root)",
)


@pytest.fixture(scope="module")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("spark-home")
    yield home
    stopped = run_haven("down", home=home)
    left = [
        pid
        for pid in cluster_state(home)["pids"].values()
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    for pid in left:  # never leave a cluster running for the tests that follow
        os.killpg(pid, signal.SIGKILL)
    assert stopped.returncode == 0 and not left, stopped.stdout + stopped.stderr


def cluster_state(home: Path) -> dict:
    return json.loads((home / "spark" / "cluster.json").read_text())


def master_view(home: Path) -> dict:
    port = cluster_state(home)["ports"]["master_ui"]
    return httpx.get(f"http://127.0.0.1:{port}/json/", timeout=5).json()


def up(home: Path) -> str:
    result = run_haven("up", "--engine", "spark", "--json", home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])["spark_thrift"]


def test_cluster_runs_queries_on_both_workers(spark_home: Path) -> None:
    from pyhive import hive

    host, port = up(spark_home).split(":")
    with closing(hive.connect(host=host, port=int(port), username="haven")) as conn:
        cursor = conn.cursor()
        cursor.execute("select count(*), sum(id) from range(0, 1000000, 1, 8)")
        assert cursor.fetchall() == [(1_000_000, 499_999_500_000)]
    view = master_view(spark_home)
    alive = [worker for worker in view["workers"] if worker["state"] == "ALIVE"]
    assert len(alive) == 2 and all(worker["coresused"] == 1 for worker in alive), (
        "the Thrift server's executors run on both workers"
    )
    assert [app["name"] for app in view["activeapps"]] == ["haven-thrift"]


def exported(home: Path) -> dict[str, str]:
    """The variables of a shell set up as a user would: eval "$(haven env)"."""
    printed = run_haven("env", home=home)
    variables = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in printed.stdout.splitlines()
        if line.startswith("export ")
    )
    assert "HAVEN_SPARK_PORT" in variables, printed.stdout
    return variables


def plain_dbt(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Plain `dbt` against the Spark target, in a shell set up with `haven env`."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "--no-use-colors", *args, "--target", "spark"],
        capture_output=True,
        text=True,
        env=haven_environment(exported(home), home),
        cwd=PROJECT_DIR,
        timeout=900,
    )


def raw_versions(home: Path, thrift: str, table: str) -> tuple[set, set, int]:
    """Each key's version in PostgreSQL's raw, in Spark's raw_app (the newest version per key of
    the lake), and the number of versions the lake holds."""
    from pyhive import hive

    appended_only = table == "order_status_events"  # never deleted: no deletion mark
    deleted = "false" if appended_only else "_haven_deleted_at is not null"
    endpoints = warehouse_up(Settings(home=home))
    with psycopg.connect(endpoints.warehouse_url) as conn:
        postgres = set(
            conn.execute(f"select id, {deleted}, _dlt_load_id from raw_app.{table}").fetchall()
        )
    host, port = thrift.split(":")
    with closing(hive.connect(host=host, port=int(port), username="haven")) as conn:
        cursor = conn.cursor()
        cursor.execute(f"select id, {deleted}, _dlt_load_id from raw_app.{table}")
        lake = set(cursor.fetchall())
        cursor.execute(f"select count(*) from raw_app_log.{table}")
        (versions,) = cursor.fetchone()
    return postgres, lake, versions


STAGED_KEYS = {
    "categories": "category_id",
    "vendors": "vendor_id",
    "customers": "customer_id",
    "listings": "listing_id",
    "orders": "order_id",
    "order_items": "order_item_id",
    "payments": "payment_id",
    "shipments": "shipment_id",
    "refunds": "refund_id",
    "reviews": "review_id",
    "order_status_events": "order_status_event_id",
}

HISTORIES = {
    "snp_customers": "customer_id",
    "snp_vendors": "vendor_id",
    "snp_listings": "listing_id",
}

BUILT = [
    *(("staging", f"stg_app__{name}", [key]) for name, key in STAGED_KEYS.items()),
    ("quarantine", "quarantined_rows", ["source_table", "source_key"]),
    *(("snapshots", table, ["dbt_scd_id"]) for table in HISTORIES),
    ("analytics", "dim_customers_history", ["customer_version_id"]),
    *(
        ("analytics", table, [key])
        for table, key in {
            "dim_categories": "category_id",
            "dim_vendors": "vendor_id",
            "dim_listings": "listing_id",
            "dim_customers": "customer_id",
            "fct_orders": "order_id",
            "fct_order_items": "order_item_id",
            "fct_payments": "payment_id",
            "fct_refunds": "refund_id",
            "fct_shipments": "shipment_id",
            "fct_reviews": "review_id",
            "agg_vendor_scorecards": "vendor_id",
        }.items()
    ),
    ("analytics", "dim_dates", ["date_day"]),
    ("analytics", "agg_daily_sales", ["sale_date", "vendor_id", "category_id", "currency_code"]),
    ("analytics", "agg_daily_order_status", ["placed_date", "order_status", "currency_code"]),
    ("analytics", "agg_monthly_revenue", ["sale_month", "currency_code"]),
    ("analytics", "agg_customer_cohorts", ["cohort_month", "months_since_first_order"]),
    ("ml", "ml_feature_dates", ["as_of_date"]),
    ("ml", "customer_features", ["customer_id", "as_of_date"]),
    ("ml", "vendor_features", ["vendor_id", "as_of_date"]),
    ("ml", "training_customer_churn", ["customer_id", "as_of_date"]),
]
"""Every table and view the project builds, with its key."""


HISTORY_RELATIONS = {*HISTORIES, "dim_customers_history"}
"""Relations holding a history's build times (deletion records), compared without them."""


def partition_files(home: Path, schema: str, table: str) -> dict[str, set[str]]:
    """The parquet files in each key partition of a Spark table (a rewrite writes new files)."""
    folder = home / "spark" / "warehouse" / f"{schema}.db" / table
    return {
        partition.name: {file.name for file in partition.glob("*.parquet")}
        for partition in folder.glob("dbt_partition=*")
    }


def changed_partitions(thrift: str, table: str) -> set[str]:
    """The key partitions (as folder names) of the keys the lake's last load appended."""
    import yaml
    from pyhive import hive

    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    partitions = project["vars"]["spark_key_partitions"]
    host, port = thrift.split(":")
    with closing(hive.connect(host=host, port=int(port), username="haven")) as conn:
        cursor = conn.cursor()
        cursor.execute(
            f"select distinct pmod(xxhash64(cast(id as bigint)), {partitions})"
            f" from raw_app_log.{table} where _haven_appended_at ="
            f" (select max(_haven_appended_at) from raw_app_log.{table})"
        )
        return {f"dbt_partition={partition}" for (partition,) in cursor.fetchall()}


def engine_differences(home: Path, thrift: str, relations: list) -> list[str]:
    """Every relation's differences between the engines, three relations at a time (each
    comparison mostly waits on a query)."""
    host, port = thrift.split(":")
    endpoint = SparkEndpoint(host, int(port), local=True)
    warehouse_url = warehouse_up(Settings(home=home)).warehouse_url
    with ThreadPoolExecutor(max_workers=3) as pool:
        compared = pool.map(
            lambda relation: relation_differences(warehouse_url, endpoint, *relation), relations
        )
        return [difference for differences in compared for difference in differences]


def current_versions(home: Path, thrift: str, table: str, key: str) -> tuple[set, set]:
    """(key, updated_at, deleted, current) of every version, on PostgreSQL and on Spark."""
    from pyhive import hive

    query = (
        f"select {key}, cast(updated_at as date), dbt_is_deleted, dbt_valid_to is null"
        f" from snapshots.{table}"
    )
    with psycopg.connect(warehouse_up(Settings(home=home)).warehouse_url) as conn:
        postgres = {tuple(str(value) for value in row) for row in conn.execute(query)}
    host, port = thrift.split(":")
    with closing(hive.connect(host=host, port=int(port), username="haven")) as conn:
        cursor = conn.cursor()
        cursor.execute(query)
        spark = {tuple(str(value) for value in row) for row in cursor.fetchall()}
    return postgres, spark


def run_killing_a_worker(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `haven ARGS` and SIGKILL the cluster's second worker eight seconds after dbt starts
    building on Spark (dbt prints its thread count and target when it starts running nodes)."""
    process = subprocess.Popen(
        [HAVEN, *args],
        env=haven_environment(None, home),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: list[str] = []
    worker = cluster_state(home)["pids"]["worker-2"]
    killer = threading.Timer(8, os.kill, (worker, signal.SIGKILL))

    def kill_once_building() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            stdout.append(line)
            if "target='spark'" in line and not killer.is_alive() and not killer.finished.is_set():
                killer.start()

    reader = threading.Thread(target=kill_once_building)
    reader.start()
    stderr = process.stderr.read()  # type: ignore[union-attr]
    process.wait(timeout=900)
    reader.join()
    killer.join()
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(stdout), stderr)


@pytest.fixture(scope="module")
def built_on_both(spark_home: Path) -> str:
    """The source (SF 0.01) landed in the lake and in PostgreSQL's raw, and every model built on
    both engines: on Spark by plain `dbt build` in a shell set up with `haven env` (the models
    only: the data and unit tests run in the flow's build on Spark, in the incremental test), on
    PostgreSQL by `haven build`. The Thrift server's address."""
    thrift = up(spark_home)
    assert run_haven("source", "init", "--scale", "0.01", home=spark_home).returncode == 0
    first = run_haven("ingest", "--engine", "spark", home=spark_home)
    assert first.returncode == 0, first.stderr[-3000:]
    for table in ("orders", "reviews", "order_status_events"):
        postgres, lake, versions = raw_versions(spark_home, thrift, table)
        assert lake == postgres and versions == len(postgres), table
    built = plain_dbt(
        spark_home, "build", "--exclude", "resource_type:test", "resource_type:unit_test"
    )
    assert built.returncode == 0, built.stdout[-3000:]
    assert run_haven("build", home=spark_home).returncode == 0
    return thrift


def test_the_whole_project_builds_the_same_tables_on_both_engines(
    spark_home: Path, built_on_both: str
) -> None:
    """The equality test: every table and view the project builds, from staging and
    quarantine to the histories, marts and ML features, has the same rows on Spark as on
    PostgreSQL (counts and checksums over all columns, keyed)."""
    assert engine_differences(spark_home, built_on_both, BUILT) == []


def test_an_incremental_run_on_spark_while_a_worker_dies_equals_postgres(
    spark_home: Path, built_on_both: str
) -> None:
    """After a tick with hard deletes `haven run --engine spark` runs the flow incrementally
    while a worker dies (every unit and data test passes there, the source reconciles with
    Spark's tables); exactly the key partitions of the changed keys are rewritten, and every
    table equals PostgreSQL's incremental build again."""
    thrift = built_on_both
    # a customer closes their account, a review is deleted, a day of changes
    endpoints = warehouse_up(Settings(home=spark_home))
    with psycopg.connect(endpoints.source_admin_url, autocommit=True) as conn:
        (review,) = conn.execute(
            "delete from public.reviews where id = (select min(id) from public.reviews) returning id"
        ).fetchone()
        (customer,) = conn.execute(
            "delete from public.customers where id = (select min(id) from public.customers as c"
            " where not exists (select from public.orders as o where o.customer_id = c.id)"
            " and not exists (select from public.reviews as r where r.customer_id = c.id))"
            " returning id"
        ).fetchone()
    assert run_haven("source", "tick", home=spark_home).returncode == 0
    # in the shell plain dbt uses: haven env's HAVEN_SPARK_HOST is still the local cluster
    landed = run_haven("ingest", "--engine", "spark", env=exported(spark_home), home=spark_home)
    assert landed.returncode == 0, landed.stderr[-3000:]

    # the flow on Spark, incrementally, while a worker dies
    customers_before = partition_files(spark_home, "staging", "stg_app__customers")
    before = cluster_state(spark_home)["pids"]
    ran = run_killing_a_worker(spark_home, "run", "--engine", "spark")
    if ran.returncode != 0:  # failed: in one sentence, and a rerun succeeds
        assert ran.stderr.count("error: ") == 1, ran.stderr[-3000:]
        assert "Traceback" not in ran.stderr.split("error: ")[-1], ran.stderr[-3000:]
        rerun = run_haven("run", "--engine", "spark", home=spark_home, timeout=900)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "elt completed on spark" in (ran.stderr if ran.returncode == 0 else rerun.stderr)
    status = json.loads(run_haven("status", "--json", home=spark_home).stdout)
    assert status["runs"][0]["engine"] == "spark" and status["runs"][0]["tests_failed"] == 0
    assert status["runs"][0]["tests_passed"] > 100, "the data tests ran on Spark"
    manifest = Settings(home=spark_home).dbt_target_dir / "manifest.json"
    unit_tests = json.loads(manifest.read_text())["unit_tests"]
    with psycopg.connect(warehouse_up(Settings(home=spark_home)).warehouse_url) as conn:
        recorded = conn.execute(
            "select unique_id, status from ops.dbt_results"
            " where run_id = %s and resource_type = 'unit_test'",
            (status["runs"][0]["run_id"],),
        ).fetchall()
    assert dict(recorded) == dict.fromkeys(unit_tests, "pass"), "the unit tests passed on Spark"
    assert status["reconciliation"] and status["reconciliation_differences"] == []
    _, lake, _ = raw_versions(spark_home, thrift, "reviews")
    assert (review, True) in {(key, gone) for key, gone, _ in lake}, "the hard delete is recorded"

    customers_after = partition_files(spark_home, "staging", "stg_app__customers")
    rewritten = {
        partition
        for partition in customers_before.keys() | customers_after.keys()
        if customers_before.get(partition) != customers_after.get(partition)
    }
    assert rewritten == changed_partitions(thrift, "customers"), (
        "exactly the key partitions of the customers appended to the lake since are rewritten"
    )
    assert 0 < len(rewritten) < len(customers_before), "an incremental run, not a rebuild"

    assert run_haven("build", home=spark_home).returncode == 0
    assert (
        engine_differences(
            spark_home,
            thrift,
            [
                *(relation for relation in BUILT if relation[1] not in HISTORY_RELATIONS),
                *(
                    ("snapshots", table, [key, "updated_at", "dbt_is_deleted"], BUILD_TIMES)
                    for table, key in HISTORIES.items()
                ),
            ],
        )
        == []
    )
    for table, key in HISTORIES.items():
        postgres, spark = current_versions(spark_home, thrift, table, key)
        assert postgres == spark, table
    _, spark = current_versions(spark_home, thrift, "snp_customers", "customer_id")
    assert {(deleted, current) for key, _, deleted, current in spark if key == str(customer)} == {
        ("False", "False"),
        ("True", "True"),
    }, "the deleted customer's version is closed and a deletion record is current"

    # the flow's retry may already have replaced the lost worker; `haven up` does otherwise
    assert up(spark_home) == thrift, "the lost worker is replaced behind the same Thrift server"
    after = cluster_state(spark_home)["pids"]
    assert after["worker-2"] != before["worker-2"] and psutil.pid_exists(after["worker-2"])
    assert {name: after[name] for name in ("master", "thrift", "worker-1")} == {
        name: before[name] for name in ("master", "thrift", "worker-1")
    }, "the master, the Thrift server and the other worker kept running"
    status = json.loads(run_haven("status", "--json", home=spark_home).stdout)
    assert status["spark"] == {"thrift": thrift, "local": True}
    shown = plain_dbt(
        spark_home, "show", "--inline", "select count(*) as n from {{ ref('stg_app__customers') }}"
    )
    assert shown.returncode == 0, shown.stdout[-2000:]
    with psycopg.connect(warehouse_up(Settings(home=spark_home)).warehouse_url) as conn:
        (customers,) = conn.execute("select count(*) from staging.stg_app__customers").fetchone()
    cells = [line.strip("| ") for line in shown.stdout.splitlines() if line.startswith("|")]
    assert cells[-1] == str(customers), shown.stdout[-2000:]


def test_down_stops_everything(spark_home: Path) -> None:
    up(spark_home)
    pids = cluster_state(spark_home)["pids"]
    stopped = run_haven("down", home=spark_home)
    assert "local Spark cluster stopped" in stopped.stderr
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        for pid in pids.values()
    )
