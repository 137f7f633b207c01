"""Soak: good, slow and abusive clients at once against a real server on loopback.

For a bounded time, good clients render small jobs over the WebSocket and over HTTP and check
every result bit for bit; slow clients hold connections open without finishing their requests;
abusive clients send the crafted files and requests of the hardening tests (metadata zlib bombs,
a JPEG declared as PNG, TIFF strips sharing their data, huge declared bodies, oversize headers,
garbage WebSocket frames) and must each get their expected error. The server's RSS, open file
descriptors and data-directory disk are sampled every second: after the warm-up they must stay
flat, and no job a good client was told is accepted may be lost.

    python -m benchmarks.soak            # 240 s
    python -m benchmarks.soak --quick    # 30 s
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import msgpack
import numpy as np
import psutil

from engine.imageio import Picture, decode_image, encode_image
from seamwise.alloc import tune_allocator
from server.client import HttpClient, WsClient

from . import crafted
from ._server import RunningServer

MiB = 1024 * 1024
GOOD_WS, GOOD_HTTP, SLOW, ABUSIVE = 2, 1, 4, 2
ABUSE_NAMES = ("XMP zlib bomb (256 MiB)", "ICC zlib bomb (256 MiB)", "JPEG sent as PNG",
               "TIFF with shared strips", "bad params, 1 GiB declared", "pair, 1 GiB declared",
               "oversize header", "garbage WebSocket frame")


class Tally:
    def __init__(self):
        self.counts: Counter = Counter()
        self.unexpected: list[str] = []

    def count(self, kind: str, ok: bool, detail: str = "") -> None:
        self.counts[(kind, "ok" if ok else "unexpected")] += 1
        if not ok and len(self.unexpected) < 10:
            self.unexpected.append(f"{kind}: {detail}"[:300])


async def good_ws(url: str, seed: int, until: float, tally: Tally, lost: list) -> None:
    rng = np.random.default_rng(seed)
    async with WsClient(url, client=f"soak/{seed}") as c:
        while time.monotonic() < until:
            image = rng.integers(0, 65536, (96, 80, 4), dtype=np.uint16)
            job = await c.submit(image, {"steps": 2, "seed": seed})
            try:
                done = await c.wait(job, timeout=120)
                result, _ = await c.download(done)
                ok = bool(np.array_equal(result, image))
            except Exception as exc:      # an accepted job that did not come back is lost
                lost.append(f"ws {job}: {exc!r}")
                continue
            tally.count("good: WebSocket render", ok, "result differs")
            await c.release(job)


async def good_http(url: str, seed: int, until: float, tally: Tally, lost: list) -> None:
    rng = np.random.default_rng(seed)
    async with HttpClient(url) as h:
        while time.monotonic() < until:
            image = rng.integers(0, 65536, (72, 64, 3), dtype=np.uint16)
            accepted = await h.submit(encode_image(Picture(image, None, "tiff"), "tiff"),
                                      "image/tiff", steps=2)
            try:
                status = await h.wait(accepted["job"], timeout=120)
                ok = status["state"] == "done" and np.array_equal(
                    decode_image(await h.result(accepted["job"])).pixels, image)
            except Exception as exc:
                lost.append(f"http {accepted['job']}: {exc!r}")
                continue
            tally.count("good: HTTP upload", ok, str(status))
            await h.delete(accepted["job"])


async def slow(port: int, n: int, until: float, tally: Tally) -> None:
    """Hold a connection with a request that never finishes, a byte at a time; then reconnect."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            tally.count("slow: unfinished request", False, repr(exc))
            await asyncio.sleep(1)
            continue
        head = (b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
                b"c29ha3NvYWtzb2Frc29haw==\r\n\r\n") if n % 2 else \
            b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Seamwise: 1\r\nContent-Type: image/png\r\n"
        try:
            writer.write(head)
            while time.monotonic() < until and not reader.at_eof():
                writer.write(b"X-Slow: 1\r\n" if n % 2 == 0 else b"")
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(4096), 1.0)
                except asyncio.TimeoutError:
                    pass
        except OSError:
            pass
        finally:
            writer.close()
        tally.count("slow: unfinished request", True)


def _abuses(jpeg: bytes) -> list:
    """(name, coroutine factory taking url and session, expected error code)"""
    async def post(s, url, body, ctype, params=None):
        async with s.post(url + "/v1/jobs", data=body, params=params or {},
                          headers={"Content-Type": ctype, "X-Seamwise": "1"}) as r:
            return r.status, (await r.json(content_type=None)).get("code")

    async def raw(url, head):
        host, port = url.rsplit("/", 1)[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        answer = await asyncio.wait_for(reader.read(65536), 10)
        writer.close()
        status = int(answer.split(b" ", 2)[1])
        return status, json.loads(answer.partition(b"\r\n\r\n")[2] or b"{}").get("code")

    async def garbage_ws(s, url):
        async with s.ws_connect(url.replace("http", "ws") + "/v1/ws") as ws:
            await ws.send_bytes(b"\xc1\xff not msgpack")
            msg = await ws.receive(timeout=10)
            return 200, msgpack.unpackb(msg.data)["code"]

    xmp, icc = crafted.png16_xmp_bomb(256 * MiB), crafted.png16_icc_bomb(256 * MiB)
    strips = crafted.shared_strip_tiff(8000, 8000)
    attacks = [
        (lambda s, u: post(s, u, xmp, "image/png"), "too_large"),
        (lambda s, u: post(s, u, icc, "image/png"), "too_large"),
        (lambda s, u: post(s, u, jpeg, "image/png"), "unsupported_image"),
        (lambda s, u: post(s, u, strips, "image/tiff"), "unsupported_image"),
        (lambda s, u: raw(
            u, b"POST /v1/jobs?steps=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Seamwise: 1\r\nContent-Type: "
               b"image/png\r\nContent-Length: 1073741824\r\n\r\n"), "bad_params"),
        (lambda s, u: raw(
            u, b"POST /v1/pair HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1073741824\r\n\r\n{"), "too_large"),
        (lambda s, u: raw(
            u, b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n"),
         "too_large"),
        (garbage_ws, "bad_request"),
    ]
    return [(name, make, code) for name, (make, code) in zip(ABUSE_NAMES, attacks)]


async def abusive(url: str, k: int, until: float, tally: Tally, abuses: list) -> None:
    async with aiohttp.ClientSession() as s:
        i = k
        while time.monotonic() < until:
            name, make, expected = abuses[i % len(abuses)]
            i += 1
            try:
                _, code = await make(s, url)
                tally.count(f"abusive: {name}", code == expected, f"got {code}")
            except Exception as exc:
                tally.count(f"abusive: {name}", False, repr(exc))
            await asyncio.sleep(0.2)


def _disk_bytes(folder: Path) -> int:
    """Blocks held by the data directory; jobs released during the walk are skipped."""
    total = 0
    for root, _, names in os.walk(folder):     # os.walk ignores folders that vanish
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


async def sample(proc: psutil.Process, data_dir: Path, until: float, samples: list) -> None:
    t0 = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - t0, proc.memory_info().rss, proc.num_fds(),
                        await asyncio.to_thread(_disk_bytes, data_dir)))
        await asyncio.sleep(1.0)


async def soak(server: RunningServer, data_dir: Path, seconds: float) -> dict:
    jpeg = await asyncio.to_thread(crafted.jpeg, 4000, 4000)
    abuses = await asyncio.to_thread(_abuses, jpeg)
    tally, lost, samples = Tally(), [], []
    until = time.monotonic() + seconds
    port = int(server.url.rsplit(":", 1)[1])
    tasks = [sample(psutil.Process(server.proc.pid), data_dir, until + 3, samples)]
    tasks += [good_ws(server.url, i, until, tally, lost) for i in range(GOOD_WS)]
    tasks += [good_http(server.url, 100 + i, until, tally, lost) for i in range(GOOD_HTTP)]
    tasks += [slow(port, i, until, tally) for i in range(SLOW)]
    tasks += [abusive(server.url, i, until, tally, abuses) for i in range(ABUSIVE)]
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    return {"tally": tally, "lost": lost, "samples": samples, "crashed": crashed}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 s instead of 240 s")
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args(argv)
    seconds = args.seconds or (30.0 if args.quick else 240.0)
    tune_allocator()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        server = RunningServer(data_dir, "--identity-delay", "0.01")
        try:
            got = asyncio.run(soak(server, data_dir, seconds))
            alive = server.proc.poll() is None
        finally:
            server.close()
    tally, samples = got["tally"], got["samples"]
    warm = [s for s in samples if s[0] >= min(10.0, seconds / 4)] or samples
    base, end = warm[0], samples[-1]
    half = min(samples, key=lambda smp: abs(smp[0] - seconds / 2))
    figures = {
        "seconds": seconds, "alive": alive,
        "good_jobs": sum(n for (k, r), n in tally.counts.items()
                         if k.startswith("good") and r == "ok"),
        "lost": len(got["lost"]),
        "abusive_requests": sum(n for (k, _), n in tally.counts.items() if k.startswith("abusive")),
        "slow_connections": sum(n for (k, _), n in tally.counts.items() if k.startswith("slow")),
        "unexpected": sum(n for (_, r), n in tally.counts.items() if r == "unexpected"),
        "client_crashes": len(got["crashed"]),
        "rss_mib_after_warmup": round(base[1] / MiB, 1),
        "rss_mib_half": round(half[1] / MiB, 1),
        "rss_mib_peak": round(max(s[1] for s in samples) / MiB, 1),
        "rss_mib_end": round(end[1] / MiB, 1),
        "fds_after_warmup": base[2], "fds_peak": max(s[2] for s in samples), "fds_end": end[2],
        "disk_mib_after_warmup": round(base[3] / MiB, 2),
        "disk_mib_peak": round(max(s[3] for s in samples) / MiB, 2),
        "disk_mib_end": round(end[3] / MiB, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
    }
    print(f"{'clients':<44}{'ok':>8}{'unexpected':>12}")
    for kind in sorted({k for k, _ in tally.counts}):
        print(f"{kind:<44}{tally.counts[(kind, 'ok')]:>8}{tally.counts[(kind, 'unexpected')]:>12}")
    print()
    print(f"{'server':<24}{'after warm-up':>14}{'half time':>10}{'peak':>10}{'end':>10}")
    for name, key, at_half in (("RSS (MiB)", "rss_mib", half[1] / MiB),
                               ("open fds", "fds", half[2]),
                               ("data dir disk (MiB)", "disk_mib", half[3] / MiB)):
        print(f"{name:<24}{figures[key + '_after_warmup']:>14}{round(at_half, 2):>10}"
              f"{figures[key + '_peak']:>10}{figures[key + '_end']:>10}")
    print()
    print(f"{'accepted jobs lost':<24}{figures['lost']}   server alive: {alive}   "
          f"{seconds:.0f} s on {figures['machine']}")
    for line in tally.unexpected + got["lost"][:5] + got["crashed"][:5]:
        print("  !", line)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
