"""A real Seamwise server on loopback for the Lightroom plugin tests."""
from __future__ import annotations

import os
import re
import signal
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


@pytest.fixture
def server(make_server):
    return make_server("--identity-delay", "0.02")
