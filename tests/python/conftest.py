"""Shared fixtures: one embedded PostgreSQL for the whole test session (of each test process), in
a temporary home, and one warehouse + source database pair per test module so modules never
disturb each other."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flows.server import local_server
from haven.settings import PROJECT_DIR, Settings
from haven.warehouse.connection import copy_database
from haven.warehouse.endpoints import Endpoints, embedded_server, up
from haven.warehouse.spark import local_cluster

HAVEN = str(Path(sys.executable).parent / "haven")

if WORKER := os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the modules on several processes (pytest-xdist); every dbt call writes
    # its target directory (manifest, run results, partial parse) and logs/dbt.log, so each
    # process gets its own, through dbt's own variables (haven reads DBT_TARGET_PATH too)
    os.environ["DBT_TARGET_PATH"] = str(PROJECT_DIR / "target" / WORKER)
    os.environ["DBT_LOG_PATH"] = str(PROJECT_DIR / "logs" / WORKER)

# dbt's file log at info in the test processes, not its default debug: the debug lines (every
# statement dbt sends, every event) cost about a tenth of a small build's CPU (`haven build
# --full-refresh` at SF 0.01, medians of three alternating runs: 10.3 CPU-s against 11.4, README)
# and no test reads them; the secrets test sets debug again for its own commands, so their whole
# log is searched
os.environ.setdefault("DBT_LOG_LEVEL_FILE", "info")


SLOWEST_FIRST = (
    "test_incremental",
    "test_managed_postgres",
    "test_schedules",
    "test_flow",
    "test_ingest_recovery",
    "test_bench_faults",
    "test_transform",
    "test_ingest",
    "test_bench_pipeline",
    "test_bench_queries",
)
"""The modules that take a test process longest (a fresh clone's `make test`, README), in that
order. `make test` hands whole modules to its processes in collection order
(``--dist loadfile --no-loadscope-reorder``): the longest first, so the last module to start
is a short one and no process waits minutes for the other to finish."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest modules first (in their order), then the others as collected."""
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))


@pytest.fixture(scope="session")
def haven_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("haven-home")
    yield home
    local_server(Settings(home=home)).stop()  # `haven up` in a test starts one
    local_cluster(Settings(home=home)).stop()  # and `haven up --engine spark` a Spark cluster
    embedded_server(Settings(home=home)).stop()


@pytest.fixture(scope="session")
def prefect_api(haven_home: Path) -> str:
    """The Prefect server of the session's home, the one `haven up` there starts: one per test
    process (a start costs about 14 s) for every module that needs a server but not its own."""
    return local_server(Settings(home=haven_home)).start()


@pytest.fixture(scope="module")
def prefect_client(prefect_api: str) -> Iterator[str]:
    """Flows run in this process report to the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        yield prefect_api


def settings_for(home: Path, name: str, **overrides: object) -> Settings:
    """Settings for an isolated pair of databases on the session's embedded server; explicit
    values, so a HAVEN_* variable in the developer's shell cannot leak into a test."""
    values: dict[str, object] = {
        "home": home,
        "warehouse_url": None,
        "source_url": None,
        "role_password": None,
        "warehouse_database": f"{name}_wh",
        "source_database": f"{name}_app",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def copy_of(template: Settings, name: str) -> tuple[Settings, Endpoints]:
    """A warehouse and source named ``name`` that start as copies of ``template``'s (PostgreSQL
    copies the files: ``CREATE DATABASE ... TEMPLATE``), with its dlt working state: what a test
    gets in a second, instead of simulating and loading the source again."""
    settings = settings_for(template.home, name)
    template_endpoints = up(template)
    copy_database(template_endpoints.warehouse_url, settings.warehouse_database)
    copy_database(template_endpoints.source_admin_url, settings.source_database)
    shutil.rmtree(settings.dlt_dir, ignore_errors=True)
    if template.dlt_dir.exists():
        shutil.copytree(template.dlt_dir, settings.dlt_dir)
    return settings, up(settings)


@pytest.fixture(scope="module")
def module_env(haven_home: Path, request: pytest.FixtureRequest) -> tuple[Settings, Endpoints]:
    """A fresh warehouse and source database named after the test module."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    settings = settings_for(haven_home, name)
    return settings, up(settings)


def haven_environment(
    env: dict[str, str] | None = None, home: Path | None = None
) -> dict[str, str]:
    """The process environment for a CLI subprocess: no HAVEN_* from the developer's shell, then
    the test's own values."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HAVEN_")}
    if home is not None:
        environment["HAVEN_HOME"] = str(home)
    environment.update(env or {})
    return environment


def run_haven(
    *args: str, env: dict[str, str] | None = None, home: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [HAVEN, *args],
        capture_output=True,
        text=True,
        env=haven_environment(env, home),
        cwd=PROJECT_DIR,
        timeout=timeout,
    )


@pytest.fixture
def haven() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_haven
