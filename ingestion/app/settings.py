"""What the ``app`` source extracts: every application table, its key, cursor and disposition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TableSpec:
    name: str
    primary_key: tuple[str, ...] = ("id",)
    """The key to use when the source table declares no primary key; a declared one wins."""
    cursor: str = "updated_at"
    disposition: Literal["merge", "append"] = "merge"
    lookups: tuple[str, ...] = ()
    """Columns the transforms look raw rows up by (besides the key): indexed in raw_app."""

    @property
    def mutable(self) -> bool:
        """Mutable tables are merged on the key, re-read with an overlap window, and checked for
        hard deletes; append-only tables are only ever appended to."""
        return self.disposition == "merge"


TABLES: tuple[TableSpec, ...] = (
    TableSpec("categories", lookups=("parent_id",)),
    TableSpec("vendors"),
    TableSpec("customers"),
    TableSpec("listings", lookups=("category_id",)),
    TableSpec("orders", lookups=("customer_id",)),
    TableSpec("order_items", lookups=("order_id", "listing_id")),
    TableSpec("payments", lookups=("provider_reference",)),
    TableSpec("shipments"),
    TableSpec("refunds", lookups=("order_id",)),
    TableSpec("reviews"),
    TableSpec("order_status_events", cursor="id", disposition="append"),
)

PIPELINE_NAME = "app"
"""The dlt pipeline (and source) name."""

DATASET = "raw_app"
"""dlt's dataset: the schema raw lands in, the dbt source schema."""

DELETED_AT = "_haven_deleted_at"
"""Set on a raw row when its key disappears from the source (a hard delete); never cleared."""

TOMBSTONES = "raw_app_tombstones"
"""Where a full refresh keeps raw's deleted rows while raw is dropped and loaded again: the
deletions survive the refresh (``ingestion.app.helpers.hold_deletions``)."""
