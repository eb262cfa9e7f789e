"""The platform on servers it did not start, where no role is superuser, as on a managed service
(RDS, Cloud SQL, Azure, Supabase, Neon): Debian's own PostgreSQL (a separately installed server)
and a second embedded PostgreSQL 18 (the 16+ CREATEROLE rules). On each, a warehouse owner with
CREATEROLE that owns the warehouse database, a source owner, and a read-only source role:

`haven up`, `haven source init` as the source's owner, `haven run`, a tick, `haven run` as the
read-only role; raw equals the source; the MCP server refuses every escape and changes nothing;
`haven up` names each gap it can see (the PII key, the source's grants, the MCP role's
temp_file_limit that only a superuser may set). And no password or key of that configuration
appears in any command's output or in any file the platform wrote (dbt's logs and target, the
home with the Prefect server's database and flow-run logs, the report, dlt's working files).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from haven.settings import PROJECT_DIR, Settings
from haven.warehouse.embedded import HOST, SUPERUSER, EmbeddedServer
from haven.warehouse.endpoints import EMBEDDED_ROLE_PASSWORD, Endpoints
from tests.python.conftest import haven_environment, run_haven
from tests.python.debian_postgres import SUPERUSER_PASSWORD, DebianCluster, server_binaries
from tests.python.test_ingest import assert_raw_equals_source
from tests.python.test_mcp import ANALYTICAL, ESCAPES, run_session, stdio

OWNER, OWNER_PASSWORD = "wh_owner", "wh-owner-secret-81"
APP_OWNER, APP_OWNER_PASSWORD = "app_owner", "app-owner-secret-82"
READER, READER_PASSWORD = "app_reader", "app-reader-secret-83"
ROLE_PASSWORD = "haven-roles-secret-84"
PII_KEY = "pii-key-secret-85"


class Server:
    """One server under test: its superuser URL (for the set-up a DBA does) and how to reach
    a database on it as a role."""

    def __init__(self, name: str, port: int, superuser: str, password: str) -> None:
        self.name, self.port = name, port
        self.superuser, self.password = superuser, password
        self.superuser_url = self.url(superuser, password, "postgres")

    def url(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@{HOST}:{self.port}/{database}"


@pytest.fixture(scope="module", params=["debian", "embedded 18"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(request.param.replace(" ", "_"))
    if request.param == "debian":
        if server_binaries() is None:
            pytest.skip(
                "Debian's postgresql package is not installed (make test installs it as root)"
            )
        cluster = DebianCluster(directory / "cluster")
        cluster.start()
        try:
            yield Server(
                f"Debian PostgreSQL {cluster.major}", cluster.port, "postgres", SUPERUSER_PASSWORD
            )
        finally:
            cluster.stop()
    else:
        embedded = EmbeddedServer(directory / "pg")
        port = embedded.start()
        try:
            yield Server("embedded PostgreSQL 18", port, SUPERUSER, EMBEDDED_ROLE_PASSWORD)
        finally:
            embedded.stop()


@pytest.fixture(scope="module")
def home(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HAVEN_HOME of this server's own, so every file the platform writes for it is searched
    for secrets (with the session's Prefect server's database, which its runs report to)."""
    return tmp_path_factory.mktemp("managed_home")


@pytest.fixture(scope="module")
def roles(server: Server) -> Server:
    """What a service hands out: an owner with CREATEROLE (not superuser) owning the warehouse
    database, the application's owner owning its database, and a login for reading it."""
    with psycopg.connect(server.superuser_url, autocommit=True) as conn:
        conn.execute(f"create role {OWNER} login createrole password '{OWNER_PASSWORD}'")
        conn.execute(f"create database analytics owner {OWNER}")
        conn.execute(f"create role {APP_OWNER} login password '{APP_OWNER_PASSWORD}'")
        conn.execute(f"create database clutter_app owner {APP_OWNER}")
        conn.execute(f"create role {READER} login password '{READER_PASSWORD}'")
    return server


def environment(
    server: Server, source_user: str, source_password: str, prefect_api: str
) -> dict[str, str]:
    return {
        "PREFECT_API_URL": prefect_api,
        "HAVEN_WAREHOUSE_URL": server.url(OWNER, OWNER_PASSWORD, "analytics"),
        "HAVEN_SOURCE_URL": server.url(source_user, source_password, "clutter_app"),
        "HAVEN_ROLE_PASSWORD": ROLE_PASSWORD,
        "HAVEN_PII_HASH_KEY": PII_KEY,
        # configured URLs win; the name keeps this warehouse's dlt state apart from the others
        "HAVEN_WAREHOUSE_DATABASE": f"managed_{server.name.split()[0].lower()}",
        # dbt's whole log (the test processes keep it at info), so every line is searched
        "DBT_LOG_LEVEL_FILE": "debug",
    }


SECRETS = (OWNER_PASSWORD, APP_OWNER_PASSWORD, READER_PASSWORD, ROLE_PASSWORD, PII_KEY)
OUTPUTS: list[tuple[str, str]] = []
"""Every command's output in this module, searched for the secrets at the end."""


def haven_out(*args: str, env: dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    result = run_haven(*args, env=env, home=home, timeout=600)
    OUTPUTS.append((f"haven {' '.join(args)}", result.stdout + result.stderr))
    return result


def haven_ok(*args: str, env: dict[str, str], home: Path) -> str:
    result = haven_out(*args, env=env, home=home)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"haven {' '.join(args)}: {output[-2000:]}"
    assert "Traceback" not in output
    return " ".join(output.split())


@contextmanager
def reader_cannot_read(server: Server, table: str) -> Iterator[None]:
    """The source's owner takes SELECT on one table from the reader, and gives it back."""
    with psycopg.connect(
        server.url(APP_OWNER, APP_OWNER_PASSWORD, "clutter_app"), autocommit=True
    ) as app:
        app.execute(f"revoke select on {table} from {READER}")
        try:
            yield
        finally:
            app.execute(f"grant select on {table} to {READER}")


def files_holding(secret: bytes, *roots: Path) -> list[str]:
    """Every file under ``roots`` whose bytes contain ``secret``."""
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue  # a socket, or a file removed while we walked
    return hits


def test_the_whole_flow_runs_without_a_superuser(
    roles: Server, home: Path, prefect_api: str
) -> None:
    server = roles
    as_owner = environment(server, APP_OWNER, APP_OWNER_PASSWORD, prefect_api)
    as_reader = environment(server, READER, READER_PASSWORD, prefect_api)
    started = haven_ok("up", env=as_owner, home=home)
    assert "warning: The MCP role haven_mcp has no temp_file_limit" in started, started
    haven_ok("source", "init", "--scale", "0.01", "--seed", "3", env=as_owner, home=home)
    with psycopg.connect(server.url(APP_OWNER, APP_OWNER_PASSWORD, "clutter_app")) as app:
        app.execute(f"grant select on all tables in schema public to {READER}")
    haven_ok("run", env=as_reader, home=home)
    haven_ok("source", "tick", "--days", "1", env=as_owner, home=home)
    second = haven_ok("run", env=as_reader, home=home)
    assert "tests" in second and " 0 failed" in second, second
    endpoints = Endpoints(
        warehouse_url=as_owner["HAVEN_WAREHOUSE_URL"],
        source_admin_url=as_owner["HAVEN_SOURCE_URL"],
        source_url=as_reader["HAVEN_SOURCE_URL"],
        embedded=False,
        role_password=ROLE_PASSWORD,
    )
    assert_raw_equals_source(endpoints)
    with psycopg.connect(server.url(server.superuser, server.password, "analytics")) as conn:
        owner = conn.execute(
            "select rolsuper, rolcreaterole from pg_roles where rolname = %s", (OWNER,)
        ).fetchone()
        assert owner == (False, True), "the flow ran as a non-superuser owner"
        mcp = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles"
            " where rolname = 'haven_mcp'"
        ).fetchone()
        assert mcp == (False, False, False, False)
        settings = conn.execute(
            "select string_agg(array_to_string(setconfig, ','), ',') from pg_db_role_setting"
            " where setrole = 'haven_mcp'::regrole"
        ).fetchone()
        assert settings and "default_transaction_read_only=on" in settings[0]
        assert "statement_timeout=5s" in settings[0]
        fct_orders = conn.execute(
            "select count(*), sum(total_cents) from analytics.fct_orders"
        ).fetchone()

    mcp_environment = {**haven_environment(home=home), **as_reader}
    answers = asyncio.run(
        run_session(
            stdio(mcp_environment), [("query", {"sql": sql}) for sql in ANALYTICAL + ESCAPES]
        )
    )
    accepted, refused = answers[: len(ANALYTICAL)], answers[len(ANALYTICAL) :]
    assert all(not error and answer["rows"] for error, answer in accepted), accepted
    for (error, message), sql in zip(refused, ESCAPES, strict=True):
        assert error, f"not refused on {server.name}: {sql}"
        assert OWNER_PASSWORD not in message and ROLE_PASSWORD not in message
    with psycopg.connect(server.url(server.superuser, server.password, "analytics")) as conn:
        assert (
            conn.execute("select count(*), sum(total_cents) from analytics.fct_orders").fetchone()
            == fct_orders
        )
        assert conn.execute("select to_regclass('analytics.stolen')").fetchone() == (None,)


def test_haven_up_names_each_gap_a_run_would_stop_on(
    roles: Server, home: Path, prefect_api: str
) -> None:
    server = roles
    as_reader = environment(server, READER, READER_PASSWORD, prefect_api)
    without_key = {**as_reader, "HAVEN_PII_HASH_KEY": ""}
    result = haven_out("up", env=without_key, home=home)
    assert (
        result.returncode == 1 and "HAVEN_PII_HASH_KEY is not set" in result.stderr + result.stdout
    )
    with reader_cannot_read(server, "orders"):
        result = haven_out("up", env=as_reader, home=home)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert f"The source role {READER} cannot read public.orders" in output, output
    assert "Traceback" not in output
    plain = {**as_reader, "HAVEN_WAREHOUSE_URL": server.url(READER, READER_PASSWORD, "analytics")}
    with psycopg.connect(
        server.url(server.superuser, server.password, "analytics"), autocommit=True
    ) as conn:
        conn.execute(f"grant connect on database analytics to {READER}")
    result = haven_out("up", env=plain, home=home)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1 and f"The warehouse role {READER} needs CREATEROLE" in output, (
        output
    )


def test_no_secret_in_any_output_or_file(
    roles: Server, home: Path, prefect_api: str, haven_home: Path
) -> None:
    """After the flow above: status, the report, the docs site, a failing run and the MCP
    server (above) too; then every output and file is searched for every secret (the Prefect
    server's database and flow-run logs are the session's)."""
    server = roles
    as_reader = environment(server, READER, READER_PASSWORD, prefect_api)
    status = haven_ok("status", env=as_reader, home=home)
    assert "warning: The MCP role haven_mcp has no temp_file_limit" in status, status
    haven_ok("report", env=as_reader, home=home)
    haven_ok("docs", "--no-serve", env=as_reader, home=home)
    with reader_cannot_read(server, "reviews"):
        failed = haven_out("run", env=as_reader, home=home)
    assert failed.returncode == 1
    assert "error: schema contract violated, not loaded: reviews" in failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr, "Prefect logs the sentence only"
    haven_ok("status", env=as_reader, home=home)
    for command, output in OUTPUTS:
        for secret in SECRETS:
            assert secret not in output, f"`{command}` printed a secret: {output[-600:]}"
    settings = Settings()
    roots = [
        home,
        Settings(home=haven_home).prefect_dir,
        settings.dbt_target_dir,
        PROJECT_DIR / "logs",
    ]
    assert any(
        b"[debug]" in line and b'"analytics"."staging"' in line
        for path in (PROJECT_DIR / "logs").rglob("dbt.log*")
        for line in path.read_bytes().splitlines()
    ), "dbt's debug lines of this warehouse's builds are among the files searched"
    for secret in SECRETS:
        assert files_holding(secret.encode(), *roots) == [], f"files hold {secret[:6]}..."
