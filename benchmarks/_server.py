"""Start a real `seamwise serve` subprocess for a benchmark and watch its memory."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


class RunningServer:
    def __init__(self, data_dir: Path, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", "0", "--data-dir", str(data_dir),
             "--engine", "identity", "--no-discovery", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("Seamwise listening on "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split()[-1]
        self.peak_rss = 0
        self._stop = threading.Event()
        self._ps = psutil.Process(self.proc.pid)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self._ps.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def cpu_seconds(self) -> float:
        t = self._ps.cpu_times()
        return t.user + t.system

    def reset_peak(self) -> None:
        self.peak_rss = self._ps.memory_info().rss

    def close(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
