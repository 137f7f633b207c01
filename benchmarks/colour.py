"""Colour-managed model input: does the model make the same edit whatever the document's profile?

    python -m benchmarks.colour [--quick] [--data DIR]

The held-out photographs (as in benchmarks.fidelity), taken as sRGB, are converted by LittleCMS
into sRGB, Adobe RGB (1998), ProPhoto RGB and Display P3 and quantised to 8 and 16 bit, then
rendered by the bundled model (refine, strength 0.5, 4 steps, seed 0) with the document's
profile named. Each input and result is converted back to sRGB, then to Lab; the render's edit
(result − input, in Lab) is applied to the sRGB input of the same depth and compared, in
CIEDE2000, with the render of that input: the difference between the edits made in two colour
spaces (mean and 99th percentile) as a fraction of the edit itself (the same statistic of ΔE2000
between that sRGB input and its render). Comparing edits rather than results keeps the input's
own quantisation out of the figure, though not the model's response to it (8-bit ProPhoto has
coarser steps than 8-bit sRGB). The 8-bit sRGB rows compare with 16-bit sRGB instead: what
8-bit quantisation alone changes, a floor no colour management removes. Next to each figure,
the same fraction when the pixels go to the model unmanaged, as before colour management. Last,
a model that returns exactly what it sees measures the round trip of pixels the model leaves
alone: the largest difference from the input, in levels of the document's depth.

`--quick`: 192 px crops (the centre of each photograph), else 512 px.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from engine import api
from engine.adapters.tiny import TinyAdapter
from engine.colour import lcms, profiles
from training.train_tiny import DEFAULT_DATA, load_split, prepare_data

FIGURES = ("managed_mean", "managed_p99", "unmanaged_mean", "unmanaged_p99")
SPACES = [profiles.SRGB, "Adobe RGB (1998)", "ProPhoto RGB", "Display P3"]
DEPTHS = {8: (np.uint8, 255.0), 16: (np.uint16, 65535.0)}
PARAMS = api.RenderParams(strength=0.5, steps=4, seed=0, strategy="memory")
TARGET = 0.25


class KeepsWhatItSees(TinyAdapter):
    """A model that predicts exactly the picture it is shown: every pixel it returns is one it
    did not change, so a render's output differs from its input only by colour handling."""

    def predict_x0(self, x_t, t, alpha_bar, windows, cond):
        return torch.cat([self._cond_crop(cond, w) for w in windows]).to(x_t.device, x_t.dtype)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 (Sharma, Wu and Dalal 2005), vectorised; tests check it against LittleCMS's
    cmsCIE2000DeltaE, which computes one pair per call."""
    L1, a1, b1 = (lab1[..., i].astype(np.float64) for i in range(3))
    L2, a2, b2 = (lab2[..., i].astype(np.float64) for i in range(3))
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp, dCp = L2 - L1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    Lp, Cp = (L1 + L2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    Hp = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, hsum + 360, hsum - 360), hsum) / 2
    Hp = np.where(c1p * c2p == 0, hsum, Hp)
    T = (1 - 0.17 * np.cos(np.radians(Hp - 30)) + 0.24 * np.cos(np.radians(2 * Hp))
         + 0.32 * np.cos(np.radians(3 * Hp + 6)) - 0.20 * np.cos(np.radians(4 * Hp - 63)))
    d_theta = 30 * np.exp(-(((Hp - 275) / 25) ** 2))
    rc = 2 * np.sqrt(Cp ** 7 / (Cp ** 7 + 25.0 ** 7))
    sl = 1 + 0.015 * (Lp - 50) ** 2 / np.sqrt(20 + (Lp - 50) ** 2)
    sc, sh = 1 + 0.045 * Cp, 1 + 0.015 * Cp * T
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dLp / sl) ** 2 + (dCp / sc) ** 2 + (dHp / sh) ** 2
                   + rt * (dCp / sc) * (dHp / sh))


class Converter:
    """LittleCMS float conversions between sRGB, the test spaces and Lab, built once."""

    def __init__(self):
        srgb = profiles.standard_profile(profiles.SRGB)
        self.to_space = {s: lcms.FloatTransform(srgb, profiles.standard_profile(s)) for s in SPACES}
        self.to_srgb = {s: lcms.FloatTransform(profiles.standard_profile(s), srgb) for s in SPACES}
        self.lab = lcms.FloatTransform(srgb, lcms.Profile.lab())


def quantise(unit: np.ndarray, depth: int) -> np.ndarray:
    dtype, top = DEPTHS[depth]
    return np.clip(np.rint(unit * top), 0, top).astype(dtype)


def photographs(data: Path, crop: int) -> list[tuple[str, np.ndarray]]:
    """The centre `crop` px of each held-out photograph, as sRGB in 0..1."""
    out = []
    for name, img in load_split(data, "heldout"):
        h, w = img.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        centre = np.ascontiguousarray(img[y:y + crop, x:x + crop])
        out.append((name, centre.astype(np.float32) / 255))
    return out


def _edit(conv: Converter, doc: np.ndarray, out: np.ndarray, space: str) -> np.ndarray:
    """A render's edit in Lab (result − input, both converted to sRGB first)."""
    top = DEPTHS[8 if doc.dtype == np.uint8 else 16][1]
    lab = [conv.lab(conv.to_srgb[space](a.astype(np.float32) / top)) for a in (doc, out)]
    return lab[1] - lab[0]


def _fractions(diff: np.ndarray, edit: np.ndarray) -> tuple[float, float]:
    return (float(diff.mean() / edit.mean()),
            float(np.percentile(diff, 99) / np.percentile(edit, 99)))


def measure_photo(name: str, srgb: np.ndarray, conv: Converter, adapter, keeps) -> list[dict]:
    """One row per space and depth: that document's edit against the sRGB document's of the
    same depth; the sRGB rows give the 8-bit quantisation's own effect instead (8-bit sRGB
    against 16-bit sRGB), which colour management cannot remove."""
    refs = {}
    for depth in DEPTHS:
        doc = quantise(srgb, depth)
        out = api.render(doc, PARAMS, adapter=adapter).image
        lab_in = conv.lab(doc.astype(np.float32) / DEPTHS[depth][1])
        refs[depth] = (lab_in, lab_in + _edit(conv, doc, out, profiles.SRGB))
    rows = []
    for space in SPACES:
        for depth in DEPTHS:
            doc = quantise(conv.to_space[space](srgb), depth)
            against = 16 if space == profiles.SRGB else depth
            lab_in, lab_ref = refs[against]
            edit = delta_e_2000(lab_in, lab_ref)
            row = dict(photo=name, space=space, depth=depth, against=f"sRGB {against}-bit",
                       edit_mean=float(edit.mean()))
            for label, profile in (("managed", space), ("unmanaged", None)):
                if space == profiles.SRGB and label == "unmanaged":
                    row["unmanaged_mean"] = row["managed_mean"]
                    row["unmanaged_p99"] = row["managed_p99"]
                    continue
                out = api.render(doc, PARAMS, adapter=adapter, profile=profile).image
                diff = delta_e_2000(lab_in + _edit(conv, doc, out, space), lab_ref)
                row[f"{label}_mean"], row[f"{label}_p99"] = _fractions(diff, edit)
            kept = api.render(doc, PARAMS, adapter=keeps, profile=space).image
            row["round_trip_levels"] = float(np.abs(kept.astype(np.int64) - doc).max())
            rows.append(row)
            print(f"{name:30s} {space:18s} {depth:3d} {row['against']:>11s} "
                  f"{row['edit_mean']:7.3f} {row['managed_mean']:8.3f} {row['managed_p99']:8.3f} "
                  f"{row['unmanaged_mean']:10.3f} {row['unmanaged_p99']:10.3f} "
                  f"{row['round_trip_levels']:6.0f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="192 px crops instead of 512 px")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="prepared data folder")
    args = p.parse_args(argv)
    if not (args.data / "manifest.json").is_file():
        prepare_data(args.data)
    crop = 192 if args.quick else 512
    adapter = TinyAdapter.load(torch.device("cpu"), torch.float32)
    keeps = KeepsWhatItSees(adapter.denoiser, adapter.scheduler_config, adapter.native_size,
                            adapter.downsample_factor, adapter.device, adapter.dtype)
    conv = Converter()
    sample = np.random.default_rng(0).random((2048, 2048, 3), dtype=np.float32)
    t = time.perf_counter()
    conv.to_srgb["ProPhoto RGB"](sample, out=sample)
    convert_s_per_mp = (time.perf_counter() - t) / 4.194304
    started = time.perf_counter()
    print("difference between each render's edit and the sRGB render's edit at the same depth, "
          "after converting back to sRGB, as a fraction of that edit (CIEDE2000); round trip of "
          "kept pixels in the document's levels")
    print(f"{'photograph':30s} {'space':18s} {'bit':>3s} {'against':>11s} {'edit ΔE':>7s} "
          f"{'managed':>8s} {'p99':>8s} {'unmanaged':>10s} {'p99':>10s} {'trip':>6s}")
    rows = []
    for name, srgb in photographs(args.data, crop):
        rows += measure_photo(name, srgb, conv, adapter, keeps)
    compared = [r for r in rows if r["space"] != profiles.SRGB]
    floor = [r for r in rows if r["space"] == profiles.SRGB and r["depth"] == 8]
    per_photo = {}
    for name in dict.fromkeys(r["photo"] for r in rows):
        mine = [r for r in compared if r["photo"] == name]
        per_photo[name] = {k: round(float(np.mean([r[k] for r in mine])), 4)
                           for k in FIGURES}
    summary = {k: round(float(np.mean([r[k] for r in compared])), 4)
               for k in FIGURES}
    summary["worst_photo_managed_mean"] = max(v["managed_mean"] for v in per_photo.values())
    summary["by_depth"] = {
        d: {k: round(float(np.mean([r[k] for r in compared if r["depth"] == d])), 4)
            for k in FIGURES} for d in DEPTHS}
    summary["quantisation_floor_mean"] = round(float(np.mean([r["managed_mean"] for r in floor])), 4)
    summary["round_trip_levels_max"] = {d: max(r["round_trip_levels"] for r in rows if r["depth"] == d)
                                        for d in DEPTHS}
    summary["meets_target"] = bool(summary["managed_mean"] <= TARGET and
                                   summary["worst_photo_managed_mean"] <= TARGET)
    print("\nmean over Adobe RGB, ProPhoto and Display P3 at 8 and 16 bit:")
    for name, v in per_photo.items():
        print(f"  {name:30s} managed {v['managed_mean']:.3f} (p99 {v['managed_p99']:.3f})   "
              f"unmanaged {v['unmanaged_mean']:.3f} (p99 {v['unmanaged_p99']:.3f})")
    print(f"  {'all':30s} managed {summary['managed_mean']:.3f} (p99 {summary['managed_p99']:.3f})   "
          f"unmanaged {summary['unmanaged_mean']:.3f} (p99 {summary['unmanaged_p99']:.3f});"
          f" target <= {TARGET}: {'met' if summary['meets_target'] else 'NOT met'}")
    for d, v in summary["by_depth"].items():
        print(f"  {d:2d}-bit only{'':19s} managed {v['managed_mean']:.3f} (p99 {v['managed_p99']:.3f})   "
              f"unmanaged {v['unmanaged_mean']:.3f}")
    print(f"  8-bit sRGB against 16-bit sRGB (quantisation alone): {summary['quantisation_floor_mean']:.3f}")
    print(f"  kept pixels' round trip, largest difference: {summary['round_trip_levels_max']} levels")
    print(f"  one conversion (ProPhoto RGB → sRGB, float): {convert_s_per_mp:.3f} s per megapixel")
    print(json.dumps({"benchmark": "colour", "quick": args.quick, "crop": crop,
                      "convert_s_per_mp": round(convert_s_per_mp, 4),
                      "machine": "2-core CPU", "littlecms": lcms.version(),
                      "seconds": round(time.perf_counter() - started, 1),
                      "summary": summary, "per_photo": per_photo, "rows": rows}))


if __name__ == "__main__":
    main()
