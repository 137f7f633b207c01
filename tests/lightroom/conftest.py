"""A real Seamwise server on loopback for the Lightroom plugin tests."""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"Seamwise listening on (http://\S+):(\d+)")
PAIRING = re.compile(r"Pairing code[^:]*:\s*(\d{6})")


class ServerProcess:
    """`python -m server serve --engine identity` in a subprocess; can be killed and restarted on
    the same port and data directory."""

    def __init__(self, data_dir: Path, *extra: str):
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = 0
        self.address = ""
        self.pairing_code: Optional[str] = None
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "server", "serve", "--port", str(self.port),
               "--engine", "identity", "--data-dir", str(self.data_dir), *self.extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=lambda: os.nice(10))
        self.starts += 1
        found = threading.Event()
        lines: list[str] = []

        def read() -> None:
            for line in self.proc.stdout:  # keep draining so the server never blocks on a pipe
                lines.append(line)
                code = PAIRING.search(line)
                if code:
                    self.pairing_code = code.group(1)
                match = LISTENING.search(line)
                if match and not found.is_set():
                    self.address = f"{match.group(1)}:{match.group(2)}"
                    self.port = int(match.group(2))
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(timeout):
            self.kill()
            raise RuntimeError("server did not start:\n" + "".join(lines))

    def kill(self) -> None:
        """kill -9: no clean shutdown, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self) -> None:
        self.kill()
        deadline = time.monotonic() + 20
        while True:  # the port may linger for a moment after the kill
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture
def make_server(tmp_path):
    servers: list[ServerProcess] = []

    def make(*extra: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(servers)}", *extra)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()


def _shared_server(tmp_path_factory, delay: str):
    shared = ServerProcess(tmp_path_factory.mktemp("server"), "--identity-delay", delay)
    shared.start()
    return shared


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One quick server shared by a module's tests (each job is its own; starting costs seconds)."""
    shared = _shared_server(tmp_path_factory, "0.02")
    yield shared
    shared.kill()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """A shared server whose identity engine takes 0.2 s per step, so that jobs are seen queued
    and running. Tests leave no job unfinished on it."""
    shared = _shared_server(tmp_path_factory, "0.2")
    yield shared
    shared.kill()


class DroppingProxy:
    """A TCP relay in front of the server that cuts chosen connections halfway through the
    response, as a flaky network or a sleeping laptop would. `drop(prefix, times)`: the next
    `times` requests whose first line starts with `prefix` lose their connection after the
    response has begun."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.rules: dict[bytes, int] = {}
        self.dropped: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def drop(self, prefix: str, times: int = 1) -> None:
        with self._lock:
            self.rules[prefix.encode()] = times

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _should_drop(self, head: bytes) -> bool:
        with self._lock:
            for prefix, times in self.rules.items():
                if times > 0 and head.startswith(prefix):
                    self.rules[prefix] = times - 1
                    self.dropped.append(head.split(b"\r\n", 1)[0])
                    return True
        return False

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            head = client.recv(65536)
            cut = self._should_drop(head)
            upstream.sendall(head)

            def pump_up() -> None:
                try:
                    while data := client.recv(65536):
                        upstream.sendall(data)
                except OSError:
                    pass

            threading.Thread(target=pump_up, daemon=True).start()
            try:
                while data := upstream.recv(65536):
                    if cut:  # forward part of the answer, then reset the connection
                        client.sendall(data[: max(1, len(data) // 2)])
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        client.shutdown(socket.SHUT_RDWR)  # also wakes pump_up, which holds the socket
                        return
                    client.sendall(data)
            except OSError:
                pass


@pytest.fixture
def proxy(server):
    relay = DroppingProxy(server.port)
    yield relay
    relay.close()
