"""Round trip of a large 16-bit RGBA frame through the WebSocket protocol on loopback.

The engine is replaced by the identity engine (one step), so the figures are the protocol's own:
upload (client -> server disk), download (server disk -> client) and the server's peak resident
memory, compared with the frame size. Targets: >= 500 MB/s, peak RSS <= 2.5 x the frame.

    python -m benchmarks.transfer            # 150 MP, 16-bit RGBA = 1.2 GB
    python -m benchmarks.transfer --quick    # 12 MP
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from seamwise.alloc import tune_allocator
from server.client import WsClient, _as_bytes, header_for

from ._server import RunningServer


def make_frame(width: int, height: int) -> np.ndarray:
    """A reproducible frame whose every row differs (so a misplaced chunk would show)."""
    rng = np.random.default_rng(0)
    row_block = rng.integers(0, 65536, (64, width, 4), dtype=np.uint16)
    frame = np.empty((height, width, 4), np.uint16)
    for y in range(0, height, 64):
        n = min(64, height - y)
        np.add(row_block[:n], np.uint16(y // 64), out=frame[y:y + n])
    return frame


class Clock:
    """Wall time plus the CPU time of the client (this process) and of the server process."""

    def __init__(self, server: RunningServer):
        self.server = server
        self.marks = []

    def mark(self) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), self.server.cpu_seconds()))

    def span(self, i: int) -> tuple[float, float, float]:
        (w0, c0, s0), (w1, c1, s1) = self.marks[i], self.marks[i + 1]
        return w1 - w0, c1 - c0, s1 - s0


async def round_trip(url: str, frame: np.ndarray, server: RunningServer) -> dict:
    result = np.empty_like(frame)
    result[...] = 0                # touch the pages now, not while timing the download
    async with WsClient(url) as c:
        cb = c.welcome["limits"]["max_chunk_bytes"]
        server.reset_peak()
        clock = Clock(server)
        clock.mark()
        acc = await c.create(header_for(frame), {"steps": 1}, chunk_bytes=cb)
        job = acc["job"]
        await c.upload(job, "image", _as_bytes(frame), cb, window=acc["window"])
        clock.mark()
        done = await c.wait(job)
        clock.mark()
        await c.fetch(job, "result", _as_bytes(result), done["result"]["chunk_bytes"])
        clock.mark()
        await c.release(job)
        exact = bool(np.array_equal(result, frame))
        del result
    return {"upload": clock.span(0), "render": clock.span(1), "download": clock.span(2),
            "exact": exact}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="12 MP instead of 150 MP")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="server data directory (default: a temporary one)")
    args = ap.parse_args(argv)
    # the Python stand-in client gets the allocator setting the server applies to itself
    tune_allocator()
    width, height = (4000, 3000) if args.quick else (15000, 10000)
    frame = make_frame(width, height)
    nbytes = frame.nbytes
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        server = RunningServer(Path(tmp) / "data")
        try:
            t = asyncio.run(round_trip(server.url, frame, server))
        finally:
            peak = server.peak_rss
            server.close()
    mb = nbytes / 1e6
    up_wall, up_client, up_server = t["upload"]
    down_wall, down_client, down_server = t["download"]
    figures = {
        "frame": f"{width}x{height} RGBA 16-bit", "frame_mb": round(mb, 1),
        "upload_mb_s": round(mb / up_wall, 1),
        "download_mb_s": round(mb / down_wall, 1),
        "round_trip_mb_s": round(2 * mb / (up_wall + down_wall), 1),
        # what one core per process would sustain: bytes over the busier side's CPU time
        "upload_cpu_bound_mb_s": round(mb / max(up_client, up_server, 1e-9), 1),
        "download_cpu_bound_mb_s": round(mb / max(down_client, down_server, 1e-9), 1),
        "server_cpu_s_per_gb": round((up_server + down_server) / (2 * mb / 1000), 3),
        "client_cpu_s_per_gb": round((up_client + down_client) / (2 * mb / 1000), 3),
        "identity_render_s": round(t["render"][0], 2),
        "peak_server_rss_mb": round(peak / 1e6, 1),
        "rss_over_frame": round(peak / nbytes, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "bit_exact": t["exact"],
    }
    f = figures
    print(f"{'frame':<28}{f['frame']} ({f['frame_mb']} MB)")
    print(f"{'':<28}{'wall MB/s':>10}{'CPU-bound MB/s':>16}{'client CPU s':>14}"
          f"{'server CPU s':>14}")
    print(f"{'upload':<28}{f['upload_mb_s']:>10}{f['upload_cpu_bound_mb_s']:>16}"
          f"{up_client:>14.2f}{up_server:>14.2f}")
    print(f"{'download':<28}{f['download_mb_s']:>10}{f['download_cpu_bound_mb_s']:>16}"
          f"{down_client:>14.2f}{down_server:>14.2f}")
    print(f"{'round trip (up+down)':<28}{f['round_trip_mb_s']:>10}")
    print(f"{'identity render':<28}{f['identity_render_s']:>10} s (result written and fsynced)")
    print(f"{'peak server RSS':<28}{f['peak_server_rss_mb']:>10} MB = {f['rss_over_frame']} x frame")
    print(f"{'load average (1 min)':<28}{f['load_average_1m']:>10}")
    print(f"{'bit exact':<28}{f['bit_exact']}")
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
