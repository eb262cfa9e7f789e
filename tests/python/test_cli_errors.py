"""Mistakes a user can make at the command line: each ends in one sentence, exit code 1, and no
traceback. Table-driven: a row is the command, its environment, and words the sentence must hold."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.python.conftest import run_haven


@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


CASES = [
    (["status"], {"HAVEN_WAREHOUSE_URL": "[bad"}, "postgresql:// URL"),
    (["status"], {"HAVEN_WAREHOUSE_URL": "postgresql://nobody@127.0.0.1:1/wh"}, "Cannot connect"),
    (["ingest"], {"HAVEN_SOURCE_URL": "mysql://x@y/z"}, "postgresql:// URL"),
    (["mcp", "--http", "99999"], {}, "between 1 and 65535"),
    (["mcp", "--http", "0"], {}, "between 1 and 65535"),
    (["docs", "--port", "70000"], {}, "between 1 and 65535"),
    (["source", "tick", "--days", "0"], {}, "--days"),
    (["source", "tick", "--hours", "0"], {}, "--hours must be at least 1"),
    (["source", "tick", "--days", "1", "--hours", "1"], {}, "not both"),
    (["bench", "faults", "--fault-share", "2"], {}, "--fault-share must be between 0 and 1"),
    (["bench", "faults", "--runs", "0"], {}, "--runs must be at least 1"),
    (["up"], {"PREFECT_API_URL": "http://127.0.0.1:1/api"}, "does not answer"),
    # malformed and unreachable URLs, a warehouse that is down
    (["status"], {"HAVEN_WAREHOUSE_URL": "postgresql://x@127.0.0.1:99999/wh"}, "invalid port"),
    (["status"], {"HAVEN_WAREHOUSE_URL": "postgresql://x@no-such-host.invalid/wh"}, "resolve host"),
    (["ingest"], {"HAVEN_SOURCE_URL": "postgresql://x@127.0.0.1:1/app"}, "source database"),
    # settings that cannot be read
    (["status"], {"HAVEN_MONTHLY_BUDGET_USD": "abc"}, "HAVEN_MONTHLY_BUDGET_USD='abc'"),
    (["up"], {"HAVEN_REPORTING_TIME_ZONE": "Mars/Olympus"}, "not an IANA time zone name"),
    # out-of-range numbers
    (["status", "--runs", "0"], {}, "--runs must be at least 1"),
    (["source", "init", "--scale", "0"], {}, "--scale must be between 0 and 100"),
    (["source", "init", "--defect-rate", "2"], {}, "--defect-rate must be between"),
    (["bench", "pipeline", "--scale", "abc"], {}, "--scale must be numbers separated by commas"),
    (["bench", "queries", "--seconds", "0"], {}, "--seconds must be at least 1"),
    (["bench", "queries", "--transactions", "0"], {}, "--transactions must be at least 1"),
    (["bench", "faults", "--stall-seconds", "-1"], {}, "--stall-seconds must be more than 0"),
    # a source or marts that do not exist yet
    (["ingest"], {"HAVEN_SOURCE_DATABASE": "never_created"}, "haven source init"),
    (["source", "tick"], {"HAVEN_SOURCE_DATABASE": "never_created"}, "haven source init"),
    (["bench", "queries"], {"HAVEN_WAREHOUSE_DATABASE": "never_built"}, "not been built"),
    # the Spark engine without Java, or with a bad worker count
    (
        ["up", "--engine", "spark"],
        {"PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""},
        "Java 17 or newer is needed",
    ),
    (["up", "--engine", "spark", "--workers", "0"], {}, "--workers must be between 1 and 16"),
    (
        ["bench", "pipeline", "--engine", "spark", "--workers", "1,x"],
        {},
        "--workers must be whole numbers",
    ),
    (
        ["bench", "pipeline", "--engine", "spark", "--workers", "0,2"],
        {},
        "--workers must be between 1 and 16",
    ),
    (["run", "--engine", "spark", "--full-refresh"], {}, "not supported yet"),
    (
        ["bench", "pipeline", "--engine", "spark"],
        {"HAVEN_SPARK_HOST": "spark.example"},
        "unset HAVEN_SPARK_HOST",
    ),
    # the lake of a cluster of your own, refused before anything lands in PostgreSQL
    (["ingest", "--engine", "spark"], {"HAVEN_SPARK_HOST": "spark.example"}, "filesystem"),
    # a configured Spark cluster that is down
    (
        ["build", "--engine", "spark"],
        {"HAVEN_SPARK_HOST": "127.0.0.1", "HAVEN_SPARK_PORT": "1"},
        "Cannot connect to the Spark Thrift server",
    ),
]


@pytest.mark.parametrize(("args", "env", "expected"), CASES, ids=lambda v: str(v)[:40])
def test_user_error_is_one_sentence_and_exit_1(args, env, expected, haven_home) -> None:
    result = run_haven(*args, env=env, home=haven_home)
    assert result.returncode == 1, (result.stdout, result.stderr)
    output = result.stdout + result.stderr
    assert expected in output
    assert "Traceback" not in output
    sentences = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(sentences) == 1 and sentences[0].endswith("."), output


def test_port_in_use_is_named(busy_port, haven_home) -> None:
    result = run_haven("mcp", "--http", str(busy_port), home=haven_home)
    assert result.returncode == 1
    assert f"Port {busy_port}" in result.stdout + result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_spark_port_is_named(busy_port, haven_home) -> None:
    result = run_haven(
        "up", "--engine", "spark", env={"HAVEN_SPARK_PORT": str(busy_port)}, home=haven_home
    )
    assert result.returncode == 1
    assert f"Port {busy_port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_dbt_selector_fails(module_env, haven_home) -> None:
    settings, _ = module_env
    result = run_haven(
        "build",
        "--select",
        "nonexistent_model",
        env={"HAVEN_WAREHOUSE_DATABASE": settings.warehouse_database},
        home=haven_home,
    )
    assert result.returncode == 1
    assert "matches no model" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
