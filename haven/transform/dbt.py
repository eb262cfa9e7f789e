"""Running dbt from haven: the profile's environment, the command line, and what happened.

dbt runs in-process through its Python entry point (``dbtRunner``), as the transformer role. The
profile (``profiles.yml``) reads everything from environment variables; ``dbt_environment`` is the
one place they are computed, so ``haven build``, ``haven env`` (for plain ``dbt``) and the flows
agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from haven.settings import PROJECT_DIR, Settings
from haven.warehouse.endpoints import TRANSFORMER, Endpoints
from haven.warehouse.pii import store_pii_key


def dbt_environment(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """The variables ``profiles.yml`` and the models read, for the transformer role (no key
    material: the masking key is put in the warehouse here, where only the transformer reads it)."""
    store_pii_key(settings, endpoints)
    url = urlsplit(endpoints.role_url(TRANSFORMER))
    return {
        "HAVEN_DBT_HOST": url.hostname or "127.0.0.1",
        "HAVEN_DBT_PORT": str(url.port or 5432),
        "HAVEN_DBT_USER": unquote(url.username or TRANSFORMER),
        "HAVEN_DBT_PASSWORD": unquote(url.password or ""),
        "HAVEN_DBT_DATABASE": url.path.lstrip("/"),
        "DBT_TARGET": settings.dbt_target,
        "DBT_PROFILES_DIR": str(PROJECT_DIR),
        "DBT_PROJECT_DIR": str(PROJECT_DIR),
        "DBT_TARGET_PATH": str(settings.dbt_target_dir),
        # the reporting zone: the project's var reads the first, libpq sends the second as
        # every session's zone (the roles carry it too, for plain dbt)
        "HAVEN_REPORTING_TIME_ZONE": settings.reporting_time_zone,
        "PGTZ": settings.reporting_time_zone,
    }


SPARK_SELECTION = {"indirect_selection": "cautious"}
"""How a build on Spark selects its tests: with --select, a test runs only when every model it
reads is selected."""


def spark_environment(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """``dbt_environment`` for the ``spark`` target: the Spark cluster started or reused (the
    configured one with HAVEN_SPARK_HOST) and the masking key stored in it."""
    from haven.warehouse import spark

    endpoint = spark.up(settings)
    spark.store_pii_key(settings, endpoints, endpoint)
    return {
        **dbt_environment(settings, endpoints),
        **spark.dbt_environment(endpoint),
        "DBT_TARGET": "spark",
    }


def spark_build(
    settings: Settings,
    endpoints: Endpoints,
    *,
    variables: Mapping[str, object],
    full_refresh: bool = False,
) -> DbtOutcome:
    """``dbt build`` of the whole project on Spark (the flow's build, the benchmark's)."""
    return run_dbt(
        dbt_args("build", full_refresh=full_refresh, variables=variables, **SPARK_SELECTION),
        spark_environment(settings, endpoints),
    )


def dbt_args(
    command: str,
    *,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    variables: Mapping[str, object] | None = None,
    indirect_selection: str | None = None,
) -> list[str]:
    """The dbt command line (without the program name). A pure function: tested without dbt."""
    args = [command, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    if indirect_selection:
        args += ["--indirect-selection", indirect_selection]
    if full_refresh:
        args.append("--full-refresh")
    if variables:
        rendered = ", ".join(f"{key}: {value!r}" for key, value in sorted(variables.items()))
        args += ["--vars", "{" + rendered + "}"]
    return args


def build_variables(*, full_refresh: bool = False, full_tests: bool = False) -> dict[str, object]:
    """The dbt vars of a build: an incremental one tests the rows it wrote (plus whole-table
    invariants; macros/changes.sql); a full refresh, or ``full_tests`` (the nightly run), tests
    everything. Every dbt call of a run passes the same vars, so dbt parses the project once."""
    return {} if full_refresh or full_tests else {"test_changed_rows_only": True}


@dataclass
class NodeResult:
    name: str
    resource_type: str
    status: str
    seconds: float
    rows_affected: int | None
    message: str | None


@dataclass
class DbtOutcome:
    success: bool
    nodes: list[NodeResult] = field(default_factory=list)
    error: str | None = None

    @property
    def counts(self) -> Counter[str]:
        return Counter(node.status for node in self.nodes)

    @property
    def failures(self) -> list[NodeResult]:
        return [node for node in self.nodes if node.status in {"error", "fail", "runtime error"}]

    def slowest(self, count: int = 5) -> list[NodeResult]:
        return sorted(
            (node for node in self.nodes if node.resource_type in {"model", "snapshot", "seed"}),
            key=lambda node: node.seconds,
            reverse=True,
        )[:count]


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """dbt reads ``env_var()`` from the process environment: set it for the call, then restore."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


PARSE_IDENTITY = (
    "DBT_TARGET",
    "HAVEN_DBT_HOST",
    "HAVEN_DBT_PORT",
    "HAVEN_DBT_USER",
    "HAVEN_DBT_DATABASE",
    "HAVEN_SPARK_HOST",
    "HAVEN_SPARK_PORT",
    "HAVEN_REPORTING_TIME_ZONE",
)
"""What dbt's partial parsing checks besides the files: the profile's connection, the target and
the env_var() of dbt_project.yml (with the --vars of the command line)."""

PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def _target_path(environment: Mapping[str, str]) -> Path:
    """The target directory the dbt of ``environment`` writes to."""
    return Path(environment.get("DBT_TARGET_PATH") or PROJECT_DIR / "target")


def saved_parse(args: list[str], environment: Mapping[str, str]) -> Path:
    """Where the parsed project for this connection and these ``--vars`` is kept.

    dbt keeps one parse per target directory and parses the whole project again (about 3.5 s)
    whenever the connection or the vars differ from that parse's: the nightly run after the
    hourly one, ``haven build`` after ``haven run``, another warehouse database. A parse kept per
    combination lets each start from its own; dbt still checks every file and the state it was
    parsed for before it uses one."""
    variables = args[args.index("--vars") + 1] if "--vars" in args else ""
    identity = "\0".join([variables, *(environment.get(name, "") for name in PARSE_IDENTITY)])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return _target_path(environment) / "parses" / f"{digest}.msgpack"


def _modified(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _keep_parse(written: Path, saved: Path) -> None:
    """Copy the parse dbt just wrote to where :func:`saved_parse` finds it (replaced whole, so a
    concurrent reader never sees half a file)."""
    saved.parent.mkdir(parents=True, exist_ok=True)
    partial = saved.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(written, partial)
    partial.replace(saved)


def run_dbt(args: list[str], environment: Mapping[str, str]) -> DbtOutcome:
    """Run dbt in-process and collect each node's result, starting from the parse kept for this
    connection and these vars (:func:`saved_parse`)."""
    from dbt.cli.main import dbtRunner

    saved = saved_parse(args, environment)
    written = _target_path(environment) / PARTIAL_PARSE_FILE
    values = dict(environment)
    if saved.exists() and "DBT_PARTIAL_PARSE_FILE_PATH" not in os.environ:
        values["DBT_PARTIAL_PARSE_FILE_PATH"] = str(saved)
    before = _modified(written)
    with _environment(values):
        result = dbtRunner().invoke(args)
    if _modified(written) not in {None, before}:
        _keep_parse(written, saved)
    outcome = DbtOutcome(success=result.success)
    if result.exception is not None:
        lines = [
            line.strip()
            for line in str(result.exception).strip().splitlines()
            if line.strip() and not line.strip().startswith(">")  # dbt's macro stack
        ]
        outcome.error = lines[0].rstrip(".") + (f": {lines[-1]}" if len(lines) > 1 else "")
    for node_result in getattr(result.result, "results", None) or []:
        node = getattr(node_result, "node", None)
        response = getattr(node_result, "adapter_response", None) or {}
        outcome.nodes.append(
            NodeResult(
                name=getattr(node, "name", "?"),
                resource_type=str(getattr(node, "resource_type", "?")),
                status=str(node_result.status),
                seconds=float(node_result.execution_time or 0.0),
                rows_affected=response.get("rows_affected") if isinstance(response, dict) else None,
                message=node_result.message,
            )
        )
    return outcome


@dataclass(frozen=True)
class ArtifactResult:
    """One node's result as dbt wrote it to ``target/run_results.json``."""

    unique_id: str
    resource_type: str
    status: str
    seconds: float
    rows_affected: int | None
    message: str | None
    model: str | None = None
    """The model (or source table) the node builds or tests, for results by model; None for a
    check over the whole project."""


@dataclass(frozen=True)
class SourceFreshness:
    source_table: str
    max_loaded_at: str | None
    lag_seconds: float | None
    status: str
    warn_after_seconds: float | None = None
    error_after_seconds: float | None = None


def node_name(unique_id: str) -> str:
    """A node's name from its unique id: ``<type>.<package>.<name>``, a generic test's name
    followed by a hash, a unit test's by its model (``unit_test.<package>.<model>.<name>``)."""
    parts = unique_id.split(".")
    if parts[0] == "unit_test":
        return parts[-1]
    return parts[2] if len(parts) > 2 else unique_id


def parse_artifact(path: Path, kind: str) -> Any:
    """A dbt artifact (``kind`` run_results or sources) parsed with dbt-artifacts-parser's model
    of the schema version it declares, imported alone: the library's ``parser`` module imports
    the models of every version of every artifact, 1.5 s of CPU in each command that read one.
    A version the library does not know goes through its ``parser``, which says so."""
    data = json.loads(path.read_text())
    version = str(data.get("metadata", {}).get("dbt_schema_version", ""))
    try:
        number = int(version.rsplit("/v", 1)[-1].removesuffix(".json"))
        module = importlib.import_module(f"dbt_artifacts_parser.parsers.{kind}.{kind}_v{number}")
    except (ValueError, ModuleNotFoundError):
        from dbt_artifacts_parser import parser

        return getattr(parser, f"parse_{kind}")(data)
    model = "".join(part.title() for part in kind.split("_")) + f"V{number}"
    return getattr(module, model)(**data)


def read_run_results(target_dir: Path) -> list[ArtifactResult]:
    """The last dbt command's results, parsed with dbt-artifacts-parser."""
    path = target_dir / "run_results.json"
    if not path.exists():
        return []
    results = parse_artifact(path, "run_results")
    models = tested_models(target_dir)
    rows = []
    for result in results.results:
        response = result.adapter_response or {}
        rows_affected = response.get("rows_affected") if isinstance(response, dict) else None
        rows.append(
            ArtifactResult(
                unique_id=result.unique_id,
                resource_type=result.unique_id.split(".", 1)[0],
                status=_enum_text(result.status),
                seconds=float(result.execution_time or 0.0),
                rows_affected=rows_affected
                if isinstance(rows_affected, int) and rows_affected >= 0
                else None,
                message=result.message,
                model=models.get(result.unique_id),
            )
        )
    return rows


def tested_models(target_dir: Path) -> dict[str, str]:
    """Node id → the name of the model (or source table) it builds or tests, from the manifest:
    a data test's attached node, a unit test's model, a model itself. Tests over several models
    (the project-wide singular tests) have no entry."""
    path = target_dir / "manifest.json"
    if not path.exists():
        return {}
    manifest = json.loads(path.read_text())
    names: dict[str, str] = {}
    for unique_id, node in manifest.get("nodes", {}).items():
        resource_type = node.get("resource_type")
        if resource_type in {"model", "snapshot", "seed"}:
            names[unique_id] = node["name"]
        elif resource_type == "test":
            attached = node.get("attached_node")
            parents = node.get("depends_on", {}).get("nodes", [])
            if attached is None and len(parents) == 1:
                attached = parents[0]
            if attached:
                names[unique_id] = attached.rsplit(".", 1)[-1]
    for unique_id, unit_test in manifest.get("unit_tests", {}).items():
        names[unique_id] = unit_test["model"]
    return names


_PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _threshold_seconds(threshold: object) -> float | None:
    """A freshness threshold (``{count: 6, period: hour}``) in seconds; None when not set."""
    count = getattr(threshold, "count", None)
    period = _enum_text(getattr(threshold, "period", None))
    if count is None or period not in _PERIOD_SECONDS:
        return None
    return float(count) * _PERIOD_SECONDS[period]


def read_source_freshness(target_dir: Path) -> list[SourceFreshness]:
    """``dbt source freshness`` results (``sources.json``), parsed with dbt-artifacts-parser."""
    path = target_dir / "sources.json"
    if not path.exists():
        return []
    rows = []
    for result in parse_artifact(path, "sources").results:
        criteria = getattr(result, "criteria", None)
        rows.append(
            SourceFreshness(
                source_table=result.unique_id.rsplit(".", 1)[-1],
                max_loaded_at=str(getattr(result, "max_loaded_at", None) or "") or None,
                lag_seconds=getattr(result, "max_loaded_at_time_ago_in_s", None),
                status=_enum_text(result.status),
                warn_after_seconds=_threshold_seconds(getattr(criteria, "warn_after", None)),
                error_after_seconds=_threshold_seconds(getattr(criteria, "error_after", None)),
            )
        )
    return rows


def _enum_text(value: object) -> str:
    """dbt-artifacts-parser gives statuses as enums (``Status1.pass_``); store their value."""
    return str(getattr(value, "value", value))
