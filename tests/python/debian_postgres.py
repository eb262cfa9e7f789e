"""A throwaway PostgreSQL cluster from Debian's ``postgresql`` package, for the tests that need a
server the project did not start itself (a managed service's stand-in): its own data directory
under the test's temporary directory, a free port on 127.0.0.1, password authentication, and a
superuser only the test uses to set up the roles a service would hand out."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from haven.warehouse.embedded import free_port

SUPERUSER_PASSWORD = "dba-secret-7"


def server_binaries() -> Path | None:
    """The newest installed Debian PostgreSQL's ``bin`` directory, or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (path for path in root.glob("*/bin/initdb") if path.parent.parent.name.isdigit()),
        key=lambda path: int(path.parent.parent.name),
    )
    return versions[-1].parent if versions else None


class DebianCluster:
    """``initdb``, ``pg_ctl start`` and ``stop``, as the ``postgres`` system user when root."""

    def __init__(self, directory: Path) -> None:
        binaries = server_binaries()
        assert binaries is not None, "Debian's postgresql package is not installed"
        self.binaries = binaries
        self.major = int(binaries.parent.name)
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def superuser_url(self) -> str:
        return self.url("postgres", SUPERUSER_PASSWORD, "postgres")

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        password_file = self.directory / "password"
        password_file.write_text(SUPERUSER_PASSWORD + "\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in (self.directory, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            _open_parents(self.directory)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            "postgres",
            "--pwfile",
            str(password_file),
            "--auth-host",
            "scram-sha-256",
            "--auth-local",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        self._run(
            "pg_ctl",
            "--pgdata",
            str(self.data),
            "--wait",
            "--log",
            str(self.directory / "server.log"),
            "--options",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory}"
            " -c fsync=off -c shared_buffers=64MB",
            "start",
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "--pgdata", str(self.data), "--mode", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        as_postgres = os.geteuid() == 0
        result = subprocess.run(
            [str(self.binaries / program), *args],
            capture_output=True,
            text=True,
            user="postgres" if as_postgres else None,
            cwd=self.directory,
            check=False,
        )
        assert result.returncode == 0, f"{program} failed: {result.stderr or result.stdout}"


def _open_parents(path: Path) -> None:
    """Let the postgres user traverse every directory above ``path`` (pytest's are 0700)."""
    for parent in path.parents:
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
