"""Configuration flows one way: environment -> this settings object -> the code that needs it.

No other module reads ``os.environ``; they take a ``Settings`` (or values from it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The repository root: the dbt project, with ``ingestion/``, ``flows/`` and ``.dlt/`` beside it."""


class Settings(BaseSettings):
    """Everything the platform can be told from outside, with the defaults for a laptop."""

    model_config = SettingsConfigDict(env_prefix="HAVEN_", extra="ignore")

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
    home: Path = Field(
        default=PROJECT_DIR / ".haven",
        description="Where the embedded server, dlt working files and reports live.",
    )
    dbt_target: str = Field(default="dev", description="profiles.yml target: dev, ci or prod.")
    warehouse_database: str = "haven"
    source_database: str = "clutter_app"
    source_schema: str = "public"
    ingest_lag_seconds: int = Field(
        default=3 * 24 * 3600,
        description="Overlap window re-read on every incremental ingest, so late commits whose "
        "updated_at is earlier than rows already seen are still picked up.",
    )

    @property
    def embedded_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dlt_dir(self) -> Path:
        """dlt's working files, one folder per warehouse database so two warehouses never share state."""
        return self.home / "dlt" / self.warehouse_database


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read from the environment once."""
    return Settings()
