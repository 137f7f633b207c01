"""A 20 MP render through the engine API: seconds and peak VRAM per setting, bits per seed.

    python -m benchmarks.render20           # the device the engine picks (a GPU where there is one)
    python -m benchmarks.render20 --quick   # 384 x 256 px: checks the script on a CPU

A 5472 x 3648 16-bit frame (scikit-image's coffee, bicubic-enlarged, Gaussian grain of 0.01) is
rendered by the bundled model with the engine's own device and precision choice, once per
setting after a warm-up; the second memory run repeats the first to check that one seed gives
the same bits. A 384² crop is also rendered in float32 on the CPU to size the precision
difference. Prints a table, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from engine import api
from engine.adapters.tiny import TinyAdapter
from engine.device import pick_device, pick_dtype

SETTINGS = [  # steps, strategy, tile batch
    (1, "memory", 4), (1, "memory", 16), (1, "memory", 16), (1, "naive", 16), (4, "memory", 16)]


def frame(h: int, w: int) -> np.ndarray:
    from skimage import data
    src = torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255
    big = F.interpolate(src, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    grain = np.random.default_rng(0).normal(0, 0.01, (h, w, 3))
    return ((big[0].permute(1, 2, 0).numpy() + grain).clip(0, 1) * 65535).round().astype(np.uint16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 384 x 256 frame")
    args = ap.parse_args()
    dev = pick_device(None)
    dtype, cuda = pick_dtype(dev), dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    h, w = (256, 384) if args.quick else (3648, 5472)
    img = frame(h, w)
    adapter = TinyAdapter.load(dev, dtype)
    api.render(img[:256, :256], api.RenderParams(strength=0.1, steps=1), adapter=adapter)  # warm-up

    rows, first = [], None
    for steps, strategy, batch in SETTINGS:
        if cuda:
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        started = time.perf_counter()
        r = api.render(img, api.RenderParams(strength=0.1 if steps == 1 else 0.35, steps=steps,
                                             strategy=strategy, seed=0),
                       adapter=adapter, batch_size=batch)
        if cuda:
            torch.cuda.synchronize(dev)
        rows.append({"steps": steps, "strategy": strategy, "batch": batch,
                     "seconds": round(time.perf_counter() - started, 2),
                     "tile_seconds": round(r.stats["seconds"].get("tiles", 0.0), 2),
                     "tiles": r.stats["tiles"],
                     "peak_vram_gib": round(torch.cuda.max_memory_allocated(dev) / 2**30, 3)
                     if cuda else None})
        if len(rows) == 2:
            first = r.image
        elif len(rows) == 3:
            same_bits = bool(np.array_equal(first, r.image))

    crop = img[h // 4:h // 4 + 384, w // 4:w // 4 + 384]
    cpu = TinyAdapter.load(torch.device("cpu"), torch.float32)
    a, b = (api.render(crop, api.RenderParams(strength=0.1, steps=1), adapter=m).image.astype(np.float64)
            for m in (adapter, cpu))

    print(f"benchmarks.render20: {name}, {str(dtype).replace('torch.', '')}, {w}x{h} 16-bit, "
          f"bundled model")
    print(f"{'steps':>5} {'strategy':<8} {'batch':>5} {'seconds':>8} {'tiles s':>8} {'tiles':>6} "
          f"{'peak VRAM GiB':>14}")
    for r in rows:
        vram = "-" if r["peak_vram_gib"] is None else f"{r['peak_vram_gib']:.2f}"
        print(f"{r['steps']:>5} {r['strategy']:<8} {r['batch']:>5} {r['seconds']:>8.2f} "
              f"{r['tile_seconds']:>8.2f} {r['tiles']:>6} {vram:>14}")
    diff = {"mean": round(float(np.abs(a - b).mean()), 2), "max": float(np.abs(a - b).max())}
    print(f"same seed, same bits: {same_bits}; {dtype} vs CPU float32 on a 384² crop: "
          f"{diff['mean']} (max {diff['max']:.0f}) 16-bit levels")
    print(json.dumps({"benchmark": "render20", "quick": args.quick, "device": name,
                      "dtype": str(dtype).replace("torch.", ""), "size": [h, w],
                      "same_bits_same_seed": same_bits, "vs_cpu_float32_16bit_levels": diff,
                      "rows": rows}))


if __name__ == "__main__":
    main()
