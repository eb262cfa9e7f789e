"""A TCP fault-injection proxy for the fault benchmark.

The benchmark points the pipeline (psycopg, dlt, dbt) at this proxy instead of PostgreSQL. The
proxy forwards every connection to the real server, and for a chosen share of connections it
injects one network fault: it drops the connection before it reaches the server, resets it with a
TCP RST part way through the server's replies (during authentication or mid-query), or stalls it
before connecting. Which connections get which fault is drawn from a seeded random generator, so a
run is reproducible for connections arriving in the same order.

The proxy runs its own asyncio event loop in a daemon thread, so synchronous code can use it:

    with FaultProxy(5432, fault_share=0.05, seed=7) as proxy:
        run_pipeline(proxied_url(warehouse_url, proxy.port))
        print(proxy.stats())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import random
import socket
import struct
import threading
import weakref
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)

KINDS = ("drop", "reset", "stall")
LISTEN_HOST = "127.0.0.1"
_CHUNK = 65536
_MAX_RESET_BYTES = 16384
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class FaultStats:
    """A snapshot of the proxy's counters."""

    connections: int = 0
    dropped: int = 0
    reset: int = 0
    stalled: int = 0
    upstream_refused: int = 0

    @property
    def faulted(self) -> int:
        """Connections that had a fault injected (refused upstream connects are not faults)."""
        return self.dropped + self.reset + self.stalled


@dataclass(frozen=True)
class _Plan:
    """What to do to one connection: no fault (kind None), or one fault."""

    kind: str | None = None
    reset_after: int = 0


def _check_share(share: float) -> float:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"fault_share must be between 0 and 1, got {share!r}")
    return float(share)


def _check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    kinds = tuple(kinds)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}")
    return kinds


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP RST: linger on with timeout 0, then close at once."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: int | None = None
) -> bool:
    """Copy reader to writer until EOF or a connection error. With a budget, stop after that many
    bytes have been written and flushed, and return True (the caller then resets)."""
    sent = 0
    try:
        while data := await reader.read(_CHUNK):
            if budget is not None and sent + len(data) >= budget:
                writer.write(data[: budget - sent])
                await writer.drain()
                return True
            writer.write(data)
            await writer.drain()
            sent += len(data)
    except OSError:
        pass
    return False


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that injects drop, reset and stall faults into a share of
    connections to an upstream server."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = "127.0.0.1",
        fault_share: float = 0.01,
        stall_seconds: float = 2.0,
        seed: int = 0,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.stall_seconds = stall_seconds
        self._share = _check_share(fault_share)
        self._kinds = _check_kinds(kinds)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("connections", "dropped", "reset", "stalled", "upstream_refused"), 0
        )
        self._lifecycle = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    # -- public API ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port; RuntimeError when the proxy is not running."""
        if self._port is None:
            raise RuntimeError("FaultProxy is not running; call start() first")
        return self._port

    def set_fault_share(self, share: float) -> None:
        """Change the share of connections that get a fault; takes effect for new connections."""
        checked = _check_share(share)
        with self._lock:
            self._share = checked

    def stats(self) -> FaultStats:
        with self._lock:
            return FaultStats(**self._counts)

    def start(self) -> int:
        """Start listening (idempotent) and return the port."""
        with self._lifecycle:
            if self._port is not None:
                return self._port
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            try:
                future = asyncio.run_coroutine_threadsafe(self._listen(), loop)
                self._port = future.result(timeout=_STOP_TIMEOUT)
            except BaseException:
                self._stop_loop()
                raise
            return self._port

    def stop(self) -> None:
        """Close the listener and every open connection, and join the thread (idempotent)."""
        with self._lifecycle:
            if self._loop is None:
                return
            if self._server is not None:
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
                with contextlib.suppress(Exception):
                    future.result(timeout=_STOP_TIMEOUT)
            self._stop_loop()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=_STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = self._server = self._port = None

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._accept, LISTEN_HOST, 0, backlog=1024)
        return self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for transport in list(self._transports):
            transport.abort()
        # Let the transports' connection_lost callbacks run, which close the sockets.
        for _ in range(2):
            await asyncio.sleep(0)

    # -- connections -----------------------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _plan(self) -> _Plan:
        """Draw this connection's fault; called in the order connections are accepted."""
        with self._lock:
            self._counts["connections"] += 1
            if self._random.random() >= self._share:
                return _Plan()
            kind = self._random.choice(self._kinds)
            if kind == "reset":
                return _Plan(kind, self._random.randint(1, _MAX_RESET_BYTES))
            return _Plan(kind)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The server's callback: plan the fault now (accept order), serve in a tracked task."""
        self._transports.add(writer.transport)
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer, self._plan()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plan: _Plan
    ) -> None:
        try:
            await self._serve_plan(reader, writer, plan)
        except Exception:
            log.warning("fault proxy: connection handler failed", exc_info=True)
        finally:
            _close(writer)

    async def _serve_plan(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, plan: _Plan
    ) -> None:
        if plan.kind == "drop":
            self._count("dropped")
            return
        if plan.kind == "stall":
            self._count("stalled")
            await asyncio.sleep(self.stall_seconds)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self._count("upstream_refused")
            return
        self._transports.add(up_writer.transport)
        try:
            await self._relay(reader, writer, up_reader, up_writer, plan.reset_after or None)
        finally:
            _close(up_writer)

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        reset_after: int | None,
    ) -> None:
        """Forward both directions until one side closes; reset the client after reset_after
        bytes from upstream when that is set."""
        if reset_after is not None:
            # Make drain() wait until every byte is handed to the kernel before the RST.
            writer.transport.set_write_buffer_limits(high=0)
        upward = asyncio.ensure_future(_pump(reader, up_writer))
        downward = asyncio.ensure_future(_pump(up_reader, writer, reset_after))
        try:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (upward, downward):
                task.cancel()
            await asyncio.gather(upward, downward, return_exceptions=True)
        if downward.done() and not downward.cancelled() and downward.result():
            self._count("reset")
            _abort_with_rst(writer)


class FaultProxyProcess:
    """A :class:`FaultProxy` in a process of its own, same interface. The pipeline's native
    drivers (connectorx, ADBC) can hold the GIL while they wait for the network; a proxy thread
    in the same process would then stall with them, so the benchmark runs it here instead."""

    def __init__(self, upstream_port: int, **options: object) -> None:
        FaultProxy(upstream_port, **options)  # type: ignore[arg-type]  # validates the options
        self._arguments = (upstream_port, options)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._control: Connection | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not running")
        return self._port

    def start(self) -> int:
        if self._port is not None:
            return self._port
        context = multiprocessing.get_context("spawn")
        self._control, child = context.Pipe()
        self._process = context.Process(
            target=_serve_proxy, args=(child, *self._arguments), daemon=True
        )
        self._process.start()
        self._port = int(self._call("port"))
        return self._port

    def set_fault_share(self, share: float) -> None:
        _check_share(share)
        self._call("share", share)

    def stats(self) -> FaultStats:
        return FaultStats(**self._call("stats"))

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError, EOFError):
            self._call("stop")
        self._process.join(timeout=_STOP_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
        self._process = self._control = self._port = None

    def __enter__(self) -> FaultProxyProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, command: str, argument: object = None) -> Any:
        assert self._control is not None, "the proxy is not running"
        self._control.send((command, argument))
        answer = self._control.recv()
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _serve_proxy(control: Connection, upstream_port: int, options: dict[str, Any]) -> None:
    """The proxy process: answer the parent's commands until it says stop (or goes away)."""
    proxy = FaultProxy(upstream_port, **options)
    proxy.start()
    try:
        while True:
            try:
                command, argument = control.recv()
            except EOFError:
                return
            try:
                if command == "port":
                    control.send(proxy.port)
                elif command == "share":
                    proxy.set_fault_share(argument)
                    control.send(None)
                elif command == "stats":
                    control.send(asdict(proxy.stats()))
                elif command == "stop":
                    control.send(None)
                    return
            except ValueError as error:
                control.send(error)
    finally:
        proxy.stop()


def proxied_url(url: str, port: int) -> str:
    """The PostgreSQL URL with host 127.0.0.1 and the given port; user, password (still escaped),
    database and query unchanged."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}{LISTEN_HOST}:{port}"))
