"""The render farm on a real local Ray cluster of CPU actors, and a model of GPU boxes on a LAN.

    python -m benchmarks.farm [--quick]

Measured here (one local Ray cluster, 2 CPUs, the bundled model, one torch thread per actor),
each pair side by side in one run:
1. throughput: 8 small jobs through the cluster engine with 1 actor, then with 2;
2. one frame split across 2 actors (the leader and one helper) vs the same frame on 1, for two
   canvas sizes: wall-time ratio, the per-step exchange (object-store bytes and the step's wall
   time beyond its slowest group's compute), and whether the result is bit-identical;
3. an actor killed mid-job: the job completes on the other actor, identical to an unkilled run.
On a shared 2-core machine these timings are noisy; the ratios are what to read.

Modelled (arithmetic, no cluster): per-step exchange bytes and time vs compute per step for N
GPU boxes on 1/10/25 GbE, SDXL and FLUX geometry at 40 and 150 MP (`model_rows`; the inputs are
named there and in docs/FARM.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _engine(actors: int, split_mp: float):
    from server.farm.cluster import ClusterSpec
    from server.farm.engine import ClusterEngine

    engine = ClusterEngine(ClusterSpec(None, actors),
                           {"kind": "real", "model": "tiny", "identity_delay": 0.0,
                            "layerwise": None, "layerwise_ram_gib": None}, split_mp)
    engine.warm_up()
    return engine


def _params(**kw) -> dict:
    return {"scale": 1, "steps": 2, "strength": 0.5, "seed": 3, "strategy": "memory", **kw}


def _quiet(_p) -> None:
    pass


def throughput(image: np.ndarray, jobs: int) -> dict:
    """Seconds for `jobs` equal jobs with 1 and with 2 actors (as many at once as actors)."""
    out = {}
    for actors in (1, 2):
        engine = _engine(actors, split_mp=1e9)
        try:
            with ThreadPoolExecutor(actors) as pool:
                t0 = time.perf_counter()
                list(pool.map(lambda _: engine.render(image, _params(), None, _quiet,
                                                      lambda: False), range(jobs)))
                out[actors] = time.perf_counter() - t0
        finally:
            engine.close()
    return {"jobs": jobs, "size": list(image.shape[:2]), "seconds_1": round(out[1], 2),
            "seconds_2": round(out[2], 2), "speedup": round(out[1] / out[2], 2)}


def split(engine_one, engine_split, image: np.ndarray, tile: int) -> dict:
    """One frame on one actor vs split across two: wall ratio, per-step exchange, same bits."""
    params = _params(tile=tile)
    t0 = time.perf_counter()
    alone = engine_one.render(image, params, None, _quiet, lambda: False)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    shared = engine_split.render(image, params, None, _quiet, lambda: False)
    t_split = time.perf_counter() - t0
    farm = shared.stats["farm"]
    canvas_bytes = image.shape[0] * image.shape[1] * 3 * 4
    return {"size": list(image.shape[:2]), "canvas_bytes": canvas_bytes,
            "tiles_per_step": shared.stats["tiles"], "seconds_1": round(t_one, 2),
            "seconds_2": round(t_split, 2), "speedup": round(t_one / t_split, 2),
            "exchange_bytes_per_step": farm["exchange_bytes"] // farm["steps"],
            "exchange_s_per_step": round(farm["exchange_s"] / farm["steps"], 4),
            "compute_s_per_step": round(farm["compute_s"] / farm["steps"], 4),
            "bit_identical": bool(np.array_equal(alone.image, shared.image))}


def kill_mid_job(engine, image: np.ndarray, tile: int, reference: np.ndarray) -> dict:
    """Kill the actor running a job once it has begun denoising; the job must still finish."""
    import ray

    killed: dict = {}

    def on_progress(p) -> None:
        if not killed and str(p.phase) == "denoise" and p.runs_on:
            actor = next(a for a, w in engine.where.items()
                         if w["actor"] == p.runs_on["actor"])
            killed["actor"] = p.runs_on["actor"]
            threading.Thread(target=ray.kill, args=(actor,), kwargs={"no_restart": False}).start()

    t0 = time.perf_counter()
    out = engine.render(image, _params(tile=tile, steps=4), None, on_progress, lambda: False)
    return {"killed": killed.get("actor"), "finished_on": out.stats["runs_on"]["actor"],
            "attempt": out.stats["runs_on"]["attempt"],
            "seconds": round(time.perf_counter() - t0, 2),
            "identical": bool(np.array_equal(out.image, reference))}


# ---- the model of GPU boxes on a LAN ------------------------------------------------------------
GBE = {"1 GbE": 0.94e9 / 8, "10 GbE": 9.4e9 / 8, "25 GbE": 23.5e9 / 8}   # usable bytes/s (TCP)
# Latent geometry and compute per step of one output megapixel on one H100, tiled with memory's
# halo. SDXL: measured, 7.94 s for 4 steps of 39.9 MP (BENCHMARKS.md, Adapters / GPU), ×2 for
# classifier-free guidance. FLUX: assumed 4× SDXL's per-pixel compute (12 B vs 2.6 B parameters,
# guidance distilled into one pass); replace with a measurement when there is one.
MODELS = {"SDXL": {"channels": 4, "s_per_mp_step": 7.94 / 4 / 39.9 * 2},
          "FLUX": {"channels": 16, "s_per_mp_step": 7.94 / 4 / 39.9 * 2 * 4}}
HALO_WORK = 1.25         # token-evaluations per canvas position with memory's halo (BENCHMARKS.md)
STEP_LATENCY_S = 0.005   # object-store and actor-call latency per step on a LAN (order of)
TILES_PER_MP = 48 / 39.9  # 1024 px tiles: 48 for the 39.9 MP frame (BENCHMARKS.md, Adapters / GPU)
BATCH = 4                # tiles per model call: the unit a step is split in


def model_rows() -> list[dict]:
    """Per step: bytes on the leader's link, their time, the compute, and the speedup on N boxes.

    The leader puts the canvas (float32 latent) in its object store; each helper's box pulls it
    once per step (N-1 copies leave the leader) and returns its share of x0 with halos
    ((N-1)/N × HALO_WORK of a canvas). The link is the leader's, full duplex: the step waits for
    the larger direction. A step is split in whole batches, so the slowest box computes
    ceil(B/N) of the step's B batches: speedup = T1 / (T1·ceil(B/N)/B + exchange + latency)."""
    rows = []
    for name, m in MODELS.items():
        for mp in (40, 150):
            canvas = mp * 1e6 / 64 * m["channels"] * 4
            t1 = mp * m["s_per_mp_step"]
            batches = math.ceil(math.ceil(mp * TILES_PER_MP) / BATCH)
            for n in (2, 4, 8):
                out_bytes = (n - 1) * canvas
                in_bytes = (n - 1) / n * HALO_WORK * canvas
                for link, bps in GBE.items():
                    exchange = max(out_bytes, in_bytes) / bps
                    rows.append({"model": name, "mp": mp, "boxes": n, "link": link,
                                 "canvas_mb": round(canvas / 1e6, 1),
                                 "exchange_mb": round((out_bytes + in_bytes) / 1e6),
                                 "exchange_s": round(exchange, 2),
                                 "compute_s_1": round(t1, 1), "batches": batches,
                                 "speedup": round(t1 / (t1 * math.ceil(batches / n) / batches
                                                        + exchange + STEP_LATENCY_S), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller images")
    args = ap.parse_args()
    from server.farm.cluster import ClusterSpec, connect

    connect(ClusterSpec(None, 2), object_store_bytes=256 << 20)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (256, 256) if args.quick else (384, 384), dtype=np.uint8)
    small = np.ascontiguousarray(np.repeat(small[..., None], 3, 2))
    sizes = [(256, 384), (384, 512)] if args.quick else [(384, 512), (512, 768)]
    tile = 64

    result = {"benchmark": "farm", "quick": args.quick, "machine": "2-core CPU (shared)",
              "load_1min": round(os.getloadavg()[0], 2)}
    print(f"1-minute load average at the start: {result['load_1min']} (2 cores)")
    result["throughput"] = t = throughput(small, 8)
    print(f"throughput: {t['jobs']} jobs of {t['size'][0]}x{t['size'][1]} px: 1 actor "
          f"{t['seconds_1']} s, 2 actors {t['seconds_2']} s, {t['speedup']}x")

    frames = [np.ascontiguousarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
              for h, w in sizes]
    two = _engine(2, 0.0)
    try:
        alone_engine = _engine_alone_view(two)   # the same warm actors, splitting off
        print(f"{'frame':>10} {'canvas MB':>9} {'tiles':>5} {'1 actor s':>9} {'2 actors s':>10} "
              f"{'speedup':>7} {'exch MB/step':>12} {'exch s/step':>11} {'compute s/step':>14} "
              f"{'same bits':>9}")
        result["split"] = []
        for img in frames:
            r = split(alone_engine, two, img, tile)
            result["split"].append(r)
            print(f"{img.shape[0]}x{img.shape[1]:<6} {r['canvas_bytes'] / 1e6:9.2f} "
                  f"{r['tiles_per_step']:5d} {r['seconds_1']:9.2f} {r['seconds_2']:10.2f} "
                  f"{r['speedup']:7.2f} {r['exchange_bytes_per_step'] / 1e6:12.2f} "
                  f"{r['exchange_s_per_step']:11.4f} {r['compute_s_per_step']:14.4f} "
                  f"{str(r['bit_identical']):>9}")
        img = frames[0]
        reference = alone_engine.render(img, _params(tile=tile, steps=4), None, _quiet,
                                        lambda: False).image
        two.split_mp = 1e9        # the killed job runs on one actor; the other takes it over
        result["kill"] = k = kill_mid_job(two, img, tile, reference)
        print(f"actor killed mid-job: {k['killed']} killed, finished on {k['finished_on']} "
              f"(attempt {k['attempt']}) in {k['seconds']} s, identical: {k['identical']}")
    finally:
        two.close()

    result["model"] = rows = model_rows()
    print(f"\n{'model':>5} {'MP':>4} {'batches':>7} {'boxes':>5} {'link':>7} {'canvas MB':>9} "
          f"{'exch MB/step':>12} {'exch s':>7} {'1 box s/step':>12} {'speedup':>7}")
    for r in rows:
        print(f"{r['model']:>5} {r['mp']:4d} {r['batches']:7d} {r['boxes']:5d} {r['link']:>7} "
              f"{r['canvas_mb']:9.1f} {r['exchange_mb']:12d} {r['exchange_s']:7.2f} "
              f"{r['compute_s_1']:12.1f} {r['speedup']:7.2f}")
    print(json.dumps(result))


def _engine_alone_view(engine):
    """The same actors with splitting off: the one-actor baseline on the same warm cluster."""
    import copy

    alone = copy.copy(engine)
    alone.split_mp = 1e9
    return alone


if __name__ == "__main__":
    main()
