"""Real servers on loopback, started as subprocesses of `python -m server serve`."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServerProc:
    proc: subprocess.Popen
    url: str
    data_dir: Path
    args: list
    stderr_lines: list = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pairing_code(self, timeout: float = 10.0) -> str:
        """The code the server printed on stderr (read by a thread, so it may arrive late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stderr_lines):
                if "Pairing code" in line:
                    return line.rsplit(":", 1)[1].strip()
            time.sleep(0.05)
        raise AssertionError("no pairing code printed")


def start_server(data_dir: Path, *extra: str, engine: str = "identity",
                 port: int = 0, discovery: bool = False, preexec_fn=None) -> ServerProc:
    args = [sys.executable, "-m", "server", "serve", "--port", str(port), "--data-dir",
            str(data_dir), "--engine", engine, *extra]
    if not discovery:
        args.append("--no-discovery")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    sp = ServerProc(proc, "", data_dir, args)

    def drain_stderr() -> None:
        for line in proc.stderr:
            sp.stderr_lines.append(line)

    threading.Thread(target=drain_stderr, daemon=True).start()
    line = proc.stdout.readline()
    if not line.startswith("Seamwise listening on http://"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {''.join(sp.stderr_lines)}")
    sp.url = line.split()[-1]
    return sp


@pytest.fixture
def server_factory(tmp_path):
    started: list[ServerProc] = []

    def make(*extra: str, data_dir: Path | None = None, **kw) -> ServerProc:
        sp = start_server(data_dir or tmp_path / f"data{len(started)}", *extra, **kw)
        started.append(sp)
        return sp

    yield make
    for sp in started:
        sp.stop(signal.SIGKILL if sp.alive() else signal.SIGTERM)


@pytest.fixture
def server(server_factory) -> ServerProc:
    return server_factory()


def small_disk(tmp_path: Path, size: str) -> Path:
    """A real tmpfs of `size` (e.g. "3m") under tmp_path, unmounted when the test ends; the test
    is skipped where it cannot be mounted (that needs root)."""
    mnt = tmp_path / f"disk-{size}"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    _mounts.append(mnt)
    return mnt


_mounts: list[Path] = []


@pytest.fixture(autouse=True)
def _unmount_small_disks():
    yield
    while _mounts:
        subprocess.run(["umount", "-l", str(_mounts.pop())], check=False)


def run(coro):
    return asyncio.run(coro)
