"""The embedded warehouse's lifecycle: start, reuse, unclean shutdown, a taken port, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import psycopg
import pytest

from haven.warehouse.embedded import HOST, SUPERUSER, EmbeddedServer


def query(port: int, sql: str) -> object:
    with psycopg.connect(
        f"postgresql://{SUPERUSER}@{HOST}:{port}/postgres", connect_timeout=5
    ) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


@pytest.fixture
def server(tmp_path: Path):
    embedded = EmbeddedServer(tmp_path / "pg")
    yield embedded
    embedded.stop()


def test_start_is_idempotent_and_preloads_pg_stat_statements(server: EmbeddedServer) -> None:
    port = server.start()
    pid = server.status().pid
    assert server.start() == port, "a second start reuses the running server"
    assert server.status().pid == pid
    assert query(port, "show listen_addresses") == "127.0.0.1"
    assert "pg_stat_statements" in str(query(port, "show shared_preload_libraries"))
    assert str(query(port, "show server_version")).startswith("18")


def test_survives_unclean_shutdown(server: EmbeddedServer) -> None:
    server.start()
    pid = server.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.status().running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (server.data_dir / "postmaster.pid").exists(), "the stale pid file is left behind"
    port = server.start()
    assert query(port, "select 1") == 1
    assert server.status().pid != pid


def test_stale_pid_file_pointing_at_another_process(server: EmbeddedServer) -> None:
    server.start()
    server.stop()
    # a pid file left by a crash whose pid now belongs to an unrelated process (this one)
    pid_file = server.data_dir / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{server.data_dir}\n0\n5432\n\n127.0.0.1\n0 0\nready\n")
    port = server.start()
    assert query(port, "select 1") == 1


def test_picks_another_port_when_its_port_is_taken(server: EmbeddedServer) -> None:
    first = server.start()
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((HOST, first))
        squatter.listen()
        second = server.start()
    assert second != first
    assert query(second, "select 1") == 1
    assert json.loads(server.state_file.read_text())["port"] == second


def test_stop_stops_and_reports_when_not_running(server: EmbeddedServer) -> None:
    port = server.start()
    assert server.stop() is True
    assert not server.status().running
    with pytest.raises(psycopg.OperationalError):
        query(port, "select 1")
    assert server.stop() is False


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: the server then runs as its own user")
def test_stop_reaches_a_data_directory_whose_parent_was_closed(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """pytest resets its temporary root to 0700 when another session starts; a stop must
    still reach the data directory (it failed with a traceback from `haven down`)."""
    server.start()
    tmp_path.chmod(0o700)
    assert server.stop() is True
    assert not server.status().running
