"""What dbt knows about the warehouse, from ``target/manifest.json``: descriptions, column docs,
tests and lineage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from haven.errors import HavenError
from haven.settings import get_settings


@dataclass(frozen=True)
class Manifest:
    nodes: dict[str, dict[str, Any]]
    parents: dict[str, list[str]]
    children: dict[str, list[str]]

    def find(self, name: str) -> str:
        """The unique id of a model, snapshot, seed or source table called ``name``."""
        for unique_id, node in self.nodes.items():
            if node.get("resource_type") in {"model", "snapshot", "seed", "source"} and (
                node.get("name") == name or unique_id.endswith(f".{name}")
            ):
                return unique_id
        raise HavenError(f"dbt knows no model, snapshot, seed or source called {name!r}.")

    def by_relation(self, schema: str, name: str) -> dict[str, Any] | None:
        for node in self.nodes.values():
            if node.get("schema") == schema and (node.get("alias") or node.get("name")) == name:
                return node
        return None

    def tests_of(self, unique_id: str) -> list[str]:
        return sorted(
            self.nodes[child]["name"]
            for child in self.children.get(unique_id, [])
            if self.nodes.get(child, {}).get("resource_type") in {"test", "unit_test"}
        )

    def walk(self, unique_id: str, edges: dict[str, list[str]]) -> list[str]:
        seen: list[str] = []
        stack = list(edges.get(unique_id, []))
        while stack:
            current = stack.pop()
            node = self.nodes.get(current)
            if (
                current in seen
                or node is None
                or node.get("resource_type") in {"test", "unit_test"}
            ):
                continue
            seen.append(current)
            stack.extend(edges.get(current, []))
        return sorted(seen)


@lru_cache(maxsize=4)
def _load(path: Path, modified: float) -> Manifest:
    document = json.loads(path.read_text())
    nodes = {
        **document.get("nodes", {}),
        **document.get("sources", {}),
        **document.get("unit_tests", {}),
    }
    return Manifest(nodes, document.get("parent_map", {}), document.get("child_map", {}))


def load(path: Path | None = None) -> Manifest:
    """The manifest as dbt last wrote it (re-read when the file changes); by default the one in
    dbt's target directory."""
    path = path or get_settings().dbt_target_dir / "manifest.json"
    if not path.exists():
        raise HavenError("There is no dbt manifest yet; run `haven build` (or `haven run`) first.")
    return _load(path, path.stat().st_mtime)
