"""GPU throughput: megapixels per second and peak VRAM per strategy, SDXL-sized.

An SDXL-architecture UNet (the published config, random weights, fp16) denoises a 40 MP canvas in
1024² tiles (128 latent px) for 4 steps from pure noise, once per strategy (`naive`, `mixture`,
`memory` in tiles with halos, and `layerwise`: `memory` evaluating the whole canvas one operation
at a time, its activations on the GPU), through the engine's own canvas denoiser and lockstep
sampler — the same code `seamwise render` runs, minus the VAE (`benchmarks.vae` measures that).
No prompt, so no classifier-free guidance: one UNet evaluation per window.

  python -m benchmarks.gpu            # CUDA, ~40 MP; a few minutes on one H100
  python -m benchmarks.gpu --quick    # tiny SDXL UNet on CPU, tiny canvas: checks the script

Prints a table and, as the last line, one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time

import torch

from engine.api import RenderParams
from engine.denoise.canvas import Counters
from engine.mechanisms.switches import Mechanisms
from engine.render import denoise_canvas
from tests.fixtures.random_models import sdxl_random_adapter

STRATEGIES = ("naive", "mixture", "memory", "layerwise")


def canvas_shape(megapixels: float, grid: int) -> tuple[int, int]:
    """Latent canvas (h, w) of a 3:2 frame of about `megapixels` output MP, on the model's grid."""
    h_px = math.sqrt(megapixels * 1e6 * 2 / 3)
    snap = 8 * grid
    h = max(1, round(h_px / snap)) * grid
    w = max(1, round(h_px * 1.5 / snap)) * grid
    return h, w


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_strategy(adapter, name: str, reference: torch.Tensor, steps: int, tile_px: int,
                 batch_size: int) -> dict:
    mechanisms = {"layerwise": "on" if name == "layerwise" else "off"}
    params = RenderParams(strategy="memory" if name == "layerwise" else name, steps=steps, strength=1.0,
                          tile=tile_px, seed=0, mechanisms=mechanisms)
    mech = Mechanisms.from_dict(params.mechanisms)
    cond = adapter.conditioning(params, torch.zeros(1, 3, 8, 8))
    cond.position = mech.position
    counters = Counters()
    device = adapter.device
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    started = time.perf_counter()
    canvas, denoiser = denoise_canvas(adapter, cond, reference, params, mech,
                                      batch_size=batch_size, counters=counters)
    _sync(device)
    seconds = time.perf_counter() - started
    out_mp = reference.shape[-2] * reference.shape[-1] * adapter.vae_scale ** 2 / 1e6
    return {
        "seconds": round(seconds, 3),
        "mp_per_s": round(out_mp / seconds, 4),
        "peak_vram_gib": (round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 3)
                          if device.type == "cuda" else None),
        "tiles_per_step": counters.tiles,
        "model_calls": counters.model_calls,
        "token_evals_per_mp": round(counters.token_evals / out_mp),
        "oom_retries": counters.retries,
        "tile_px": denoiser.strategy.tile * adapter.vae_scale,
        "overlap_px": denoiser.strategy.overlap * adapter.vae_scale,
        "finite": bool(torch.isfinite(canvas).all()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny UNet on CPU, tiny canvas")
    ap.add_argument("--megapixels", type=float, default=40.0)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --quick)")
    args = ap.parse_args(argv)

    device = torch.device(args.device or ("cpu" if args.quick else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks.gpu: no CUDA device (use --quick for the CPU check)")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    megapixels = 0.25 if args.quick else args.megapixels
    steps = 2 if args.quick else args.steps

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        adapter = sdxl_random_adapter(tmp, device, dtype, full=not args.quick)
        build_s = time.perf_counter() - started
    tile_px = 256 if args.quick else 1024
    h, w = canvas_shape(megapixels, adapter.downsample_factor)
    reference = torch.randn(1, adapter.canvas_channels, h, w,
                            generator=torch.Generator().manual_seed(0))
    # Warm-up (kernel selection, allocator) outside the timings: one window, one step.
    warm = reference[..., : tile_px // 8, : tile_px // 8].contiguous()
    run_strategy(adapter, "naive", warm, 1, tile_px, 1)

    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    results = {name: run_strategy(adapter, name, reference, steps, tile_px, args.batch_size)
               for name in names}

    out_mp = h * w * adapter.vae_scale ** 2 / 1e6
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    unet_params = sum(p.numel() for p in adapter.unet.parameters())
    print(f"benchmarks.gpu: {device_name}, {str(dtype).replace('torch.', '')}, UNet "
          f"{unet_params / 1e6:,.1f} M params (random weights), canvas {w * 8}x{h * 8} px "
          f"({out_mp:.1f} MP), {steps} steps, tile {tile_px} px, batch {args.batch_size}")
    print(f"{'strategy':<10}{'seconds':>10}{'MP/s':>10}{'peak VRAM GiB':>15}{'tiles/step':>12}"
          f"{'evals/MP':>10}{'overlap':>9}")
    for name, r in results.items():
        vram = "-" if r["peak_vram_gib"] is None else f"{r['peak_vram_gib']:.2f}"
        print(f"{name:<10}{r['seconds']:>10.2f}{r['mp_per_s']:>10.3f}{vram:>15}"
              f"{r['tiles_per_step']:>12}{r['token_evals_per_mp']:>10}{r['overlap_px']:>9}")
    figures = {"benchmark": "gpu", "quick": args.quick, "device": device_name,
               "dtype": str(dtype).replace("torch.", ""), "unet_params": unet_params,
               "canvas_px": [h * 8, w * 8], "megapixels": round(out_mp, 2), "steps": steps,
               "tile_px": tile_px, "batch_size": args.batch_size,
               "build_seconds": round(build_s, 2), "results": results}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
