"""Seam visibility on real photographs, grid-agnostic, with the untiled run as the floor.

    python -m benchmarks.seams [--quick] [--size 768]

Metrics (no knowledge of where tiles were): take the residual R = output − bicubic input (luma),
split it into tone (Gaussian low-pass, σ = 1.5 px) and grain (R minus its σ = 3 px low-pass; its
local energy, low-passed with σ = 1.5 px). For every straight line between two rows and between
two columns, the step energy is the mean squared difference across that line. Two ways to say
which lines stand out, each scored as the mean of the top 1% of per-line ratios (regularised by
10% of the median energy):

- against the untiled run: each line's energy over the same line's in the untiled run (one window
  over the whole frame, seed 0), so image content cancels. Any difference from the untiled render
  counts, a change of texture inside a tile as much as a step on its border.
- against the neighbouring lines: each line's energy over the median of the lines 3 to 16 px
  away on either side, in the same output. A seam is a line the picture itself makes stand out,
  whatever the untiled model would have drawn; edges in the photograph stand out too, as they
  do in the untiled run.

The floor is the untiled run with another seed; target: within 10% of it.
Reported for tone and grain, per strategy, on scikit-image photographs upscaled ×2 and ×4 by the
bundled model; `memory` at its defaults (tiles with halos) and evaluated whole, layer by layer
(layerwise, as these frames fit the RAM budget), which equals the untiled run. Colour drift:
RMS difference of output and input blurred with σ = 8 px, in 8-bit levels.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from engine import api
from engine.tiling.strategies import STRATEGIES

PHOTOS = ("astronaut", "coffee", "chelsea")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * sigma * sigma))
    k = (k / k.sum()).to(x.dtype)
    x = F.pad(x[None, None], (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))[0, 0]


def line_energy(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Step energy across every horizontal and every vertical line (image borders excluded)."""
    dy = (m[1:, :] - m[:-1, :]).pow(2).mean(1)[4:-4]
    dx = (m[:, 1:] - m[:, :-1]).pow(2).mean(0)[4:-4]
    return dy, dx


def components(output: np.ndarray, base: np.ndarray) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    r = torch.from_numpy(output.astype(np.float64) - base.astype(np.float64)) @ w
    tone = _blur(r, 1.5)
    grain = _blur((r - _blur(r, 3.0)) ** 2, 1.5)
    return {"tone": line_energy(tone), "grain": line_energy(grain)}


def _top_percent(r: torch.Tensor) -> float:
    """Mean of the top 1% (at least 4) of per-line ratios."""
    return float(r.topk(max(4, r.shape[0] // 100)).values.mean())


def seam_score(e: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...]) -> float:
    """Lines against the same lines of the untiled run."""
    e, ref = torch.cat(e), torch.cat(ref)
    eps = 0.1 * float(ref.median()) + 1e-12
    return _top_percent((e + eps) / (ref + eps))


def neighbour_ratio(e: torch.Tensor, near: int = 3, far: int = 16) -> torch.Tensor:
    """Each line's energy over the median energy of the lines `near`..`far` away on either side
    (fewer at the image border). The nearest lines are left out because the σ 1.5 px low-pass
    spreads one step over them."""
    n = e.shape[0]
    offsets = torch.cat([torch.arange(-far, -near + 1), torch.arange(near, far + 1)])
    idx = torch.arange(n)[:, None] + offsets[None]
    around = torch.where((idx >= 0) & (idx < n), e[idx.clamp(0, n - 1)], torch.nan)
    eps = 0.1 * float(e.median()) + 1e-12
    return (e + eps) / (around.nanmedian(1).values + eps)


def standout_score(e: tuple[torch.Tensor, ...]) -> float:
    """Lines against their neighbours in the same output, rows and columns apart."""
    return _top_percent(torch.cat([neighbour_ratio(d) for d in e]))


def colour_drift(output: np.ndarray, base: np.ndarray) -> float:
    """RMS difference of the heavily blurred (σ = 8 px) output and input, in 8-bit levels."""
    d = [(_blur(torch.from_numpy(output[..., c].astype(np.float64)), 8.0)
          - _blur(torch.from_numpy(base[..., c].astype(np.float64)), 8.0)) for c in range(3)]
    return round(float(torch.stack(d).pow(2).mean().sqrt()), 3)


def photo(name: str, size: int) -> np.ndarray:
    from skimage import data
    im = getattr(data, name)()
    h, w = im.shape[:2]
    s = min(h, w)
    im = im[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    t = torch.from_numpy(im).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(size, size), mode="area")
    return t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one photograph")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--size", type=int, default=384,
                    help="output side in px (a multiple of 4); 768 gives 6×6 tiles and 4× the lines")
    ap.add_argument("--strength", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from engine.adapters.tiny import TinyAdapter
    adapter = TinyAdapter.load(torch.device("cpu"), torch.float32)
    out_size, tile = args.size, 128
    photos = PHOTOS[:1] if args.quick else PHOTOS
    results = []
    print(f"bundled model, output {out_size}x{out_size}, tile {tile} px, {args.steps} step(s), "
          f"strength {args.strength}; score = top-1% per-line step energy against the untiled run's "
          f"lines and against the neighbouring lines; ÷ floor (the untiled run, another seed)")
    print(f"{'photo':10s} {'scale':>5s} {'strategy':24s} {'vs untiled: tone':>16s} {'grain':>7s} "
          f"{'vs neighbours: tone':>19s} {'grain':>7s} {'drift':>6s}")
    for name in photos:
        for scale in (2, 4):
            img = photo(name, out_size // scale)
            base = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255,
                                 scale_factor=scale, mode="bicubic", align_corners=False)
            base = (base.clamp(0, 1) * 255)[0].permute(1, 2, 0).numpy()
            common = dict(scale=scale, steps=args.steps, strength=args.strength, seed=0)
            runs = {"untiled": api.RenderParams(strategy="naive", tile=out_size, **common)}
            runs.update({s: api.RenderParams(strategy=s, tile=tile, **common) for s in STRATEGIES})
            runs["memory, layerwise"] = api.RenderParams(strategy="memory", tile=tile,
                                                         mechanisms={"layerwise": "auto"}, **common)
            runs["memory+anchor"] = api.RenderParams(strategy="memory", tile=tile,
                                                     mechanisms={"anchor": "input", "layerwise": "off"},
                                                     **common)
            runs = {"untiled, seed 1 (floor)": runs["untiled"].__class__(
                **{**vars(runs["untiled"]), "seed": 1}), **{k: v for k, v in runs.items() if k != "untiled"}}
            ref = components(api.render(img, api.RenderParams(strategy="naive", tile=out_size,
                                                              **common), adapter=adapter).image, base)
            floor = None
            for label, params in runs.items():
                r = api.render(img, params, adapter=adapter)
                comp = components(r.image, base)
                sc = {k: seam_score(comp[k], ref[k]) for k in ("tone", "grain")}
                sc.update({f"{k}_standout": standout_score(comp[k]) for k in ("tone", "grain")})
                floor = floor or sc
                row = dict(photo=name, scale=scale, strategy=label,
                           **{k: round(v, 3) for k, v in sc.items()},
                           **{f"{k}_vs_floor": round(v / floor[k], 3) for k, v in sc.items()},
                           drift=colour_drift(r.image, base), work=r.stats["token_evals"])
                results.append(row)
                print(f"{name:10s} {scale:5d} {label:24s} {row['tone_vs_floor']:16.3f} "
                      f"{row['grain_vs_floor']:7.3f} {row['tone_standout_vs_floor']:19.3f} "
                      f"{row['grain_standout_vs_floor']:7.3f} {row['drift']:6.2f}", flush=True)
    summary = {}
    for s in ("untiled, seed 1 (floor)",) + STRATEGIES + ("memory, layerwise", "memory+anchor"):
        rows = [r for r in results if r["strategy"] == s]
        summary[s] = {k: round(float(np.mean([r[k] for r in rows])), 3)
                      for k in ("tone_vs_floor", "grain_vs_floor", "tone_standout_vs_floor",
                                "grain_standout_vs_floor", "drift")}
    print("\nmean over photographs and scales (1.00 = the untiled floor):")
    for s, v in summary.items():
        print(f"  {s:24s} vs untiled: tone {v['tone_vs_floor']:.3f}  grain {v['grain_vs_floor']:.3f}   "
              f"vs neighbours: tone {v['tone_standout_vs_floor']:.3f}  "
              f"grain {v['grain_standout_vs_floor']:.3f}   drift {v['drift']:.2f}")
    print(json.dumps({"benchmark": "seams", "quick": args.quick, "machine": "2-core CPU",
                      "steps": args.steps, "strength": args.strength, "tile": tile,
                      "output": out_size, "summary": summary, "rows": results}))


if __name__ == "__main__":
    main()
