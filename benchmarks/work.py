"""Model work per output megapixel, counted (token-evaluations = model input positions).

    python -m benchmarks.work [--quick]

(a) Bundled-model geometry (pixel canvas, grid 8, native 96 px, default tile 192 px): counted by
real renders (one step; a narrow random-weight network of the same geometry, since the count does
not depend on the weights). (b) SD geometry (latent canvas ÷8, grid 8, SDXL 1024 px tiles):
counted from the same window plans the canvas denoiser runs, plus the thumbnail pass. `memory`
runs layerwise (the whole canvas once per evaluation) where its activations fit the RAM budget
and in tiles with halos beyond; both are listed.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from engine import api
from engine.adapters.tiny import TinyAdapter
from engine.mechanisms.thumbnail import stride_for
from engine.tiling.strategies import STRATEGIES, make_strategy

NARROW = dict(sample_size=96, in_channels=6, out_channels=3, block_out_channels=(8, 8, 8, 8),
              down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
              up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
              layers_per_block=1, norm_num_groups=4, attention_head_dim=8)


def counted(size: tuple[int, int]) -> list[dict]:
    adapter = TinyAdapter.from_config(torch.device("cpu"), torch.float32, NARROW)
    img = (np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8)
    mp = size[0] * size[1] / 1e6
    rows = []
    tiles = {"layerwise": "off"}
    for name in STRATEGIES:
        for mech in ([{}] if name != "memory" else [{"layerwise": "auto"}, tiles, {**tiles, "thumbnail": True}]):
            r = api.render(img, api.RenderParams(strategy=name, steps=1, strength=0.3,
                                                 mechanisms=mech), adapter=adapter)
            label = name
            if name == "memory":
                label += ", layerwise" if r.stats["layerwise"] else ", tiles"
                label += " + thumbnail" if mech.get("thumbnail") else ""
            rows.append(dict(strategy=label, tile=r.stats["tile"], overlap=r.stats["overlap"],
                             tiles=r.stats["tiles"],
                             tokens_per_mp=round(r.stats["token_evals"] / mp)))
    return rows


def planned(size: tuple[int, int], vae: int = 8, grid: int = 8, tile: int = 128,
            native: int = 128) -> list[dict]:
    ch, cw = math.ceil(size[0] / vae / grid) * grid, math.ceil(size[1] / vae / grid) * grid
    mp = size[0] * size[1] / 1e6
    rows = []
    for name in STRATEGIES:
        s = make_strategy(name, tile, None, grid)
        plan = s.plan(ch, cw, 0)
        tokens = sum(t.shape[0] * t.shape[1] for t in plan)
        rows.append(dict(strategy=name, tile=tile * vae, overlap=s.overlap * vae, tiles=len(plan),
                         tokens_per_mp=round(tokens / mp)))
        if name == "memory":
            rows[-1]["strategy"] = "memory, tiles"
            rows.append(dict(strategy="memory, layerwise", tile=tile * vae, overlap=0, tiles=len(plan),
                             tokens_per_mp=round(ch * cw / mp)))
            st = stride_for(ch, cw, native)
            th = math.ceil(math.ceil(ch / st) / grid) * grid * math.ceil(math.ceil(cw / st) / grid) * grid
            rows.append(dict(strategy="memory, tiles + thumbnail", tile=tile * vae, overlap=s.overlap * vae,
                             tiles=len(plan), tokens_per_mp=round((tokens + th) / mp)))
    return rows


def table(title: str, rows: list[dict]) -> None:
    naive = next(r for r in rows if r["strategy"] == "naive")["tokens_per_mp"]
    print(f"\n{title}")
    print(f"{'strategy':22s} {'tile':>5s} {'overlap':>7s} {'tiles':>6s} {'tokens/MP/step':>15s} {'× naive':>8s}")
    for r in rows:
        r["x_naive"] = round(r["tokens_per_mp"] / naive, 3)
        print(f"{r['strategy']:22s} {r['tile']:5d} {r['overlap']:7d} {r['tiles']:6d} "
              f"{r['tokens_per_mp']:15d} {r['x_naive']:8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tiny_size = (768, 1024) if args.quick else (1536, 2048)
    a = counted(tiny_size)
    table(f"(a) bundled model, {tiny_size[1]}x{tiny_size[0]} output, counted by render()", a)
    sd_size = (5464, 8192)   # a 45 MP frame
    b = planned(sd_size)
    table(f"(b) SDXL geometry, {sd_size[1]}x{sd_size[0]} output (45 MP), from the window plans", b)
    print(json.dumps({"benchmark": "work", "quick": args.quick, "machine": "2-core CPU",
                      "bundled": {"size": tiny_size, "rows": a}, "sdxl": {"size": sd_size, "rows": b}}))


if __name__ == "__main__":
    main()
