"""Coherence with the full frame: tiled vs untiled output, same model, seed and noise canvas.

    python -m benchmarks.coherence [--quick] [--only sd|tiny]

Where the whole frame fits one pass, the untiled run is what the model would do with unlimited
memory; every strategy and each memory mechanism (on top of the halo) is compared with it: PSNR
over the untiled output's range, max abs error, and work (token-evaluations / untiled). The
thumbnail is never larger than one tile, otherwise the comparison would be void.

Models: (a) a random-weight UNet2DConditionModel in SD's layout (latent canvas, ε-prediction,
dummy text embedding); (b) the bundled model (trained weights when present, else random weights
of its architecture — the table says which) on a real photograph (scikit-image).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from engine import api
from engine.denoise.canvas import Counters
from engine.mechanisms.switches import Mechanisms
from engine.render import denoise_canvas

VARIANTS = [
    ("naive", "naive", None, {}),
    ("multidiffusion", "multidiffusion", None, {}),
    ("mixture", "mixture", None, {}),
    ("spot", "spot", None, {}),
    ("memory: halo only", "memory", None, {}),
    ("memory: no halo", "memory", None, {"halo": False}),
    ("memory: halo ×2", "memory", 2, {}),
    ("memory: halo ×3", "memory", 3, {}),
    ("memory: halo ×4", "memory", 4, {}),
    ("+ GroupNorm thumbnail", "memory", None, {"groupnorm": "thumbnail"}),
    ("+ GroupNorm previous step", "memory", None, {"groupnorm": "previous"}),
    ("+ GroupNorm iterate, 2 passes", "memory", None, {"groupnorm": "iterate", "gn_passes": 2}),
    ("+ GroupNorm iterate, 3 passes", "memory", None, {"groupnorm": "iterate", "gn_passes": 3}),
    ("+ GroupNorm iterate, 2, ¼ tiles", "memory", None, {"groupnorm": "iterate", "gn_every": 4}),
    ("+ GroupNorm exact (bound)", "memory", None, {"groupnorm": "exact"}),
    ("layerwise (exact, whole canvas)", "memory", None, {"layerwise": "on"}),
    ("layerwise, float16 activations", "memory", None, {"layerwise": "on", "layerwise_storage": "float16"}),
    ("+ KV bank", "memory", None, {"kv_bank": True}),
    ("+ anchor input", "memory", None, {"anchor": "input"}),
    ("+ anchor thumbnail", "memory", None, {"anchor": "thumbnail"}),
]


def psnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    rng = float(ref.max() - ref.min())
    mse = float(((a - ref) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(rng * rng / mse)


def run(adapter, reference, params: api.RenderParams, mech: dict):
    cond = adapter.conditioning(params, reference)
    counters = Counters()
    started = time.perf_counter()
    out, den = denoise_canvas(adapter, cond, reference, params, Mechanisms.from_dict(mech),
                              counters=counters)
    return out, counters, time.perf_counter() - started, den.strategy


def compare(label: str, adapter, reference, tile: int, steps: int, strength: float,
            scheduler: str, seed: int, exact: bool = True) -> dict:
    h, w = reference.shape[-2:]
    base = dict(steps=steps, strength=strength, scheduler=scheduler, seed=seed)
    full, fc, fsec, _ = run(adapter, reference, api.RenderParams(strategy="naive", tile=max(h, w),
                                                                 **base), {})
    rows = []
    print(f"\n[{label}] canvas {h}x{w}, tile {tile}, thumbnail stride "
          f"{math.ceil(max(h, w) / adapter.native_size)}, {scheduler} {steps} steps, "
          f"strength {strength}; untiled {fsec:.1f} s")
    print(f"{'variant':28s} {'PSNR dB':>8s} {'max err':>8s} {'work':>6s} {'sec':>6s}  windows")
    default_overlap = None
    for name, strategy, overlap, mech in VARIANTS:
        if mech.get("groupnorm") == "exact" and not exact:
            print(f"{name:28s} (not run: one pass per GroupNorm layer; add --exact)")
            continue
        if overlap is not None:      # a multiple of the default halo
            overlap = overlap * default_overlap
        p = api.RenderParams(strategy=strategy, tile=tile, overlap=overlap, **base)
        out, c, sec, strat = run(adapter, reference, p, mech)
        if name == "memory: halo only":
            default_overlap = strat.overlap
        row = dict(variant=name, strategy=strategy, mechanisms=mech, psnr=round(psnr(out, full), 2),
                   max_err=round(float((out - full).abs().max()), 4),
                   work=round(c.token_evals / fc.token_evals, 3), seconds=round(sec, 1),
                   tile=strat.tile, overlap=strat.overlap)
        rows.append(row)
        print(f"{name:28s} {row['psnr']:8.2f} {row['max_err']:8.4f} {row['work']:6.2f} "
              f"{row['seconds']:6.1f}  tile {strat.tile} overlap {strat.overlap}", flush=True)
    return dict(model=label, canvas=[h, w], tile=tile, steps=steps, strength=strength,
                scheduler=scheduler, untiled_seconds=round(fsec, 1), rows=rows)


def sd_case(quick: bool) -> dict:
    from benchmarks.small_models import SMALL_SD_UNET, LatentUNetAdapter
    # Attention at the two middle levels only: full-resolution attention on a 128² latent takes
    # minutes per call on a 2-core CPU and says nothing more about tiling.
    cfg = dict(SMALL_SD_UNET,
               down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    size, tile = (64, 32) if quick else (128, 64)
    adapter = LatentUNetAdapter(cfg, seed=0, native_size=tile // 2, default_tile=tile)
    g = torch.Generator().manual_seed(7)
    ref = F.interpolate(torch.randn(1, 4, size // 8, size // 8, generator=g), size=(size, size),
                        mode="bicubic")
    return compare("SD-layout UNet, random weights", adapter, ref, tile, 4 if quick else 6, 1.0,
                   "ddim", 0)


def photo(size: int) -> torch.Tensor:
    from skimage import data
    im = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    im = im[..., 40:40 + 2 * size, 80:80 + 2 * size]
    return F.interpolate(im, size=(size, size), mode="area")


def tiny_case(quick: bool, exact: bool) -> dict:
    from engine.adapters.tiny import TinyAdapter
    dev = torch.device("cpu")
    try:
        adapter = TinyAdapter.load(dev, torch.float32)
        label = "bundled model, trained weights"
    except api.EngineError:
        adapter = TinyAdapter.from_config(dev, torch.float32)
        label = "bundled architecture, RANDOM weights (trained weights missing)"
    size, tile = (192, 64) if quick else (256, 96)
    if adapter.native_size > tile:
        adapter.native_size = tile   # keep the thumbnail no larger than one tile
    ref = photo(size)
    return compare(label, adapter, ref, tile, 3, 0.6, "ddim", 0, exact=exact)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller canvases and fewer steps")
    ap.add_argument("--only", choices=("sd", "tiny"))
    ap.add_argument("--exact", action="store_true",
                    help="also run the exact-statistics bound on the bundled model (slow)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cases = []
    with torch.inference_mode():
        if args.only in (None, "sd"):
            cases.append(sd_case(args.quick))
        if args.only in (None, "tiny"):
            cases.append(tiny_case(args.quick, args.exact))
    print(json.dumps({"benchmark": "coherence", "quick": args.quick, "machine": "2-core CPU",
                      "cases": cases}))


if __name__ == "__main__":
    main()
