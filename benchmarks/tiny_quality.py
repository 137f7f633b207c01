"""Quality of the bundled model on photographs from packages it never trained on.

    python -m benchmarks.tiny_quality [--quick] [--split heldout|validation] [--sweep]

Twelve 768×512 centre crops per split (benchmarks/data/tiny_photos.json; `heldout` was fixed
before any setting was tuned, `validation` is where settings are chosen), each damaged as the
product's targets say and rendered through `engine.render` (tiled, as `seamwise render` runs it)
with the model's own recommended strength, steps and finishing:

- refine: Gaussian noise σ 8/255 then JPEG q60; PSNR gain of the output over the damaged input
  (target: mean ≥ +2.0 dB, every photo ≥ +0.5 dB).
- ×2 and ×4: the crop Lanczos-shrunk by 2 or 4; PSNR of the output vs the crop next to bicubic's
  and Lanczos's (target at ×2: mean ≥ +0.5 dB over bicubic, no photo below −0.3 dB).

Rows: the model without finishing ("raw"), with it (the product), and the finishing applied to
bicubic alone, so each part's share shows. HF = energy above half Nyquist relative to the
original's (1.0 = as much fine detail): a blurrier output cannot win on PSNR unseen.
`--sweep` adds the finishing strengths tried when choosing them (use it on `validation` only).
Prints tables, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.api import recommended_settings
from engine.render import _to_unit, render
from engine.restoration.consistency import Finishing, finish
from engine.models.tiny import WEIGHTS_FILE
from engine.types import RenderParams
from training.degrade import damage_refine, downscale, high_freq_energy, psnr
from training.photo_sets import fetch_split

CACHE = Path(os.environ.get("SEAMWISE_TINY_PHOTOS", Path.home() / ".cache" / "seamwise-tiny-photos"))
MODES = {"refine": 1, "x2": 2, "x4": 4}
SWEEP = {"refine": [Finishing(texture_keep=k) for k in (0.75, 1.0, 1.5, 2.0, 3.0, 4.0)],
         "x2": [Finishing(projection_iters=n, model_weight=w) for n in (1, 3, 5)
                for w in (1.0, 0.75, 0.5, 0.25)],
         "x4": [Finishing(projection_iters=n, model_weight=w) for n in (1, 3, 5)
                for w in (1.0, 0.75, 0.5, 0.25)]}


def model_render(adapter, img: np.ndarray, scale: int, how: Finishing | None, seed: int) -> np.ndarray:
    """One `engine.render` with the model's recommended settings and the given finishing."""
    strength, steps = recommended_settings("tiny", scale)
    saved = adapter.finishing
    adapter.finishing = {scale: how} if how else {}
    try:
        params = RenderParams(scale=scale, strength=strength, steps=steps, seed=seed)
        return render(img, params, adapter=adapter).image
    finally:
        adapter.finishing = saved


def cached_render(adapter, name: str, mode: str, src: np.ndarray, seed: int) -> np.ndarray:
    """The model's unfinished render of `src`, kept in the cache (by weights, settings, seed):
    the finishing rows and the sweep are computed from it."""
    scale = MODES[mode]
    strength, steps = recommended_settings("tiny", scale)
    digest = hashlib.sha256(WEIGHTS_FILE.read_bytes()).hexdigest()[:12]
    path = CACHE / "renders" / f"{digest}-{mode}-s{strength:g}-n{steps}-seed{seed}-{name}.png"
    if path.is_file():
        return np.asarray(Image.open(path).convert("RGB"))
    out = model_render(adapter, src, scale, None, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(path)
    return out


def finished(out: np.ndarray, source: np.ndarray, scale: int, how: Finishing) -> np.ndarray:
    """`how` applied to an already rendered uint8 frame (ablation rows)."""
    t = finish(_to_unit(out), _to_unit(source), scale, how)
    return np.rint(t[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def resized(img: np.ndarray, scale: int, method) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w * scale, h * scale), method))


def bicubic(img: np.ndarray, scale: int) -> np.ndarray:
    """The engine's bicubic (what the model's condition is), as a uint8 picture."""
    t = torch.nn.functional.interpolate(_to_unit(img), scale_factor=scale, mode="bicubic",
                                        align_corners=False).clamp_(0, 1)
    return np.rint(t[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def evaluate(adapter, photos, modes, sweep: bool, seed: int) -> dict:
    """{mode: {row: {photo: (psnr, hf ratio)}}} plus timings."""
    res: dict = {m: {} for m in modes}
    seconds: dict = {m: 0.0 for m in modes}
    for i, (name, clean) in enumerate(photos):
        hf0 = high_freq_energy(clean)

        def put(mode, row, out):
            res[mode].setdefault(row, {})[name] = (psnr(out, clean), high_freq_energy(out) / hf0)

        for mode in modes:
            scale = MODES[mode]
            how = adapter.finishing.get(scale)
            if scale == 1:
                src = damage_refine(clean, np.random.default_rng([seed, i]))
                put(mode, "input", src)
            else:
                src = downscale(clean, scale, "lanczos")
                bic = bicubic(src, scale)
                put(mode, "bicubic", bic)
                put(mode, "lanczos", resized(src, scale, Image.LANCZOS))
                if how:
                    put(mode, "bicubic+finish", finished(bic, src, scale, how))
            t0 = time.perf_counter()
            raw = cached_render(adapter, name, mode, src, seed)
            seconds[mode] += time.perf_counter() - t0
            put(mode, "model raw", raw)   # the product row below is `how` applied to this frame
            put(mode, "model (product)", finished(raw, src, scale, how) if how else raw)
            if sweep:
                for h in SWEEP[mode]:
                    label = (f"raw+texture {h.texture_keep:g}" if scale == 1
                             else f"raw+projection {h.projection_iters} w {h.model_weight:g}")
                    put(mode, label, finished(raw, src, scale, h))
    return {"rows": res, "seconds": seconds}


def summarise(rows: dict, mode: str) -> dict:
    base = rows["input" if mode == "refine" else "bicubic"]
    out = {}
    for row, per in rows.items():
        d = {n: per[n][0] - base[n][0] for n in per}
        out[row] = {"psnr": float(np.mean([v[0] for v in per.values()])),
                    "vs_base_db": float(np.mean(list(d.values()))),
                    "min_vs_base_db": float(min(d.values())),
                    "hf_ratio": float(np.mean([v[1] for v in per.values()])),
                    "per_photo_vs_base_db": {n: round(v, 3) for n, v in d.items()}}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the first four photographs only")
    p.add_argument("--split", choices=("heldout", "validation"), default="heldout")
    p.add_argument("--sweep", action="store_true", help="finishing strengths tried (validation)")
    p.add_argument("--modes", default="refine,x2,x4")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from engine.adapters import open_model

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    photos = fetch_split(args.split, CACHE)
    if args.quick:
        photos = photos[:4]
    adapter = open_model("tiny", "cpu")
    modes = [m for m in args.modes.split(",") if m]
    ev = evaluate(adapter, photos, modes, args.sweep, args.seed)
    summary = {"benchmark": "tiny_quality", "split": args.split, "photos": [n for n, _ in photos],
               "crop": "768x512", "seed": args.seed}
    names = [n for n, _ in photos]
    for mode in modes:
        s = summarise(ev["rows"][mode], mode)
        base = "input" if mode == "refine" else "bicubic"
        strength, steps = recommended_settings("tiny", MODES[mode])
        how = adapter.finishing.get(MODES[mode])
        print(f"\n{mode}: strength {strength:g}, {steps} step(s), finishing {how}; "
              f"{ev['seconds'][mode]:.1f} s for {len(photos)} product renders")
        print(f"{'row':>22} {'PSNR':>6} {'vs ' + base:>11} {'worst':>6} {'HF':>5} | "
              + " ".join(f"{n[:7]:>7}" for n in names))
        for row, v in s.items():
            print(f"{row:>22} {v['psnr']:6.2f} {v['vs_base_db']:+11.2f} {v['min_vs_base_db']:+6.2f} "
                  f"{v['hf_ratio']:5.2f} | "
                  + " ".join(f"{v['per_photo_vs_base_db'][n]:+7.2f}" for n in names))
        summary[mode] = {"strength": strength, "steps": steps,
                         "finishing": vars(how) if how else None,
                         "seconds": round(ev["seconds"][mode], 2),
                         "rows": {k: {kk: (round(vv, 3) if isinstance(vv, float) else vv)
                                      for kk, vv in v.items()} for k, v in s.items()}}
    prod = {m: summary[m]["rows"]["model (product)"] for m in modes}
    if "refine" in prod:
        summary["refine"]["pass"] = prod["refine"]["vs_base_db"] >= 2.0 and prod["refine"]["min_vs_base_db"] >= 0.5
    if "x2" in prod:
        summary["x2"]["pass"] = prod["x2"]["vs_base_db"] >= 0.5 and prod["x2"]["min_vs_base_db"] >= -0.3
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
