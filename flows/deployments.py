"""The deployments of ``prefect.yaml`` as Prefect objects, so ``haven serve`` runs exactly what the
file says (one source of truth for names, parameters and schedules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from haven.settings import PROJECT_DIR

PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    description: str
    entrypoint: str
    parameters: dict[str, Any]
    crons: list[tuple[str, str]]


def read_specs() -> list[DeploymentSpec]:
    document = yaml.safe_load(PREFECT_YAML.read_text())
    return [
        DeploymentSpec(
            name=entry["name"],
            description=entry.get("description", ""),
            entrypoint=entry["entrypoint"],
            parameters=dict(entry.get("parameters") or {}),
            crons=[
                (schedule["cron"], schedule.get("timezone", "UTC"))
                for schedule in entry.get("schedules", [])
            ],
        )
        for entry in document["deployments"]
    ]


def to_deployments() -> list[Any]:
    """``RunnerDeployment`` objects for ``prefect.serve``."""
    from prefect.schedules import Cron

    from flows.elt import elt

    return [
        elt.to_deployment(
            name=spec.name,
            description=spec.description,
            parameters=spec.parameters,
            schedules=[Cron(cron, timezone=timezone) for cron, timezone in spec.crons],
            concurrency_limit=1,
        )
        for spec in read_specs()
    ]


def release_from_work_pool(deployments: list[Any]) -> list[str]:
    """Delete the registrations of these deployments that ``prefect deploy`` bound to a work pool
    (same names, code pulled by a worker), so ``haven serve`` can serve them from this process;
    return their names. Their past flow runs stay."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    released = []
    with get_client(sync_client=True) as client:
        for served in deployments:
            name = f"{served.flow_name}/{served.name}"
            try:
                existing = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                client.delete_deployment(existing.id)
                released.append(name)
    return released
