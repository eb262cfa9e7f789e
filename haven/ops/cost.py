"""What a run costs: CPU-seconds (this process, its children and the embedded server), bytes
moved, warehouse size, and a monthly estimate for the schedule against the budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from haven.settings import Settings


def cpu_seconds(server_data_dir: Path | None = None) -> float:
    """CPU time used so far by this process and its children, plus the embedded PostgreSQL's
    processes when ``server_data_dir`` is given (the database does much of the work)."""
    process = psutil.Process()
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
        except psutil.Error:
            continue
    if server_data_dir is not None:
        for candidate in psutil.process_iter(["name", "cmdline"]):
            try:
                cmdline = " ".join(candidate.info["cmdline"] or [])
                if candidate.info["name"] == "postgres" and str(server_data_dir) in cmdline:
                    for worker in [candidate, *candidate.children()]:
                        worker_times = worker.cpu_times()
                        total += worker_times.user + worker_times.system
            except psutil.Error:
                continue
    return total


@dataclass(frozen=True)
class RunCost:
    cpu_seconds: float
    bytes_moved: int
    warehouse_bytes: int
    run_usd: float
    monthly_estimate_usd: float
    monthly_budget_usd: float

    @property
    def within_budget(self) -> bool:
        return self.monthly_estimate_usd <= self.monthly_budget_usd


def estimate(settings: Settings, *, cpu: float, bytes_moved: int, warehouse_bytes: int) -> RunCost:
    """This run's price, and the month's if every scheduled run cost the same, plus storage."""
    run_usd = (
        cpu / 3600 * settings.price_cpu_hour_usd
        + bytes_moved / 1e9 * settings.price_transfer_gb_usd
    )
    storage_usd = warehouse_bytes / 1e9 * settings.price_storage_gb_month_usd
    monthly = run_usd * settings.runs_per_month + storage_usd
    return RunCost(cpu, bytes_moved, warehouse_bytes, run_usd, monthly, settings.monthly_budget_usd)
