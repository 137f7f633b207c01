"""Layerwise evaluation beyond exact attention: how far the windowed attention policy moves the
bundled model's output, and whether it leaves lines at its windows' edges.

    python -m benchmarks.attention [--quick]

Up to 128² attention tokens (1024² px for the bundled model) layerwise evaluation attends over the
whole canvas and equals the untiled forward. Beyond, each query tile attends to a 64-token window
around it plus 1024 far-field cell means (`engine.layerwise.unet`). This runs
one evaluation of the trained model on a photograph (scikit-image astronaut, bicubic-enlarged,
noised to ᾱ = 0.7, t = 300) three ways: layerwise with whole-canvas exact attention (the untiled
result), layerwise with the default policy, and 192 px tiles with a 16 px halo (the tiled path's
windows, unfused: each core taken from its own window). Reported: PSNR and max error of the
network output against the exact one, and, for the difference, the step energy across the lines
where the query windows meet, relative to the median line (a seam would stand out; the 99th
percentile of all lines is given for scale).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from engine.adapters.tiny import TinyAdapter
from engine.layerwise.attention import AttentionPolicy
from engine.layerwise.unet import UNET_ATTENTION, LayerwiseUNet


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    mse = float(((out - ref) ** 2).mean())
    rng = float(ref.max() - ref.min())
    return float("inf") if mse == 0 else 10 * math.log10(rng * rng / mse)


def model_input(side: int) -> np.ndarray:
    from skimage import data
    im = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    cond = F.interpolate(im, size=(side, side), mode="bicubic").clamp(-1, 1)
    noise = torch.randn(cond.shape, generator=torch.Generator().manual_seed(0))
    x_t = math.sqrt(0.7) * cond + math.sqrt(0.3) * noise
    return np.ascontiguousarray(torch.cat([x_t, cond], 1)[0].permute(1, 2, 0).numpy())


def tiled(unet, sample: np.ndarray, t: torch.Tensor, core: int = 192, halo: int = 16) -> np.ndarray:
    x = torch.from_numpy(sample).permute(2, 0, 1)[None]
    side = x.shape[-1]
    out = torch.zeros(1, unet.config.out_channels, side, side)
    for y in range(0, side, core):
        for z in range(0, side, core):
            y0, z0 = max(0, y - halo), max(0, z - halo)
            o = unet(x[:, :, y0:min(side, y + core + halo), z0:min(side, z + core + halo)], t).sample
            out[:, :, y:y + core, z:z + core] = o[:, :, y - y0:y - y0 + core, z - z0:z - z0 + core]
    return out[0].permute(1, 2, 0).numpy()


def window_lines(diff: np.ndarray, step_px: int) -> dict:
    """Step energy of `diff` across the lines at multiples of `step_px`, / the median line's."""
    d = diff.mean(2)
    dx = ((d[:, 1:] - d[:, :-1]) ** 2).mean(0)   # dx[i]: between columns i and i + 1
    dy = ((d[1:, :] - d[:-1, :]) ** 2).mean(1)
    med = float(np.median(np.concatenate([dx, dy])))
    at = [float(e[b - 1] / med) for b in range(step_px, d.shape[0], step_px) for e in (dx, dy)]
    return {"max_at_window_edges": round(max(at), 2),
            "p99_all_lines": round(float(np.percentile(np.concatenate([dx, dy]) / med, 99)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1280² instead of 1536²")
    args = ap.parse_args()
    side = 1280 if args.quick else 1536
    adapter = TinyAdapter.load(torch.device("cpu"), torch.float32)
    unet = adapter.layerwise_unet()
    sample, t = model_input(side), torch.tensor([300.0])
    rows, seconds = {}, {}
    with torch.no_grad():
        for name, policy in (("exact", AttentionPolicy(max_tokens=1 << 40)), ("policy", UNET_ATTENTION)):
            started = time.perf_counter()
            rows[name] = LayerwiseUNet(unet, 192, attention=policy)(sample, t).copy()
            seconds[name] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        rows["tiles"] = tiled(unet, sample, t)
        seconds["tiles"] = round(time.perf_counter() - started, 1)
    grid = side // adapter.downsample_factor
    tokens = grid * grid
    query_px = UNET_ATTENTION.query_tiles(UNET_ATTENTION.cell(grid, grid))[0] * adapter.downsample_factor
    print(f"bundled model, {side}² px, attention over {tokens} tokens; one evaluation, 2-core CPU")
    print(f"{'evaluation':38s} {'PSNR dB':>8s} {'max err':>8s} {'sec':>6s}")
    figures = {"benchmark": "attention", "quick": args.quick, "machine": "2-core CPU", "side": side,
               "tokens": tokens, "rows": {}}
    for name, label in (("exact", "layerwise, exact attention (untiled)"),
                        ("policy", "layerwise, default attention policy"),
                        ("tiles", "192 px tiles, 16 px halo")):
        p = psnr(rows[name], rows["exact"])
        err = float(np.abs(rows[name] - rows["exact"]).max())
        figures["rows"][name] = {"psnr": round(p, 2) if math.isfinite(p) else None,
                                 "max_err": round(err, 4), "seconds": seconds[name]}
        print(f"{label:38s} {p:8.2f} {err:8.4f} {seconds[name]:6.1f}")
    lines = window_lines(rows["policy"] - rows["exact"], query_px)
    figures["policy_window_edges"] = lines
    print(f"policy − exact, step energy at the query windows' edges (every {query_px} px): at most "
          f"{lines['max_at_window_edges']}× the median line; 99th percentile of all lines "
          f"{lines['p99_all_lines']}×")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
