"""Configuration flows one way: environment -> this settings object -> the code that needs it.

No other module reads ``os.environ``; they take a ``Settings`` (or values from it).
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The repository root: the dbt project, with ``ingestion/``, ``flows/`` and ``.dlt/`` beside it."""


class Engine(StrEnum):
    """Where the dbt project builds: the PostgreSQL warehouse, or a Spark cluster."""

    postgres = "postgres"
    spark = "spark"


class Settings(BaseSettings):
    """Everything the platform can be told from outside, with the defaults for a laptop."""

    model_config = SettingsConfigDict(env_prefix="HAVEN_", extra="ignore", env_ignore_empty=True)

    warehouse_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of a real warehouse; unset means the embedded server.",
    )
    source_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the application database to ingest; unset means the "
        "simulated one on the embedded server.",
    )
    role_password: str | None = Field(
        default=None,
        description="Password given to the haven_* roles on a real server; the embedded server "
        "trusts connections from 127.0.0.1 and needs none.",
    )
    pii_hash_key: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC that masks emails in staging. Unset on the embedded warehouse "
        "means a random key kept in .haven/pii_hash_key; a real warehouse must set it.",
    )
    prefect_api_url: str | None = Field(
        default=None,
        validation_alias="PREFECT_API_URL",
        description="A Prefect server of your own (Prefect's variable); unset means the local "
        "server `haven up` starts under .haven/prefect.",
    )
    home: Path = Field(
        default=PROJECT_DIR / ".haven",
        description="Where the embedded server, dlt working files and reports live.",
    )
    dbt_target: str = Field(default="dev", description="profiles.yml target: dev, ci or prod.")
    dbt_target_path: Path = Field(
        default=Path("target"),
        validation_alias="DBT_TARGET_PATH",
        description="Where dbt writes its artifacts (dbt's variable; relative to the project), "
        "and so where haven reads the manifest and run results.",
    )
    warehouse_database: str = "haven"
    source_database: str = "clutter_app"
    source_schema: str = "public"
    reporting_time_zone: str = Field(
        default="UTC",
        description="The IANA time zone every date the models derive is in (placed_date, daily "
        "and monthly aggregates, cohorts, as-of dates); the platform's roles run in it.",
    )
    ingest_lag_seconds: int = Field(
        default=3 * 24 * 3600,
        description="Overlap window re-read on every incremental ingest, so late commits whose "
        "updated_at is earlier than rows already seen are still picked up.",
    )

    spark_host: str | None = Field(
        default=None,
        description="Host of a Spark Thrift server of your own (a real cluster); unset means the "
        "local cluster `haven up --engine spark` starts under .haven/spark.",
    )
    spark_port: int | None = Field(
        default=None,
        description="Thrift port: of your cluster with HAVEN_SPARK_HOST (default 10000), or the "
        "port the local cluster's Thrift server must use (default: a free port).",
    )
    spark_workers: int = Field(
        default=2, description="Workers of the local Spark cluster (one core, 1 GiB each)."
    )
    alert_webhook: str | None = Field(
        default=None,
        description="Slack-compatible incoming webhook for failed runs, freshness breaches and "
        "reconciliation differences (alerts are always logged too).",
    )
    # price assumptions behind each run's cost figures and the monthly estimate
    price_cpu_hour_usd: float = Field(default=0.05, description="Price of one vCPU-hour.")
    price_storage_gb_month_usd: float = Field(
        default=0.12, description="Price of a GB-month of storage."
    )
    price_transfer_gb_usd: float = Field(
        default=0.09, description="Price of a GB moved between systems."
    )
    runs_per_month: int = Field(
        default=24 * 30 + 30, description="Scheduled runs a month: hourly + nightly."
    )
    monthly_budget_usd: float = Field(
        default=40.0, description="The monthly budget the estimate is held to."
    )

    @field_validator("reporting_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone name like Europe/Berlin"
            ) from None
        return value

    @property
    def dbt_target_dir(self) -> Path:
        return PROJECT_DIR / self.dbt_target_path

    @property
    def embedded_dir(self) -> Path:
        return self.home / "pg"

    @property
    def spark_dir(self) -> Path:
        return self.home / "spark"

    @property
    def prefect_dir(self) -> Path:
        return self.home / "prefect"

    @property
    def pending_runs_dir(self) -> Path:
        """Run records waiting for the warehouse (it was down when their run ended), one folder
        per warehouse database so a record is written where its run belongs."""
        return self.home / "pending_runs" / self.warehouse_database

    @property
    def report_path(self) -> Path:
        return self.home / "report.html"

    @property
    def dlt_dir(self) -> Path:
        """dlt's working files, one folder per warehouse database so two warehouses never share state."""
        return self.home / "dlt" / self.warehouse_database


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()


def setting_problem(error: ValidationError) -> str:
    """One sentence for an environment variable the settings could not read."""
    problem = error.errors()[0]
    name = str(problem["loc"][0]) if problem["loc"] else ""
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    variable = alias if isinstance(alias, str) else f"HAVEN_{name.upper()}"
    reason = problem["msg"][0].lower() + problem["msg"][1:]
    return f"{variable}={problem.get('input')!r} is not accepted ({reason}); fix or unset it."
