"""Quality of the bundled model on photographs it never saw in training.

    python -m benchmarks.tiny_quality [--quick] [--data DIR]

(a) refine: held-out crops damaged with Gaussian noise σ=8/255 then JPEG q60; PSNR of the
    model's output vs the clean crop, next to the damaged input's (target: ≥ 2 dB gain).
(b) ×2: held-out crops Lanczos-downscaled, bicubic-upscaled (the condition), restored; PSNR vs
    the original next to plain bicubic's (target: within 0.3 dB of bicubic or better), and the
    energy above half Nyquist relative to the original (1.0 = as much fine detail as the original).

The model runs exactly as the product runs it untiled (training.restore.restore), with a
fixed seed. The held-out photographs come from the same prepared data folder as training
(`python -m training.train_tiny --prepare-data DIR`, which this runs itself when DIR is missing).
Prints a table, then one JSON object as the last line.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from training.degrade import (bicubic_up, damage_refine, damage_x2, high_freq_energy, psnr,
                            to_tensor, to_uint8)
from engine.models.tiny import load_tiny
from training.restore import restore
from training.train_tiny import load_split, prepare_data

DEFAULT_DATA = Path(os.environ.get("SEAMWISE_TINY_DATA", Path.home() / ".cache" / "seamwise-tiny-data"))


def heldout_crops(root: Path, crop: int, per_image: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Fixed crops of every held-out photograph (positions drawn once from `seed`)."""
    rng = np.random.default_rng(seed)
    out = []
    for name, img in load_split(root, "heldout"):
        h, w = img.shape[:2]
        for i in range(per_image):
            y = int(rng.integers(0, h - crop + 1))
            x = int(rng.integers(0, w - crop + 1))
            out.append((f"{name}#{i}", np.ascontiguousarray(img[y:y + crop, x:x + crop])))
    return out


def run_model(model, cond_u8: np.ndarray, strength: float, steps: int, seed: int) -> np.ndarray:
    return to_uint8(restore(model, to_tensor(cond_u8), strength, steps, seed))


def pooled_psnr(outs, crops) -> float:
    """PSNR of all crops taken together (one MSE over every pixel), next to the per-crop mean:
    a nearly flat crop (sky) has a PSNR near 50 dB for any method, and a tenth of a grey level
    there moves the per-crop mean as much as a visible change on a textured crop."""
    mse = np.mean([np.mean((o.astype(np.float64) - c.astype(np.float64)) ** 2)
                   for o, (_, c) in zip(outs, crops)])
    return float(10 * np.log10(255.0 ** 2 / mse))


def evaluate(model, crops, settings: list[tuple[float, int]], seed: int) -> dict:
    """All figures for every (strength, steps) setting: PSNR as the mean over crops (dB), and pooled."""
    res: dict = {"refine": {}, "x2": {}}
    rng = np.random.default_rng(seed)
    damaged = [damage_refine(c, rng) for _, c in crops]
    small = [damage_x2(c) for _, c in crops]
    bicubic = [to_uint8(bicubic_up(to_tensor(s), 2)) for s in small]
    hf_orig = [high_freq_energy(c) for _, c in crops]
    res["refine"]["input_psnr"] = float(np.mean([psnr(d, c) for d, (_, c) in zip(damaged, crops)]))
    res["refine"]["input_pooled"] = pooled_psnr(damaged, crops)
    res["x2"]["bicubic_psnr"] = float(np.mean([psnr(b, c) for b, (_, c) in zip(bicubic, crops)]))
    res["x2"]["bicubic_pooled"] = pooled_psnr(bicubic, crops)
    res["x2"]["bicubic_hf_ratio"] = float(np.mean([high_freq_energy(b) / h
                                                  for b, h in zip(bicubic, hf_orig)]))
    for strength, steps in settings:
        key = f"s{strength:g}_n{steps}"
        t0 = time.perf_counter()
        outs = [run_model(model, d, strength, steps, seed) for d in damaged]
        t_ref = time.perf_counter() - t0
        res["refine"][key] = {
            "psnr": float(np.mean([psnr(o, c) for o, (_, c) in zip(outs, crops)])),
            "pooled": pooled_psnr(outs, crops),
            "per_crop_gain": [round(psnr(o, c) - psnr(d, c), 3)
                              for o, d, (_, c) in zip(outs, damaged, crops)],
            "model_evals": steps * len(crops), "seconds": round(t_ref, 2)}
        res["refine"][key]["gain_db"] = res["refine"][key]["psnr"] - res["refine"]["input_psnr"]
        t0 = time.perf_counter()
        outs = [run_model(model, b, strength, steps, seed) for b in bicubic]
        t_x2 = time.perf_counter() - t0
        res["x2"][key] = {
            "psnr": float(np.mean([psnr(o, c) for o, (_, c) in zip(outs, crops)])),
            "pooled": pooled_psnr(outs, crops),
            "per_crop_vs_bicubic": [round(psnr(o, c) - psnr(b, c), 3)
                                    for o, b, (_, c) in zip(outs, bicubic, crops)],
            "hf_ratio": float(np.mean([high_freq_energy(o) / h for o, h in zip(outs, hf_orig)])),
            "model_evals": steps * len(crops), "seconds": round(t_x2, 2)}
        res["x2"][key]["vs_bicubic_db"] = res["x2"][key]["psnr"] - res["x2"]["bicubic_psnr"]
    return res


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer crops and settings")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="prepared data folder")
    p.add_argument("--weights", type=Path, help="safetensors file (default: the bundled model)")
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    if not (args.data / "manifest.json").is_file():
        prepare_data(args.data)
    model = load_tiny(weights=args.weights)
    rec = model.meta.get("recommended", {})
    ref_s, ref_n = rec.get("refine", {}).get("strength", 0.2), rec.get("refine", {}).get("steps", 1)
    x2_s, x2_n = rec.get("x2", {}).get("strength", 0.2), rec.get("x2", {}).get("steps", 1)
    settings = sorted({(ref_s, ref_n), (x2_s, x2_n)})
    if not args.quick:
        settings = sorted(set(settings) | {(0.1, 1), (0.3, 1), (0.5, 1), (0.3, 4), (0.5, 8)})
    crops = heldout_crops(args.data, args.crop, 1 if args.quick else 4, args.seed)
    res = evaluate(model, crops, settings, args.seed)

    print(f"seamwise-tiny on {len(crops)} held-out {args.crop}px crops "
          f"({', '.join(sorted({n.split('#')[0] for n, _ in crops}))}), seed {args.seed}")
    print("PSNR in dB: mean over crops (pooled over all pixels in brackets); HF ratio = energy above"
          " half Nyquist / original's")
    print(f"{'strength':>8} {'steps':>5} | {'refine PSNR':>15} {'gain':>14} | "
          f"{'x2 PSNR':>15} {'vs bicubic':>14} {'HF ratio':>8}")
    r0, x0 = res["refine"], res["x2"]
    print(f"{'input':>8} {'':>5} | {r0['input_psnr']:6.2f} ({r0['input_pooled']:6.2f}) {'':>14} | "
          f"{x0['bicubic_psnr']:6.2f} ({x0['bicubic_pooled']:6.2f}) {'(bicubic)':>14} "
          f"{x0['bicubic_hf_ratio']:8.3f}")
    for s, n in settings:
        k = f"s{s:g}_n{n}"
        r, x = res["refine"][k], res["x2"][k]
        print(f"{s:8g} {n:5d} | {r['psnr']:6.2f} ({r['pooled']:6.2f}) "
              f"{r['gain_db']:+6.2f} ({r['pooled'] - r0['input_pooled']:+5.2f}) | "
              f"{x['psnr']:6.2f} ({x['pooled']:6.2f}) "
              f"{x['vs_bicubic_db']:+6.2f} ({x['pooled'] - x0['bicubic_pooled']:+5.2f}) "
              f"{x['hf_ratio']:8.3f}")
    ref_k, x2_k = f"s{ref_s:g}_n{ref_n}", f"s{x2_s:g}_n{x2_n}"
    summary = {
        "benchmark": "tiny_quality", "crops": len(crops), "crop": args.crop, "seed": args.seed,
        "heldout": sorted({n.split("#")[0] for n, _ in crops}),
        "refine": {"strength": ref_s, "steps": ref_n,
                   "input_psnr": round(res["refine"]["input_psnr"], 3),
                   "output_psnr": round(res["refine"][ref_k]["psnr"], 3),
                   "gain_db": round(res["refine"][ref_k]["gain_db"], 3), "target_gain_db": 2.0,
                   "pooled_gain_db": round(res["refine"][ref_k]["pooled"]
                                           - res["refine"]["input_pooled"], 3),
                   "per_crop_gain_db": res["refine"][ref_k]["per_crop_gain"]},
        "x2": {"strength": x2_s, "steps": x2_n,
               "bicubic_psnr": round(res["x2"]["bicubic_psnr"], 3),
               "output_psnr": round(res["x2"][x2_k]["psnr"], 3),
               "vs_bicubic_db": round(res["x2"][x2_k]["vs_bicubic_db"], 3), "target_vs_bicubic_db": -0.3,
               "pooled_vs_bicubic_db": round(res["x2"][x2_k]["pooled"] - res["x2"]["bicubic_pooled"], 3),
               "per_crop_vs_bicubic_db": res["x2"][x2_k]["per_crop_vs_bicubic"],
               "hf_ratio_output": round(res["x2"][x2_k]["hf_ratio"], 4),
               "hf_ratio_bicubic": round(res["x2"]["bicubic_hf_ratio"], 4)},
        "sweep": {k: {"refine_gain_db": round(res["refine"][k]["gain_db"], 3),
                      "x2_vs_bicubic_db": round(res["x2"][k]["vs_bicubic_db"], 3),
                      "x2_hf_ratio": round(res["x2"][k]["hf_ratio"], 4)}
                  for k in (f"s{s:g}_n{n}" for s, n in settings)},
    }
    summary["refine"]["pass"] = summary["refine"]["gain_db"] >= 2.0
    summary["x2"]["pass"] = summary["x2"]["vs_bicubic_db"] >= -0.3
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
