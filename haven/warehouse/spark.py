"""The local Apache Spark cluster, started from the ``pyspark`` wheel (which holds a whole Spark:
``spark-class``, ``spark-submit``, the Hive Thrift server and a Derby metastore) and kept running
like the embedded PostgreSQL: ``haven up --engine spark`` starts (or reuses) one standalone master,
N workers and a Thrift server (the SQL endpoint dbt-spark talks to) on free ports of 127.0.0.1,
with everything under ``.haven/spark/``; ``haven down`` stops it. A cluster left half-running (a
killed process, a reboot) is stopped and started again.

With ``HAVEN_SPARK_HOST`` set, that Thrift server (a real cluster) is used and nothing is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from haven.errors import HavenError
from haven.settings import Settings
from haven.warehouse.embedded import HOST, file_lock, free_port, port_is_free
from haven.warehouse.endpoints import Endpoints

START_TIMEOUT_SECONDS = 180
WORKER_MEMORY = "1g"
EXECUTOR_MEMORY = "768m"
"""Each worker offers one core and 1 GiB; each executor takes the core and 768 MiB of it."""
DRIVER_MEMORY = "1g"
"""The Thrift server is the driver; it refuses much less than 450 MiB."""
THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


WORKER_TIMEOUT_SECONDS = 20


def spark_home() -> Path:
    """The Spark distribution inside the ``pyspark`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise HavenError("The pyspark package is not installed; run `make setup` to install it.")
    return Path(next(iter(spec.submodule_search_locations)))


def java_home() -> str:
    """A Java the Spark launcher can use, or one sentence saying how to get one."""
    configured = os.environ.get("JAVA_HOME")
    if configured and (Path(configured) / "bin" / "java").exists():
        return configured
    java = shutil.which("java")
    if java is None:
        raise HavenError(
            "Java 17 or newer is needed for the Spark engine and was not found; install it"
            " (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    return str(Path(os.path.realpath(java)).parent.parent)


def check_workers(workers: int) -> None:
    if not 1 <= workers <= 16:
        raise HavenError(f"--workers must be between 1 and 16, got {workers}.")


@dataclass(frozen=True)
class ClusterState:
    running: bool
    """Master, every worker and the Thrift server are alive, and the Thrift port answers."""
    master_url: str | None = None
    master_ui: str | None = None
    thrift_port: int | None = None
    workers: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    """Process name (master, worker-1, ..., thrift) → pid, for the processes still alive."""


class SparkCluster:
    """One standalone Spark cluster whose home is ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.state_file = directory / "cluster.json"
        self.lock_file = directory / ".cluster.lock"
        self.log_dir = directory / "logs"

    def start(self, workers: int = 2, thrift_port: int | None = None) -> ClusterState:
        """Start the cluster with ``workers`` workers, or reuse the one running with as many
        (and the Thrift port asked for, when one is)."""
        check_workers(workers)
        java = java_home()
        with self._locked():
            state = self.status()
            if (
                state.running
                and state.workers == workers
                and thrift_port in (None, state.thrift_port)
            ):
                return state
            recorded = self._read_state()
            environment = self._environment(java)
            core_alive = (
                recorded is not None
                and {"master", "thrift"} <= set(state.pids)
                and state.thrift_port is not None
                and _answers(state.thrift_port)
                and thrift_port in (None, state.thrift_port)
                and workers >= sum(name.startswith("worker-") for name in state.pids)
            )
            if core_alive and recorded is not None:
                # a lost worker (killed, crashed) or more workers asked for: add workers to the
                # running master; the Thrift server's application gets executors on them
                pids = dict(state.pids)
                ports = recorded["ports"]
            else:
                self._stop_processes()  # nothing running, a half-running cluster, fewer workers
                for directory in (self.log_dir, self.directory / "work", self.directory / "tmp"):
                    directory.mkdir(parents=True, exist_ok=True)
                ports = self._ports(thrift_port)
                pids = {}
                self._write_state(ports, pids, workers)
                pids["master"] = self._launch("master", self._master_command(ports), environment)
                self._write_state(ports, pids, workers)
                self._wait(
                    lambda: self._alive_workers(ports["master_ui"]) is not None, "master", pids
                )
            master_url = f"spark://{HOST}:{ports['master']}"
            started = {}
            for number in range(1, workers + 1):
                name = f"worker-{number}"
                if name not in pids:
                    started[name] = self._log_size(name)
                    pids[name] = self._launch(name, self._worker_command(master_url), environment)
            self._write_state(ports, pids, workers)
            self._wait(
                lambda: all(self._registered(name, offset) for name, offset in started.items()),
                f"{len(started)} worker(s)",
                pids,
            )
            if "thrift" not in pids:
                pids["thrift"] = self._launch(
                    "thrift",
                    self._thrift_command(master_url, ports, workers),
                    # the launcher sizes the Thrift server as a daemon, not by --driver-memory
                    {**environment, "SPARK_DAEMON_MEMORY": DRIVER_MEMORY},
                )
                self._write_state(ports, pids, workers)
                self._wait(lambda: _answers(ports["thrift"]), "Thrift server", pids)
            return self.status()

    def _master_command(self, ports: dict[str, int]) -> list[str]:
        return [
            str(spark_home() / "bin" / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            HOST,
            "--port",
            str(ports["master"]),
            "--webui-port",
            str(ports["master_ui"]),
        ]

    def _worker_command(self, master_url: str) -> list[str]:
        return [
            str(spark_home() / "bin" / "spark-class"),
            "org.apache.spark.deploy.worker.Worker",
            master_url,
            "--host",
            HOST,
            "--cores",
            "1",
            "--memory",
            WORKER_MEMORY,
            "--webui-port",
            "0",
            "--work-dir",
            str(self.directory / "work"),
        ]

    def _log_size(self, name: str) -> int:
        path = self.log_dir / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def _registered(self, name: str, offset: int) -> bool:
        """Whether the worker logged its registration with the master since ``offset``."""
        with open(self.log_dir / f"{name}.log", "rb") as log:
            log.seek(offset)
            return b"Successfully registered with master" in log.read()

    def stop(self) -> bool:
        """Stop every process of the cluster; return False when none was running."""
        with self._locked():
            return self._stop_processes()

    def status(self) -> ClusterState:
        state = self._read_state()
        if not state:
            return ClusterState(False)
        ports, recorded, workers = state["ports"], state["pids"], state["workers"]
        alive = {name: pid for name, pid in recorded.items() if self._is_ours(pid)}
        expected = {"master", "thrift", *(f"worker-{n}" for n in range(1, workers + 1))}
        running = set(alive) == expected and _answers(ports["thrift"])
        return ClusterState(
            running=running,
            master_url=f"spark://{HOST}:{ports['master']}",
            master_ui=f"http://{HOST}:{ports['master_ui']}",
            thrift_port=ports["thrift"],
            workers=workers,
            pids=alive,
        )

    def _thrift_command(self, master_url: str, ports: dict[str, int], workers: int) -> list[str]:
        metastore = self.directory / "metastore_db"
        java_options = f"-Dderby.system.home={self.directory}"
        settings = {
            "spark.sql.warehouse.dir": str(self.directory / "warehouse"),
            "spark.local.dir": str(self.directory / "tmp"),
            "spark.driver.host": HOST,
            "spark.driver.bindAddress": HOST,
            "spark.ui.enabled": "false",
            "spark.executor.memory": EXECUTOR_MEMORY,
            "spark.driver.extraJavaOptions": java_options,
            "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.sources.partitionOverwriteMode": "dynamic",
            # one shuffle partition per core, not Spark's 200: on a small cluster every partition
            # is a task to schedule, and scheduling is most of a small query's time
            "spark.sql.shuffle.partitions": str(workers),
            # schedule a task on any free executor at once (the default waits up to 3 s for
            # one holding its data: on loopback every executor is as close)
            "spark.locality.wait": "0s",
            # a table's files outlive a lost metastore: let CTAS write over them
            "spark.sql.legacy.allowNonEmptyLocationInCTAS": "true",
            "spark.hadoop.hive.exec.scratchdir": str(self.directory / "tmp" / "hive"),
        }
        command = [
            str(spark_home() / "bin" / "spark-submit"),
            "--master",
            master_url,
            "--class",
            THRIFT_SERVER_CLASS,
            "--driver-memory",
            DRIVER_MEMORY,
            "--name",
            "haven-thrift",
        ]
        for key, value in settings.items():
            command += ["--conf", f"{key}={value}"]
        return [
            *command,
            "--hiveconf",
            f"hive.server2.thrift.port={ports['thrift']}",
            "--hiveconf",
            f"hive.server2.thrift.bind.host={HOST}",
            # The embedded metastore opens a store (a new HiveConf: its XML parsed again) for each
            # thread that has none, and closes it when the thread changes user. Statements run as
            # the server's user, not a proxy user per session (on loopback nothing else changes:
            # no Kerberos, local files, GRANT refused anyway), on a few threads kept for an hour
            # rather than a new thread per statement: 244 stores opened in an unchanged build,
            # not 2,004, and the build 22 % faster (README, Spark).
            "--hiveconf",
            "hive.server2.enable.doAs=false",
            "--hiveconf",
            "hive.server2.async.exec.threads=8",
            "--hiveconf",
            "hive.server2.async.exec.keepalive.time=3600",
            "spark-internal",
        ]

    def _environment(self, java: str) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SPARK_", "PYSPARK_"))
        }
        environment.update(
            {
                "JAVA_HOME": java,
                "SPARK_HOME": str(spark_home()),
                "SPARK_LOCAL_IP": HOST,
                "SPARK_LOG_DIR": str(self.log_dir),
                "SPARK_WORKER_DIR": str(self.directory / "work"),
                "SPARK_DAEMON_MEMORY": "256m",
                # the master forgets a lost worker after 20 s (not 60); a worker heartbeats
                # every quarter of its own timeout, so both must be told (with the master's
                # alone, workers beat every 15 s and were dropped every 10 s, and their
                # executors with them)
                "SPARK_MASTER_OPTS": f"-Dspark.worker.timeout={WORKER_TIMEOUT_SECONDS}",
                "SPARK_WORKER_OPTS": f"-Dspark.worker.timeout={WORKER_TIMEOUT_SECONDS}",
                "SPARK_NO_DAEMONIZE": "1",
            }
        )
        return environment

    def _launch(self, name: str, command: list[str], environment: dict[str, str]) -> int:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # outlives the command that started it
            )
        return process.pid

    def _wait(self, ready: object, what: str, pids: dict[str, int]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for name, pid in pids.items():
                if not _alive(pid):
                    self._stop_processes()
                    log = self.log_dir / f"{name}.log"
                    if (
                        name == "thrift"
                        and "incompatible format" in log.read_text(errors="replace")[-200_000:]
                    ):
                        raise HavenError(
                            f"The Spark metastore in {self.directory / 'metastore_db'} was written"
                            " by another Spark version; remove that directory (the lake's files"
                            " stay; `haven ingest --engine spark` registers them again) and run"
                            " `haven up --engine spark` again."
                        )
                    raise HavenError(f"The Spark {name} exited at start; see {log}.")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.5)
        self._stop_processes()
        raise HavenError(
            f"The Spark {what} did not come up within {START_TIMEOUT_SECONDS} s; see {self.log_dir}."
        )

    def _alive_workers(self, master_ui: int) -> int | None:
        """Workers the master counts as alive; None while the master does not answer."""
        try:
            response = httpx.get(f"http://{HOST}:{master_ui}/json/", timeout=2)
            return int(response.json().get("aliveworkers", 0))
        except (httpx.HTTPError, ValueError):
            return None

    def _stop_processes(self) -> bool:
        state = self._read_state()
        if not state:
            return False
        alive = [pid for pid in state["pids"].values() if self._is_ours(pid)]
        for pid in reversed(alive):  # the Thrift server first, the master last
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
        gone, remaining = psutil.wait_procs(
            [psutil.Process(pid) for pid in alive if psutil.pid_exists(pid)], timeout=20
        )
        for process in remaining:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        state["pids"] = {}
        self.state_file.write_text(json.dumps(state))
        return bool(alive)

    def _ports(self, thrift_port: int | None) -> dict[str, int]:
        """The last ports when they are free again, else new free ones."""
        last = (self._read_state() or {}).get("ports", {})
        if thrift_port is not None:
            last["thrift"] = thrift_port
        ports: dict[str, int] = {}
        for name in ("master", "master_ui", "thrift"):
            port = last.get(name)
            ports[name] = port if port and port_is_free(port) and port not in ports.values() else 0
            while ports[name] == 0 or list(ports.values()).count(ports[name]) > 1:
                ports[name] = free_port()
        return ports

    def _write_state(self, ports: dict[str, int], pids: dict[str, int], workers: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps({"ports": ports, "pids": pids, "workers": workers}))

    def _read_state(self) -> dict | None:
        try:
            state = json.loads(self.state_file.read_text())
            return state if {"ports", "pids", "workers"} <= set(state) else None
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """A live Java process started for this cluster (a recycled pid is not)."""
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            command = " ".join(process.cmdline())
        except psutil.Error:
            return False
        return "java" in command and (
            str(self.directory) in command or "org.apache.spark.deploy" in command
        )

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return file_lock(self.lock_file)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _answers(port: int) -> bool:
    """Whether something accepts connections on the port (the Thrift server, once it is up)."""
    import socket

    with socket.socket() as probe:
        probe.settimeout(1)
        try:
            probe.connect((HOST, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class SparkEndpoint:
    """Where dbt-spark finds the Thrift server."""

    host: str
    port: int
    local: bool


def local_cluster(settings: Settings) -> SparkCluster:
    return SparkCluster(settings.spark_dir)


def configured(settings: Settings) -> SparkEndpoint | None:
    """The cluster of your own that HAVEN_SPARK_HOST names, or None for the local cluster: when
    it is unset, or names the local cluster's own Thrift address (what ``haven env`` exports for
    plain dbt, so haven commands in that shell still manage the local cluster)."""
    if not settings.spark_host:
        return None
    port = settings.spark_port or 10000
    if settings.spark_host in (HOST, "localhost") and (
        local_cluster(settings).status().thrift_port == port
    ):
        return None
    return SparkEndpoint(settings.spark_host, port, local=False)


def up(settings: Settings, workers: int | None = None) -> SparkEndpoint:
    """The configured Thrift server, or the local cluster started (or reused)."""
    if (own := configured(settings)) is not None:
        return own
    check_port(settings)
    port = settings.spark_port
    cluster = local_cluster(settings)
    state = cluster.start(
        workers if workers is not None else settings.spark_workers, thrift_port=port
    )
    assert state.thrift_port is not None
    return SparkEndpoint(HOST, state.thrift_port, local=True)


def check_port(settings: Settings) -> None:
    """The Thrift port asked for the local cluster (HAVEN_SPARK_PORT) is in range and free, or
    already the running cluster's; one sentence otherwise."""
    port = settings.spark_port
    if configured(settings) is not None or port is None:
        return
    if not 1 <= port <= 65535:
        raise HavenError(f"HAVEN_SPARK_PORT must be a port between 1 and 65535, got {port}.")
    running = local_cluster(settings).status()
    if not (running.running and running.thrift_port == port) and not port_is_free(port):
        raise HavenError(
            f"Port {port} on 127.0.0.1 is already in use; unset HAVEN_SPARK_PORT or choose another."
        )


def check_can_start(settings: Settings, workers: int | None = None) -> None:
    """Before anything starts (one sentence, nothing half-started): the local cluster's worker
    count, Thrift port and Java are usable. A configured cluster (HAVEN_SPARK_HOST) needs none."""
    if configured(settings) is not None:
        return
    check_workers(workers if workers is not None else settings.spark_workers)
    check_port(settings)
    java_home()


def current(settings: Settings) -> SparkEndpoint | None:
    """The Thrift server to use without starting anything: the configured one, or the local
    cluster when it is running; None otherwise."""
    if (own := configured(settings)) is not None:
        return own
    state = local_cluster(settings).status()
    if state.running and state.thrift_port is not None:
        return SparkEndpoint(HOST, state.thrift_port, local=True)
    return None


def connect(endpoint: SparkEndpoint) -> Any:
    """A PyHive connection to the Thrift server, or one sentence saying why there is none."""
    import logging

    from pyhive import hive
    from thrift.transport.TTransport import TTransportException

    logging.getLogger("thrift.transport.TSocket").setLevel(logging.CRITICAL)  # the error says it
    try:
        return hive.connect(host=endpoint.host, port=endpoint.port, username="haven")
    except (TTransportException, OSError) as error:
        raise HavenError(
            f"Cannot connect to the Spark Thrift server at {endpoint.host}:{endpoint.port}"
            f" ({str(error).splitlines()[0] if str(error) else type(error).__name__}); check"
            " HAVEN_SPARK_HOST / HAVEN_SPARK_PORT, or run `haven up --engine spark`."
        ) from None


def store_pii_key(settings: Settings, endpoints: Endpoints, endpoint: SparkEndpoint) -> None:
    """The email-masking key's HMAC pads in Spark's ``haven_private.pii_key``, which
    ``mask_pii`` reads there as on PostgreSQL; written only when they changed (a Spark job costs
    seconds, and ``haven env`` calls this every time). The Thrift server takes no bind parameters and
    enforces no grants: the pads are in this statement's text and readable by whoever reaches
    the Thrift port (keep it on loopback or behind the cluster's own authentication)."""
    from contextlib import closing

    from haven.warehouse.pii import hmac_pads, pii_hash_key

    inner_pad, outer_pad = hmac_pads(pii_hash_key(settings, endpoints))
    with closing(connect(endpoint)) as conn:
        cursor = conn.cursor()
        cursor.execute("create database if not exists haven_private")
        location = settings.spark_dir / "warehouse" / "haven_private.db" / "pii_key"
        cursor.execute(
            "create table if not exists haven_private.pii_key (inner_pad string, outer_pad string)"
            f" using parquet location '{location.as_uri()}'"
        )
        cursor.execute("select inner_pad, outer_pad from haven_private.pii_key")
        if [tuple(row) for row in cursor.fetchall()] != [(inner_pad, outer_pad)]:
            cursor.execute(
                "insert overwrite table haven_private.pii_key values (%s, %s)",
                (inner_pad, outer_pad),
            )


def dbt_environment(endpoint: SparkEndpoint) -> dict[str, str]:
    """What ``profiles.yml``'s ``spark`` target reads."""
    return {"HAVEN_SPARK_HOST": endpoint.host, "HAVEN_SPARK_PORT": str(endpoint.port)}
