"""The elt flow end to end on the session's Prefect server, against the embedded warehouse:
a clean run records everything, a transient fault is retried, a failing data test is not,
two runs never overlap (and the lock's connection, dropped, is tried again), alerts reach a
webhook, deployments match prefect.yaml."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest

from haven.errors import DataTestFailure
from haven.ops import alerts
from haven.ops.lock import RunInProgress, exclusive_run
from haven.ops.status import collect
from haven.settings import get_settings
from haven.source import simulator
from haven.warehouse.endpoints import TRANSFORMER, Endpoints, embedded_server, up
from tests.python.conftest import settings_for


@pytest.fixture(scope="module")
def flow_env(haven_home: Path, prefect_client: str) -> Iterator[Endpoints]:
    """Point get_settings() (which the flow reads) at this module's databases."""
    patcher = pytest.MonkeyPatch()
    settings = settings_for(haven_home, "flow")
    for key, value in {
        "HAVEN_HOME": str(haven_home),
        "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
        "HAVEN_SOURCE_DATABASE": settings.source_database,
    }.items():
        patcher.setenv(key, value)
    for key in ("HAVEN_WAREHOUSE_URL", "HAVEN_SOURCE_URL", "HAVEN_ALERT_WEBHOOK"):
        patcher.delenv(key, raising=False)
    get_settings.cache_clear()
    endpoints = up(get_settings())
    simulator.init(endpoints, scale=0.02, seed=3, replace=True)
    yield endpoints
    patcher.undo()
    get_settings.cache_clear()


def latest_run(endpoints: Endpoints) -> dict[str, object]:
    with psycopg.connect(endpoints.warehouse_url) as conn:
        conn.row_factory = psycopg.rows.dict_row  # type: ignore[assignment]
        row = conn.execute("select * from ops.runs order by started_at desc limit 1").fetchone()
        assert row is not None
        return dict(row)


def attempts(endpoints: Endpoints, run_id: object, task_name: str) -> int:
    with psycopg.connect(endpoints.warehouse_url) as conn:
        row = conn.execute(
            "select attempts from ops.run_tasks where run_id = %s and task_name = %s",
            (run_id, task_name),
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_a_clean_run_records_everything(flow_env: Endpoints) -> None:
    from flows.elt import elt

    summary = elt()
    assert summary.run.status == "completed"
    run = latest_run(flow_env)
    assert run["status"] == "completed"
    assert run["rows_loaded"] > 0
    assert run["tests_passed"] > 100 and run["tests_failed"] == 0
    assert run["cpu_seconds"] > 0 and run["warehouse_bytes"] > 0 and run["bytes_moved"] > 0
    assert 0 < run["monthly_estimate_usd"] < run["monthly_budget_usd"]
    with psycopg.connect(flow_env.warehouse_url) as conn:
        counts = {
            table: conn.execute(
                f"select count(*) from ops.{table} where run_id = %s", (run["run_id"],)
            ).fetchone()[0]
            for table in (
                "run_tasks",
                "run_tables",
                "dbt_results",
                "source_freshness",
                "reconciliation",
                "value_checks",
            )
        }
        unbalanced = conn.execute(
            "select table_name from ops.reconciliation where run_id = %s and (row_difference <> 0 or amount_difference <> 0)",
            (run["run_id"],),
        ).fetchall()
    assert (
        counts["run_tables"] == 11
        and counts["source_freshness"] == 11
        and counts["reconciliation"] == 11
        and counts["value_checks"] == 11
    )
    assert counts["dbt_results"] > 150
    assert counts["run_tasks"] == 4, (
        "ingest, build, freshness, reconcile (record and report come after)"
    )
    assert unbalanced == []
    page = Path(summary.report_path or "").read_text()
    charts = {"runs", "cost", "tests", "rows", "freshness", "reconciliation", "tests-by-model"}
    assert all(f'<div id="chart-{key}" class="plotly-graph-div"' in page for key in charts)
    assert "No data yet" not in page


def test_status_json_reports_runs_freshness_and_reconciliation(
    flow_env: Endpoints, haven, haven_home
) -> None:
    settings = get_settings()
    result = haven(
        "status",
        "--json",
        home=haven_home,
        env={
            "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
            "HAVEN_SOURCE_DATABASE": settings.source_database,
        },
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["runs"] and status["runs"][0]["status"] in {"completed", "failed"}
    assert len(status["freshness"]) == 11 and len(status["reconciliation"]) == 11
    assert status["reconciliation_differences"] == []
    assert len(status["value_checks"]) == 11 and status["value_differences"] == []
    text = haven(
        "status",
        home=haven_home,
        env={
            "HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database,
            "HAVEN_SOURCE_DATABASE": settings.source_database,
            "COLUMNS": "80",
        },
    )
    assert text.returncode == 0 and "recent runs" in text.stdout
    assert "tests ok/fail" in text.stdout and "month $" in text.stdout
    assert "engine" in text.stdout and "postgres" in text.stdout
    assert "values, source against raw" in text.stdout and "repaired" in text.stdout
    assert "…" not in text.stdout, "no column cut at 80 columns"
    assert max(len(line) for line in text.stdout.splitlines()) <= 80, text.stdout


def test_analysts_can_read_the_run_history(flow_env: Endpoints) -> None:
    from haven.warehouse.endpoints import ANALYST

    with psycopg.connect(flow_env.role_url(ANALYST)) as conn:
        assert conn.execute("select count(*) from ops.runs").fetchone()[0] >= 1


def test_a_transient_fault_is_retried_and_the_run_succeeds(
    flow_env: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.elt as module

    real_ingest = module.ingest
    calls = {"count": 0}

    def flaky_ingest(*args: object, **kwargs: object) -> object:
        calls["count"] += 1
        if calls["count"] == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(module, "ingest", flaky_ingest)
    summary = module.elt()
    assert summary.run.status == "completed"
    assert calls["count"] == 2
    assert attempts(flow_env, summary.run.run_id, "ingest") == 2


def test_a_warehouse_killed_mid_build_restarts_on_its_port_and_the_run_completes(
    flow_env: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL of the embedded PostgreSQL while dbt builds: the build fails on the lost
    connection, the retry restarts the server on the same port, the run completes and is
    recorded."""
    import flows.elt as module

    settings = get_settings()
    server = embedded_server(settings)
    port_before = server.status().port
    simulator.tick(flow_env, days=1)  # something to build
    real_build = module.build_if_changed
    kills: list[int] = []

    def build_then_kill(*args: object, **kwargs: object) -> object:
        if not kills:
            pid = server.status().pid
            assert pid is not None
            kills.append(pid)
            threading.Timer(1.5, os.kill, (pid, signal.SIGKILL)).start()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(module, "build_if_changed", build_then_kill)
    summary = module.elt()
    assert kills and not psutil.pid_exists(kills[0]), "the server was killed"
    assert summary.run.status == "completed"
    assert server.status().port == port_before, "restarted on the same port"
    assert attempts(flow_env, summary.run.run_id, "build") >= 2
    assert latest_run(flow_env)["run_id"] == summary.run.run_id


def test_a_run_ending_while_the_warehouse_is_down_is_recorded_by_the_next(
    flow_env: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.elt as module
    from haven.ops import history

    with psycopg.connect(flow_env.role_url(TRANSFORMER), autocommit=True) as conn:
        history.ensure_schema(conn)  # when this test runs alone
    real_record = history.record

    def warehouse_down(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(history, "record", warehouse_down)
    lost = module.elt().run
    pending = get_settings().pending_runs_dir
    assert [path.stem for path in pending.glob("*.pickle")] == [str(lost.run_id)]
    with psycopg.connect(flow_env.warehouse_url) as conn:
        assert not conn.execute("select from ops.runs where run_id = %s", (lost.run_id,)).fetchone()
    monkeypatch.setattr(history, "record", real_record)
    following = module.elt().run  # records the kept run first
    with psycopg.connect(flow_env.warehouse_url) as conn:
        recorded = conn.execute(
            "select run_id, status from ops.runs where run_id in (%s, %s)",
            (lost.run_id, following.run_id),
        ).fetchall()
    assert sorted(recorded) == sorted([(lost.run_id, "completed"), (following.run_id, "completed")])
    assert not list(pending.glob("*.pickle"))


def test_a_failing_data_test_is_not_retried_and_names_the_test(flow_env: Endpoints) -> None:
    import flows.elt as module

    with psycopg.connect(flow_env.warehouse_url, autocommit=True) as conn:
        conn.execute(
            # as a load would: a new load id, so the incremental build sees the change
            "update raw_app.listings set item_condition = 'broken',"
            " _dlt_load_id = extract(epoch from clock_timestamp())::text"
            " where id = (select min(id) from raw_app.listings where _haven_deleted_at is null and title is not null)"
        )
    try:
        with pytest.raises(
            DataTestFailure, match="accepted_values_stg_app__listings_item_condition"
        ):
            module.elt()
        run = latest_run(flow_env)
        assert run["status"] == "failed"
        assert "accepted_values_stg_app__listings_item_condition" in str(run["error"])
        with psycopg.connect(flow_env.warehouse_url) as conn:
            failed = conn.execute(
                "select task_name, attempts from ops.run_tasks where run_id = %s and status = 'failed'",
                (run["run_id"],),
            ).fetchall()
        assert len(failed) == 1 and failed[0][1] == 1, f"the failing step ran once: {failed}"
        with psycopg.connect(flow_env.warehouse_url) as conn:
            recorded = conn.execute(
                "select model, status from ops.dbt_results where run_id = %s and unique_id like %s",
                (run["run_id"], "%accepted_values_stg_app__listings_item_condition%"),
            ).fetchall()
        assert recorded == [("stg_app__listings", "fail")], "the failed build's results are kept"
        with psycopg.connect(flow_env.warehouse_url) as conn:
            failing = collect(conn)["failing_tests"]
        assert [row["unique_id"] for row in failing if "item_condition" in row["unique_id"]]
    finally:
        with psycopg.connect(flow_env.warehouse_url, autocommit=True) as conn:
            conn.execute(
                "update raw_app.listings set item_condition = 'good',"
                " _dlt_load_id = extract(epoch from clock_timestamp())::text"
                " where item_condition = 'broken'"
            )
    assert module.elt().run.status == "completed", "a re-run after the fix converges"


def test_two_runs_never_overlap(flow_env: Endpoints) -> None:
    import flows.elt as module

    with (
        exclusive_run(flow_env.role_url(TRANSFORMER)),
        pytest.raises(RunInProgress, match="Another elt run is in progress"),
    ):
        module.elt()


def test_the_runs_lock_tries_a_dropped_connection_again(flow_env: Endpoints) -> None:
    """The run's first connection (its lock's) is tried again when the network drops it, as
    every task's are: a proxy drops connections until it has dropped one, then forwards."""
    from haven.bench.fault_proxy import FaultProxy, proxied_url

    url = flow_env.role_url(TRANSFORMER)
    with FaultProxy(urlsplit(url).port or 5432, fault_share=1.0, kinds=("drop",)) as proxy:

        def forward_after_a_drop() -> None:
            while proxy.stats().dropped == 0:
                time.sleep(0.01)
            proxy.set_fault_share(0.0)

        watcher = threading.Thread(target=forward_after_a_drop, daemon=True)
        watcher.start()
        with exclusive_run(proxied_url(url, proxy.port)):
            pass
        watcher.join(timeout=10)
        assert proxy.stats().dropped == 1 and proxy.stats().connections == 2


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []
    failures_left = 0

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Recorder.failures_left > 0:
            _Recorder.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Recorder.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


@pytest.fixture
def webhook() -> Iterator[str]:
    _Recorder.received = []
    _Recorder.failures_left = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_alert_is_retried_until_delivered(webhook: str) -> None:
    _Recorder.failures_left = 2
    assert alerts.send(alerts.Alert("failed_run", "run x failed: boom"), webhook) is True
    assert len(_Recorder.received) == 1
    payload = _Recorder.received[0]
    assert "run x failed: boom" in str(payload["text"]) and payload["blocks"]


def test_alert_without_webhook_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="haven.alerts"):
        assert alerts.send(alerts.Alert("freshness", "orders is stale"), None) is False
    assert "orders is stale" in caplog.text


def test_a_failed_run_posts_an_alert(
    flow_env: Endpoints, webhook: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.elt as module

    monkeypatch.setenv("HAVEN_ALERT_WEBHOOK", webhook)
    get_settings.cache_clear()

    def broken_ingest(*args: object, **kwargs: object) -> object:
        raise DataTestFailure(
            "schema contract violated, not loaded: orders: column orders.total_cents changed type"
        )

    monkeypatch.setattr(module, "ingest", broken_ingest)
    try:
        with pytest.raises(DataTestFailure):
            module.elt()
    finally:
        get_settings.cache_clear()
    texts = [str(body["text"]) for body in _Recorder.received]
    assert any("orders.total_cents" in text for text in texts), texts
    with psycopg.connect(flow_env.warehouse_url) as conn:
        delivered = conn.execute(
            "select delivered from ops.alerts order by created_at desc limit 1"
        ).fetchone()
    assert delivered == (True,)


def test_deployments_match_prefect_yaml(prefect_client: str) -> None:
    import yaml

    from flows.deployments import PREFECT_YAML, read_specs, to_deployments

    document = yaml.safe_load(PREFECT_YAML.read_text())
    specs = read_specs()
    assert [spec.name for spec in specs] == ["elt-hourly", "elt-nightly"]
    deployments = to_deployments()
    for entry, deployment in zip(document["deployments"], deployments, strict=True):
        assert deployment.name == entry["name"]
        assert deployment.parameters == entry["parameters"]
        crons = [schedule.schedule.cron for schedule in deployment.schedules]
        assert crons == [schedule["cron"] for schedule in entry["schedules"]]
    assert deployments[1].parameters["docs"] is True
