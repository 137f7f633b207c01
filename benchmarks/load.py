"""20 clients at once, each with its own WebSocket connection and one small job.

Every job must complete bit-exact with none lost; latency is measured from `job.create` to the
last result chunk, per client. The identity engine sleeps per step so the queue really builds up
(one worker runs jobs in order, as it would with one GPU).

    python -m benchmarks.load            # 20 clients, 512x512 RGBA 16-bit, 4 steps x 20 ms
    python -m benchmarks.load --quick    # 20 clients, 128x128
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
from server.client import WsClient

from ._server import RunningServer


async def one_client(url: str, seed: int, side: int) -> dict:
    image = np.random.default_rng(seed).integers(0, 65536, (side, side, 4), dtype=np.uint16)
    t0 = time.perf_counter()
    async with WsClient(url, client=f"load/{seed}") as c:
        r = await c.render(image, {"steps": 4, "seed": seed})
    return {"latency_s": time.perf_counter() - t0, "exact": bool(np.array_equal(r.image, image)),
            "job": r.job}


async def run_all(url: str, clients: int, side: int) -> list:
    return await asyncio.gather(*(one_client(url, i, side) for i in range(clients)),
                                return_exceptions=True)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", type=int, default=20)
    args = ap.parse_args(argv)
    tune_allocator()         # as the server does for itself (server/alloc.py)
    side = 128 if args.quick else 512
    delay = 0.02
    with tempfile.TemporaryDirectory() as tmp:
        server = RunningServer(Path(tmp) / "data", "--identity-delay", str(delay))
        try:
            t0 = time.perf_counter()
            outcomes = asyncio.run(run_all(server.url, args.clients, side))
            wall = time.perf_counter() - t0
        finally:
            server.close()
    ok = [o for o in outcomes if isinstance(o, dict) and o["exact"]]
    failed = [repr(o) for o in outcomes if not (isinstance(o, dict) and o["exact"])]
    lat = np.array([o["latency_s"] for o in ok]) if ok else np.array([np.nan])
    figures = {
        "clients": args.clients, "image": f"{side}x{side} RGBA 16-bit",
        "engine": f"identity, 4 steps x {delay * 1000:.0f} ms",
        "completed": len(ok), "lost_or_wrong": len(failed),
        "distinct_jobs": len({o["job"] for o in ok}),
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p95_s": round(float(np.percentile(lat, 95)), 3),
        "max_s": round(float(lat.max()), 3), "wall_s": round(wall, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(f"{'clients':<22}{figures['clients']}")
    print(f"{'image':<22}{figures['image']}")
    print(f"{'engine':<22}{figures['engine']}")
    print(f"{'completed bit-exact':<22}{figures['completed']}")
    print(f"{'lost or wrong':<22}{figures['lost_or_wrong']}")
    print(f"{'latency p50 / p95':<22}{figures['p50_s']} s / {figures['p95_s']} s "
          f"(max {figures['max_s']} s)")
    print(f"{'wall':<22}{figures['wall_s']} s")
    print(f"{'load average (1 min)':<22}{figures['load_average_1m']}")
    for f in failed[:5]:
        print("failure:", f)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
