"""Frames too large to evaluate whole: layerwise windows vs tiles, against the untiled render.

    python -m benchmarks.windows [--quick]

When a frame's activations do not fit the budget, `memory` evaluates the largest windows that do
(at least four tiles wide) layerwise and fuses them like tiles; below that, plain tiles. Real
frames large enough to need this are too large for an untiled reference on this machine, so the
regime is reproduced at a size where one exists: the trained bundled model on a photograph
(scikit-image astronaut) rendered untiled, then with RAM budgets that fit only windows of a given
side, then in 96 px tiles (layerwise off). PSNR of the output image against the untiled one and
work (token-evaluations / untiled).
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from benchmarks.coherence import photo
from engine import api
from engine.adapters.tiny import TinyAdapter
from engine.denoise.canvas import layerwise_window_bytes
from engine.layerwise.plan import unet_plan


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    mse = float(((out.astype(np.float64) - ref) ** 2).mean())
    rng = float(ref.max() - ref.min())
    return float("inf") if mse == 0 else 10 * math.log10(rng * rng / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="without the whole-frame run")
    args = ap.parse_args()
    adapter = TinyAdapter.load(torch.device("cpu"), torch.float32)
    side, tile = 512, 96
    img = ((photo(side)[0].permute(1, 2, 0).numpy() + 1) / 2).astype(np.float32)
    base = dict(steps=3, strength=0.6, seed=0, scheduler="ddim")
    full = api.render(img, api.RenderParams(strategy="naive", tile=side, **base), adapter=adapter)
    plan = unet_plan(adapter.layerwise_unet())
    runs = []
    for window in (384,):   # 4 tiles wide, the smallest windows layerwise uses: 2 × 2 of them
        gib = layerwise_window_bytes(plan, window, adapter.downsample_factor, 2) / (1 << 30) * 1.01
        runs.append((f"layerwise windows (budget for {window} px)", {"layerwise": "auto", "layerwise_ram_gib": gib}))
    runs.append(("tiles, 96 px (layerwise off)", {"layerwise": "off"}))
    if not args.quick:
        runs.append(("layerwise, whole frame", {"layerwise": "auto"}))
    print(f"bundled model, {side}² photograph, {tile} px tiles, DDIM 3 steps, strength 0.6; "
          f"PSNR vs the untiled render")
    print(f"{'run':40s} {'window px':>9s} {'tiles':>8s} {'PSNR dB':>8s} {'work':>6s}")
    rows = []
    for label, mech in runs:
        r = api.render(img, api.RenderParams(strategy="memory", tile=tile, mechanisms=mech, **base),
                       adapter=adapter)
        p = psnr(r.image, full.image)
        row = dict(run=label, window=r.stats["layerwise_window"], windows=r.stats["tiles"],
                   layerwise=r.stats["layerwise"], psnr=round(p, 2) if math.isfinite(p) else None,
                   work=round(r.stats["token_evals"] / full.stats["token_evals"], 3))
        rows.append(row)
        print(f"{label:40s} {str(row['window'] or '-'):>9s} {row['windows']:8d} {p:8.2f} "
              f"{row['work']:6.3f}", flush=True)
    print(json.dumps({"benchmark": "windows", "quick": args.quick, "machine": "2-core CPU",
                      "side": side, "tile": tile, "rows": rows}))


if __name__ == "__main__":
    main()
