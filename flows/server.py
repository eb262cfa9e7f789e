"""The local Prefect server, kept running like the embedded PostgreSQL: ``haven up`` starts (or
reuses) it on 127.0.0.1 with its SQLite database under ``.haven/prefect/``, ``haven down`` stops
it, and ``haven run`` / ``haven serve`` send their runs to it, so every run, its task runs and its
logs are in the Prefect UI. With ``PREFECT_API_URL`` set, that server is used and nothing is
started here.

This module never imports Prefect (seconds of import time); it drives ``prefect server start``
as a detached process and talks HTTP to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.embedded import HOST, file_lock, free_port, port_is_free

WORK_POOL = "haven-local"
"""The process work pool ``prefect.yaml``'s deployments run on (created by ``haven up``)."""
START_TIMEOUT_SECONDS = 90
PREFECT = str(Path(sys.executable).parent / "prefect")


@dataclass(frozen=True)
class ServerState:
    running: bool
    url: str | None
    pid: int | None


class PrefectServer:
    """One ``prefect server start`` process whose home is ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_file = directory / "server.json"
        self.log_file = directory / "server.log"
        self.lock_file = directory / ".server.lock"

    def start(self) -> str:
        """Start the server, or reuse the one already running; return its API URL."""
        with self._locked():
            state = self.status()
            if state.running and state.url is not None:
                return state.url
            port = self._port()
            environment = {
                **server_environment(self.directory),
                "PREFECT_SERVER_API_HOST": HOST,
                "PREFECT_SERVER_API_PORT": str(port),
            }
            environment.pop("PREFECT_API_URL", None)
            with open(self.log_file, "ab") as log:
                process = subprocess.Popen(
                    [PREFECT, "server", "start", "--host", HOST, "--port", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                    start_new_session=True,  # outlives the command that started it
                )
            url = f"http://{HOST}:{port}/api"
            self.state_file.write_text(json.dumps({"port": port, "pid": process.pid}))
            self._wait_until_healthy(url, process)
            return url

    def stop(self) -> bool:
        """Stop the server; return False when it was not running."""
        with self._locked():
            state = self.status()
            if not state.running or state.pid is None:
                return False
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGTERM)
            try:
                psutil.Process(state.pid).wait(timeout=30)
            except psutil.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pid, signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
            return True

    def status(self) -> ServerState:
        """Running when the recorded process is alive and its API answers."""
        pid, port = self._read_state()
        if pid is None or port is None or not _is_prefect_server(pid):
            return ServerState(False, None, None)
        url = f"http://{HOST}:{port}/api"
        return ServerState(_healthy(url), url, pid)

    def _port(self) -> int:
        _, last = self._read_state()
        return last if last is not None and port_is_free(last) else free_port()

    def _read_state(self) -> tuple[int | None, int | None]:
        try:
            state = json.loads(self.state_file.read_text())
            return int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None, None

    def _wait_until_healthy(self, url: str, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise HavenError(
                    f"The Prefect server exited at start (code {process.returncode}); "
                    f"see {self.log_file}."
                )
            if _healthy(url):
                return
            time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        raise HavenError(
            f"The Prefect server did not answer within {START_TIMEOUT_SECONDS} s; see {self.log_file}."
        )

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.lock_file)


def server_environment(prefect_home: Path) -> dict[str, str]:
    """The environment of a Prefect process started here: its home under ``.haven/`` and no
    analytics."""
    return {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def local_server(settings: Settings) -> PrefectServer:
    return PrefectServer(settings.prefect_dir)


def api_url(settings: Settings) -> str:
    """The Prefect API runs go to: ``PREFECT_API_URL`` when configured, else the local server
    (started when it is not running)."""
    if settings.prefect_api_url:
        if not _healthy(settings.prefect_api_url.rstrip("/")):
            raise HavenError(
                f"The Prefect server at PREFECT_API_URL={settings.prefect_api_url} does not answer; "
                "start it, or unset PREFECT_API_URL to use the local one `haven up` starts."
            )
        return settings.prefect_api_url
    url = local_server(settings).start()
    ensure_work_pool(url)
    return url


def use_prefect_server(settings: Settings) -> str:
    """Point this process's Prefect client at :func:`api_url` (before Prefect is imported)."""
    url = api_url(settings)
    os.environ["PREFECT_API_URL"] = url
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_dir))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return url


def ui_url(api: str) -> str:
    return api.removesuffix("/").removesuffix("/api")


def ensure_work_pool(url: str) -> None:
    """The ``haven-local`` process pool ``prefect.yaml`` names, created once with Prefect's own
    default job template."""
    try:
        found = httpx.get(f"{url}/work_pools/{WORK_POOL}", timeout=10)
    except httpx.HTTPError as error:
        raise HavenError(f"The Prefect server at {url} did not answer ({error}).") from None
    if found.status_code == 200:
        return
    result = subprocess.run(
        [PREFECT, "--no-prompt", "work-pool", "create", WORK_POOL, "--type", "process"],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": url},
        timeout=120,
    )
    if result.returncode != 0 and "already exists" not in result.stdout + result.stderr:
        raise HavenError(
            f"Could not create the Prefect work pool {WORK_POOL}: "
            f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}."
        )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _is_prefect_server(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "prefect" in command and "server" in command
