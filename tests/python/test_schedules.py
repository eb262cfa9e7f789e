"""Schedules really fire: a real Prefect server started by ``haven up``, the deployments of
``prefect.yaml`` registered with plain ``prefect deploy --all`` and run by a process worker, then
the same deployments served by ``haven serve``. In both cases a schedule due within the test must
produce a run, created by the server's scheduler, that reaches Completed and is recorded in the
warehouse. (With SQLAlchemy 2.1 Prefect 3.8's scheduler fails on every loop and no run appears.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from flows.server import local_server
from haven.settings import PROJECT_DIR, Settings
from haven.source import simulator
from haven.warehouse.endpoints import embedded_server, up
from tests.python.conftest import HAVEN, haven_environment

PREFECT = str(Path(sys.executable).parent / "prefect")
DEPLOYMENT = "elt/elt-hourly"
RUN_TIMEOUT_SECONDS = 300


@dataclass
class Stack:
    home: Path
    api: str
    environment: dict[str, str]
    warehouse_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Its own home, so its Prefect server can run the scheduler every few seconds; the worker
    and `haven serve` look for due runs every 2 s (Prefect's default: 10)."""
    home = tmp_path_factory.mktemp("schedules-home")
    environment = haven_environment(
        {
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "3",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        },
        home=home,
    )
    environment.pop("PREFECT_API_URL", None)
    started = subprocess.run(
        [HAVEN, "up", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=PROJECT_DIR,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr
    urls = json.loads(started.stdout)
    settings = Settings(home=home, warehouse_url=None, source_url=None)
    simulator.init(up(settings), scale=0.01, seed=5, replace=True)
    environment["PREFECT_API_URL"] = urls["prefect_api_url"]
    try:
        yield Stack(home, urls["prefect_api_url"], environment, urls["warehouse_url"])
    finally:
        local_server(settings).stop()
        embedded_server(settings).stop()


def prefect(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PREFECT, "--no-prompt", *args],
        capture_output=True,
        text=True,
        env=stack.environment,
        cwd=PROJECT_DIR,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def read_deployment(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.api}/deployments/name/{DEPLOYMENT}", timeout=10)


def deployment(stack: Stack) -> dict[str, object]:
    response = read_deployment(stack)
    response.raise_for_status()
    return dict(response.json())


def wait_for_scheduled_run(stack: Stack, deployment_id: str, process: subprocess.Popen) -> dict:
    """The first run of the deployment that the scheduler created and that reached a final
    state; fails when the executing process dies or nothing completes in time."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the executing process exited ({process.returncode})"
        response = httpx.post(
            f"{stack.api}/flow_runs/filter",
            json={
                "flow_runs": {
                    "deployment_id": {"any_": [deployment_id]},
                    "state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}},
                },
                "sort": "EXPECTED_START_TIME_ASC",
            },
            timeout=10,
        )
        response.raise_for_status()
        finished = [run for run in response.json() if run["auto_scheduled"]]
        if finished:
            return dict(finished[0])
        time.sleep(2)
    raise AssertionError(f"no scheduled run of {DEPLOYMENT} finished in {RUN_TIMEOUT_SECONDS} s")


def recorded_runs(stack: Stack, flow_run_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(stack.warehouse_url) as conn:
        return [
            (str(deployment_name), str(status))
            for deployment_name, status in conn.execute(
                "select deployment, status from ops.runs where flow_run_id = %s", (flow_run_id,)
            )
        ]


def due_soon(stack: Stack) -> None:
    """Add a schedule due within seconds to the hourly deployment (its cron stays)."""
    prefect(stack, "deployment", "schedule", "create", DEPLOYMENT, "--interval", "15", "-y")


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:  # a Prefect worker may take its time to stop; the stack stops the server next
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def start(stack: Stack, command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=stack.environment,
            cwd=PROJECT_DIR,
            start_new_session=True,
        )


def test_prefect_deploy_and_a_worker_run_a_scheduled_run(
    stack: Stack, background: list[subprocess.Popen]
) -> None:
    deployed = prefect(stack, "deploy", "--all")
    assert "elt/elt-nightly" in deployed.stdout
    found = deployment(stack)
    pull = found["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]  # type: ignore[index]
    assert pull["directory"] == str(PROJECT_DIR), (
        "the worker finds the project it was deployed from"
    )
    assert found["work_pool_name"] == "haven-local"
    due_soon(stack)
    worker = start(
        stack,
        [PREFECT, "worker", "start", "--pool", "haven-local"],
        stack.home / "worker.log",
    )
    background.append(worker)
    run = wait_for_scheduled_run(stack, str(found["id"]), worker)
    log = (stack.home / "worker.log").read_text(errors="replace")[-3000:]
    assert run["state_type"] == "COMPLETED", log
    assert recorded_runs(stack, run["id"]) == [("elt-hourly", "completed")]


def test_haven_serve_runs_a_scheduled_run(stack: Stack, background: list[subprocess.Popen]) -> None:
    server = start(stack, [HAVEN, "serve"], stack.home / "serve.log")
    background.append(server)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # serve deletes the pool's registration, then registers
        response = read_deployment(stack)
        if response.status_code == 200 and response.json()["work_pool_name"] is None:
            break
        assert server.poll() is None, (stack.home / "serve.log").read_text()
        time.sleep(1)
    found = deployment(stack)
    assert found["work_pool_name"] is None, "served from this process, not a work pool"
    assert "served from here now" in (stack.home / "serve.log").read_text()
    due_soon(stack)
    run = wait_for_scheduled_run(stack, str(found["id"]), server)
    assert run["state_type"] == "COMPLETED", (stack.home / "serve.log").read_text()[-3000:]
    assert recorded_runs(stack, run["id"]) == [("elt-hourly", "completed")]
