"""Fidelity on whole held-out photographs: does the render bring the frame closer to the original?

    python -m benchmarks.fidelity [--quick] [--data DIR]

`benchmarks.seams` and `benchmarks.coherence` measure how far a tiled render is from the untiled
one; this measures how far each render is from the *clean photograph*, on full frames rather than
the training-sized crops of `benchmarks.tiny_quality`. Every held-out photograph is damaged as in
tiny_quality ((a) refine: Gaussian noise σ=8/255 then JPEG q60; (b) ×2: Lanczos-downscaled, then
upscaled by the render) and rendered through `engine.api.render` at the model's recommended
settings, seed 0, by:

- memory at its defaults: tiles with halos, fused;
- memory evaluating the whole frame at once, layer by layer (every frame here fits the RAM
  budget), which equals the untiled model;
- naive tiles: independent crops, each normalised on its own, no overlap.

PSNR in dB against the clean photograph over all pixels of a frame; the table gives the gain
over the damaged input (refine) or over bicubic (×2). `--quick`: refine only. `--tiles 96,192`:
memory's default tiles at each of these tile sizes instead of the three methods, to choose the
default tile.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine import api
from training.degrade import bicubic_up, damage_refine, damage_x2, psnr, to_tensor, to_uint8
from training.train_tiny import DEFAULT_DATA, load_split, prepare_data

METHODS = {
    "memory (default: tiles)": dict(strategy="memory"),
    "memory, whole frame": dict(strategy="memory", mechanisms={"layerwise": "auto"}),
    "naive tiles": dict(strategy="naive"),
}


def render(img: np.ndarray, scale: int, method: dict) -> tuple[np.ndarray, dict]:
    strength, steps = api.recommended_settings("tiny", scale)
    params = api.RenderParams(scale=scale, strength=strength, steps=steps, seed=0, **method)
    r = api.render(img, params)
    return r.image, r.stats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="refine only")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="prepared data folder")
    p.add_argument("--tiles", type=lambda v: [int(t) for t in v.split(",")],
                   help="comma-separated tile sizes (px) for memory's default tiles")
    args = p.parse_args(argv)
    methods = ({f"memory, tile {t}": dict(strategy="memory", tile=t) for t in args.tiles}
               if args.tiles else METHODS)
    if not (args.data / "manifest.json").is_file():
        prepare_data(args.data)
    tasks = ("refine",) if args.quick else ("refine", "x2")
    rows = []
    print("PSNR (dB) against the clean photograph; gain over the damaged input (refine) or bicubic (x2)")
    print(f"{'photograph':30s} {'task':6s} {'method':30s} {'PSNR':>7s} {'gain':>7s} {'layerwise':>9s} {'s':>6s}")
    for name, clean in load_split(args.data, "heldout"):
        clean = np.ascontiguousarray(clean[: clean.shape[0] // 2 * 2, : clean.shape[1] // 2 * 2])
        for task in tasks:
            if task == "refine":
                src, scale = damage_refine(clean, np.random.default_rng(0)), 1
                base = src
            else:
                src, scale = damage_x2(clean), 2
                base = to_uint8(bicubic_up(to_tensor(src), 2))
            base_psnr = psnr(base, clean)
            print(f"{name:30s} {task:6s} {'input' if task == 'refine' else 'bicubic':30s} {base_psnr:7.2f}")
            for label, method in methods.items():
                t = time.perf_counter()
                out, stats = render(src, scale, method)
                secs = time.perf_counter() - t
                value = psnr(out, clean)
                rows.append(dict(photo=name, task=task, method=label, psnr=round(value, 3),
                                 gain_db=round(value - base_psnr, 3), layerwise=bool(stats.get("layerwise")),
                                 seconds=round(secs, 1)))
                print(f"{'':30s} {'':6s} {label:30s} {value:7.2f} {value - base_psnr:+7.2f} "
                      f"{str(rows[-1]['layerwise']):>9s} {secs:6.1f}", flush=True)
    summary = {}
    for task in tasks:
        for label in methods:
            gains = [r["gain_db"] for r in rows if r["task"] == task and r["method"] == label]
            summary[f"{task}: {label}"] = dict(mean_gain_db=round(float(np.mean(gains)), 3),
                                               worst_gain_db=round(float(np.min(gains)), 3))
    print("\nmean (worst) gain over the photographs:")
    for k, v in summary.items():
        print(f"  {k:45s} {v['mean_gain_db']:+6.2f} ({v['worst_gain_db']:+6.2f})")
    print(json.dumps({"benchmark": "fidelity", "quick": args.quick, "tiles": args.tiles,
                      "machine": "2-core CPU", "torch_threads": torch.get_num_threads(),
                      "summary": summary, "rows": rows}))


if __name__ == "__main__":
    main()
