"""Small measuring tools shared by the benchmarks: wall time and peak memory of a step, medians."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


@dataclass
class Sample:
    seconds: float = 0.0
    peak_rss_bytes: int = 0


@dataclass
class PeakMemory:
    """Peak resident memory of this process and its children, sampled every 50 ms (dlt's
    normalize workers are child processes, so the process's own maxrss would miss them)."""

    interval: float = 0.05
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _rss(self) -> int:
        process = psutil.Process()
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    @contextmanager
    def watching(self) -> Iterator[None]:
        self.peak = self._rss()
        self._stop.clear()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


def measure(step: Callable[[], object]) -> tuple[object, Sample]:
    """Run ``step`` once; its result, wall time and peak memory."""
    memory = PeakMemory()
    with memory.watching():
        started = time.perf_counter()
        result = step()
        elapsed = time.perf_counter() - started
    return result, Sample(elapsed, memory.peak)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
