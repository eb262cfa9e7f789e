"""The fault benchmark's TCP proxy, against a small in-test echo server as upstream."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from haven.bench.fault_proxy import FaultProxy, FaultProxyProcess, proxied_url

PAYLOAD = os.urandom(100 * 1024)
TIMEOUT = 10.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256


class _Talker(socketserver.BaseRequestHandler):
    """Speaks first, like a server sending its replies after the client's request was read."""

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.sendall(PAYLOAD)
            self.request.recv(1)


@contextlib.contextmanager
def serving(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    """A threaded TCP server on 127.0.0.1 with the handler; yields its port."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with serving(_Echo) as port:
        yield port


@pytest.fixture(scope="module")
def talker_port() -> Iterator[int]:
    with serving(_Talker) as port:
        yield port


def exchange(port: int, payload: bytes) -> tuple[bytes, BaseException | None]:
    """Send payload (from a thread, so neither side's buffers can deadlock) and read it back."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sender = threading.Thread(target=_send_quietly, args=(sock, payload), daemon=True)
        sender.start()
        result = read_up_to(sock, len(payload))
        sender.join(TIMEOUT)
    return result


def read_up_to(sock: socket.socket, size: int) -> tuple[bytes, BaseException | None]:
    """Read until size bytes, EOF or an error; return what came and the error, if any."""
    received = bytearray()
    try:
        while len(received) < size and (chunk := sock.recv(65536)):
            received += chunk
    except OSError as exc:
        return bytes(received), exc
    return bytes(received), None


def _send_quietly(sock: socket.socket, payload: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(payload)


def closed_port() -> int:
    """A port nobody listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_faults_forwards_every_byte(echo_port: int) -> None:
    with FaultProxy(echo_port, fault_share=0) as proxy:
        for _ in range(50):
            received, error = exchange(proxy.port, PAYLOAD)
            assert error is None
            assert received == PAYLOAD
        stats = proxy.stats()
    assert stats.connections == 50
    assert stats.faulted == 0
    assert stats.upstream_refused == 0


def test_many_concurrent_connections(echo_port: int) -> None:
    payload = os.urandom(16 * 1024)
    with FaultProxy(echo_port, fault_share=0) as proxy, ThreadPoolExecutor(100) as pool:
        results = list(pool.map(lambda _: exchange(proxy.port, payload), range(100)))
        assert all(result == (payload, None) for result in results)
        assert proxy.stats().connections == 100


def test_drop_closes_the_client_without_an_echo(echo_port: int) -> None:
    with FaultProxy(echo_port, fault_share=1, kinds=("drop",)) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"ping")
            try:
                reply = sock.recv(1024)
            except ConnectionResetError:
                reply = b""
        assert reply == b""
        stats = proxy.stats()
    assert (stats.connections, stats.dropped, stats.faulted) == (1, 1, 1)


def test_reset_cuts_the_reply_short(echo_port: int) -> None:
    with FaultProxy(echo_port, fault_share=1, kinds=("reset",)) as proxy:
        received, error = exchange(proxy.port, PAYLOAD)
        stats = proxy.stats()
    assert len(received) <= 16384 < len(PAYLOAD)
    assert received == PAYLOAD[: len(received)]
    # The client's sender may see the RST first; the RST itself is checked by the next test.
    assert error is None or isinstance(error, ConnectionResetError)
    assert (stats.connections, stats.reset, stats.faulted) == (1, 1, 1)


def test_reset_is_an_rst_even_with_nothing_unread(talker_port: int) -> None:
    """The proxy has read everything the client sent, so a plain close would be a clean EOF."""
    with FaultProxy(talker_port, fault_share=1, kinds=("reset",)) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
            received, error = read_up_to(sock, len(PAYLOAD))
        assert proxy.stats().reset == 1
    assert 0 < len(received) <= 16384
    assert isinstance(error, ConnectionResetError)


def test_stall_still_forwards_every_byte(echo_port: int) -> None:
    with FaultProxy(echo_port, fault_share=1, kinds=("stall",), stall_seconds=0.2) as proxy:
        received, error = exchange(proxy.port, PAYLOAD)
        stats = proxy.stats()
    assert error is None
    assert received == PAYLOAD
    assert (stats.connections, stats.stalled, stats.faulted) == (1, 1, 1)


def _faults_for(echo_port: int, seed: int) -> tuple[int, list[bool]]:
    """Run 200 sequential connections; return the fault count and which replies were intact."""
    payload = os.urandom(20 * 1024)  # more than the largest reset point, so every reset fires
    with FaultProxy(echo_port, fault_share=0.3, stall_seconds=0.01, seed=seed) as proxy:
        intact = [exchange(proxy.port, payload) == (payload, None) for _ in range(200)]
        stats = proxy.stats()
    assert stats.connections == 200
    assert stats.faulted == stats.dropped + stats.reset + stats.stalled
    assert stats.dropped and stats.reset and stats.stalled
    return stats.faulted, intact


def test_fault_share_is_reproducible_for_a_seed(echo_port: int) -> None:
    faulted, intact = _faults_for(echo_port, seed=42)
    assert 30 <= faulted <= 90
    assert (faulted, intact) == _faults_for(echo_port, seed=42)


def test_upstream_down_closes_the_client() -> None:
    with FaultProxy(closed_port(), fault_share=0) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
            try:
                reply = sock.recv(1024)
            except ConnectionResetError:
                reply = b""
        assert reply == b""
        stats = proxy.stats()
    assert (stats.connections, stats.upstream_refused, stats.faulted) == (1, 1, 0)


def test_stop_closes_open_connections(echo_port: int) -> None:
    proxy = FaultProxy(echo_port, fault_share=0)
    assert proxy.start() == proxy.start() == proxy.port
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"ping")
        assert sock.recv(1024) == b"ping"
        proxy.stop()
        try:
            reply = sock.recv(1024)
        except ConnectionResetError:
            reply = b""
    assert reply == b""
    proxy.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = proxy.port


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_fault_share_is_validated(share: float) -> None:
    with pytest.raises(ValueError):
        FaultProxy(5432, fault_share=share)
    proxy = FaultProxy(5432, fault_share=0.5)
    with pytest.raises(ValueError):
        proxy.set_fault_share(share)
    proxy.set_fault_share(0)
    proxy.set_fault_share(1)


@pytest.mark.parametrize("kinds", [("boom",), (), ("drop", "boom")])
def test_kinds_are_validated(kinds: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        FaultProxy(5432, kinds=kinds)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://haven_loader:p%40ss@127.0.0.1:5433/haven?sslmode=disable",
            "postgresql://haven_loader:p%40ss@127.0.0.1:6000/haven?sslmode=disable",
        ),
        (
            "postgresql://u:a%2Fb%3Ac@db.example.com/warehouse",
            "postgresql://u:a%2Fb%3Ac@127.0.0.1:6000/warehouse",
        ),
        ("postgresql://localhost:5432/haven", "postgresql://127.0.0.1:6000/haven"),
    ],
)
def test_proxied_url_swaps_only_host_and_port(url: str, expected: str) -> None:
    assert proxied_url(url, 6000) == expected


def test_the_proxy_in_its_own_process_forwards_counts_and_faults(echo_port: int) -> None:
    payload = os.urandom(100_000)
    with FaultProxyProcess(echo_port, fault_share=0.0, kinds=("drop", "reset")) as proxy:
        assert exchange(proxy.port, payload) == (payload, None)
        proxy.set_fault_share(1.0)
        echoed, _ = exchange(proxy.port, payload)
        assert echoed != payload, "a faulted connection does not echo everything"
        with pytest.raises(ValueError):
            proxy.set_fault_share(2.0)
        stats = proxy.stats()
    assert stats.connections == 2 and stats.faulted == 1
    with pytest.raises(ValueError):
        FaultProxyProcess(echo_port, kinds=("boom",))
