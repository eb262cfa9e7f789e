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

    def _sample(self) -> None:
        self.peak = max(self.peak, self._rss())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    @contextmanager
    def watching(self) -> Iterator[None]:
        self.peak = 0
        self._sample()
        self._stop.clear()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


@dataclass
class ProcessPeaks(PeakMemory):
    """Peak RSS of named processes that are not this one's children (a Spark cluster's), each
    with its own child processes (a worker's executors) counted apart."""

    pids: dict[str, int] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=dict)
    interval: float = 0.2

    def _sample(self) -> None:
        for name, pid in self.pids.items():
            try:
                process = psutil.Process(pid)
                own = process.memory_info().rss
                children = sum(child.memory_info().rss for child in process.children(True))
            except psutil.Error:
                continue
            self.peaks[name] = max(self.peaks.get(name, 0), own)
            if children:
                key = f"{name} executor" if name.startswith("worker") else f"{name} children"
                self.peaks[key] = max(self.peaks.get(key, 0), children)


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
