"""Tiled VAE: exactness against the full-frame VAE, host memory at 16/64(/150) MP, extra work.

    python -m benchmarks.vae [--quick] [--huge] [--no-memory]
    python -m benchmarks.vae --peak

Exactness: a random-weight AutoencoderKL (small SD-layout config), a synthetic photo-like image,
tiled vs full-frame decode and encode for exact mode, fast mode and diffusers' own
`enable_tiling` at the same tile size. Work: convolution FLOPs counted with torch's
FlopCounterMode, tiled ÷ full frame. Memory: each decode runs in its own subprocess, which
reports its peak resident set (ru_maxrss) and its resident set before decoding; the output is a
float32 HxWx3 array in RAM, and the activation RAM budget equals the output's size, so everything
beyond it spills to disk. --huge adds a 150 MP decode. --peak: only the activations the real SD
and SDXL VAEs (published configs, built on the meta device) hold at their peak in exact mode at
20, 42 and 150 MP, from the plan: what RAM and temporary disk must hold together.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

# Small configurations of the production layouts (random weights; no download).
_BASE = dict(
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    in_channels=3, out_channels=3,
)
VAE_LAYOUTS = {
    # SD 1.x/2.x: 4 latent channels, quant_conv + post_quant_conv, 4 levels (×8), 2 layers/block.
    "sd": dict(_BASE, block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8,
               latent_channels=4, scaling_factor=0.18215),
    # SDXL: the same module layout with SDXL's config flags.
    "sdxl": dict(_BASE, block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8,
                 latent_channels=4, scaling_factor=0.13025, force_upcast=True, sample_size=1024),
    # FLUX: 16 latent channels, no quant convs, shift factor.
    "flux": dict(_BASE, block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8,
                 latent_channels=16, use_quant_conv=False, use_post_quant_conv=False,
                 scaling_factor=0.3611, shift_factor=0.1159),
    # FLUX.2 (AutoencoderKLFlux2): 32 latent channels, quant convs, a BatchNorm over 2x2 patches.
    "flux2": dict(_BASE, block_out_channels=(16, 32, 32, 32), layers_per_block=2, norm_num_groups=8,
                  latent_channels=32),
    # Larger channel counts for the exactness benchmark.
    "bench": dict(_BASE, block_out_channels=(32, 64, 128, 128), layers_per_block=2, norm_num_groups=16,
                  latent_channels=4),
    # Cheapest useful layout for the memory runs (3 levels, 1 layer/block).
    "mem": dict(_BASE, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, latent_channels=4),
}


def small_vae(layout: str = "sd", seed: int = 0, dtype: torch.dtype = torch.float32):
    import diffusers

    torch.manual_seed(seed)
    cls = diffusers.AutoencoderKLFlux2 if layout == "flux2" else diffusers.AutoencoderKL
    vae = cls(**VAE_LAYOUTS[layout]).eval().requires_grad_(False)
    # Random init leaves GroupNorm affines at 1/0; perturb them so statistics errors show.
    g = torch.Generator().manual_seed(seed + 1)
    for m in vae.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data = 1 + 0.3 * torch.randn(m.weight.shape, generator=g)
            m.bias.data = 0.3 * torch.randn(m.bias.shape, generator=g)
    if layout == "flux2":  # the latent BatchNorm's running statistics, which the pipeline applies
        vae.bn.running_mean.copy_(0.2 * torch.randn(vae.bn.running_mean.shape, generator=g))
        vae.bn.running_var.copy_(0.5 + torch.rand(vae.bn.running_var.shape, generator=g))
    return vae if dtype == torch.float32 else vae.to(dtype)


def synthetic_photo(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A [-1, 1] image with a sky-like gradient, a few soft shapes and sensor-like grain."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(-1, 1)
    x = torch.linspace(0, 1, width).view(1, -1)
    rgb = []
    for c in range(3):
        base = 0.6 * (y * (0.5 + 0.2 * c)) - 0.3 + 0.2 * torch.sin(6.0 * x + c)
        for _ in range(4):
            cy, cx, r, a = torch.rand(4, generator=g)
            base = base + (a - 0.5) * torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (0.02 + 0.05 * r))
        rgb.append(base)
    img = torch.stack(rgb)[None]
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return img.clamp(-1, 1)


def synthetic_latent(channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A latent-like field: smooth structure at several scales plus fine detail, unit-ish variance."""
    g = torch.Generator().manual_seed(seed)
    z = torch.zeros(1, channels, height, width)
    for scale in (1, 4, 16):
        coarse = torch.randn(1, channels, max(1, height // scale), max(1, width // scale), generator=g)
        z += torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return z / math.sqrt(3)


def conv_flops(fn) -> tuple[int, object]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        out = fn()
    counts = counter.get_flop_counts().get("Global", {})
    return sum(v for k, v in counts.items() if "convolution" in str(k)), out


def _diffusers_tiled(vae, tile: int):
    vae.enable_tiling()
    vae.tile_sample_min_size = tile
    vae.tile_latent_min_size = tile // 8
    return vae


def exactness(quick: bool) -> list[dict]:
    from engine.vae.tiled import AttentionPolicy, tiled_decode, tiled_encode

    side = 512 if quick else 1024
    tile = 256
    vae = small_vae("bench")
    img = synthetic_photo(side, side * 3 // 4 if not quick else side)
    rows = []
    with torch.no_grad():
        lat = vae.encode(img).latent_dist.mean  # what a pipeline would hand back to decode
        cases = {
            "decode": (lambda: vae.decode(lat).sample, lat, tiled_decode, lambda o: o),
            "encode": (lambda: vae.encode(img).latent_dist.mean, img, tiled_encode, lambda o: o.mean),
        }
        for what, (full_fn, x, tiled_fn, unwrap) in cases.items():
            t = time.perf_counter()
            full_flops, ref = conv_flops(full_fn)
            full_s = time.perf_counter() - t
            methods = {
                "exact": lambda: unwrap(tiled_fn(vae, x, tile=tile, mode="exact")),
                "fast": lambda: unwrap(tiled_fn(vae, x, tile=tile, mode="fast")),
                "fast, thumb 1/2": lambda: unwrap(tiled_fn(vae, x, tile=tile, mode="fast", thumb=side // 2)),
                "fast, thumb 1/4": lambda: unwrap(tiled_fn(vae, x, tile=tile, mode="fast", thumb=side // 4)),
                "exact, approx. attention": lambda: unwrap(tiled_fn(
                    vae, x, tile=tile, attention=AttentionPolicy(max_tokens=1024, bank_tokens=256, window=32))),
                "diffusers enable_tiling": lambda: (full_fn() if _diffusers_tiled(vae, tile) else None),
            }
            for name, fn in methods.items():
                t = time.perf_counter()
                flops, out = conv_flops(fn)
                secs = time.perf_counter() - t
                vae.disable_tiling()
                err = (out.float() - ref.float()).abs()
                rows.append(dict(
                    op=what, method=name, megapixels=round(img.shape[2] * img.shape[3] / 1e6, 2),
                    max_abs=float(err.max()), mean_abs=float(err.mean()),
                    conv_flop_ratio=flops / full_flops, seconds=secs, full_frame_seconds=full_s,
                ))
    return rows


FAMILY = (("SD 1.x/2.x", "sd"), ("SDXL", "sdxl"), ("FLUX.1 / SD3 (16 ch)", "flux"), ("FLUX.2 (32 ch)", "flux2"))
UNSUPPORTED = ("AutoencoderKLQwenImage", "AutoencoderKLWan", "AutoencoderKLQwenImage21")


def family(side: int = 256, tile: int = 64) -> list[dict]:
    """Each VAE family on its small random-weight config: max error of exact mode against the
    full frame, storing everything and recomputing within a third of that scratch (float32)."""
    import diffusers

    from engine.vae.tiled import UnsupportedModel, scratch_schedule, tiled_decode, tiled_encode

    rows = []
    img = synthetic_photo(side, side, seed=7)
    for name, layout in FAMILY:
        vae = small_vae(layout)
        z = synthetic_latent(vae.config.latent_channels, side // 8, side // 8, seed=7)
        with torch.no_grad():
            ref, eref = vae.decode(z).sample, vae.encode(img).latent_dist.mean
        for what, h, w in (("decode", side // 8, side // 8), ("encode", side, side)):
            full = scratch_schedule(vae, h, w, decode=what == "decode", tile=tile, disk_budget=0)
            for plan, budget in (("store", 1 << 40), ("recompute", full.scratch // 3)):
                sched = scratch_schedule(vae, h, w, decode=what == "decode", tile=tile, ram_budget=budget,
                                         disk_budget=0)
                kw = dict(tile=tile, ram_budget=budget, disk_budget=0)
                out = tiled_decode(vae, z, **kw) if what == "decode" else tiled_encode(vae, img, **kw).mean
                err = float((out - (ref if what == "decode" else eref)).abs().max())
                rows.append(dict(family=name, op=what, plan=plan, megapixels=round(side * side / 1e6, 3),
                                 max_abs=err, scratch_mib=sched.scratch / 2**20, conv_work=sched.work))
    for cls in UNSUPPORTED:
        kw = {} if cls.endswith("21") else dict(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1,
                                                temperal_downsample=[False])
        try:
            tiled_decode(getattr(diffusers, cls)(**kw), torch.zeros(1, 4, 8, 8))
            why = "ran"
        except UnsupportedModel as exc:
            why = str(exc)
        rows.append(dict(family=cls, op="decode", plan="not supported", error=why))
    return rows


def precision(side: int = 256, tile: int = 64) -> list[dict]:
    """SDXL layout (small, random weights): exact mode with 16-bit storage and float32 compute,
    and the whole model run in 16 bits, against the float32 full frame (max abs error)."""
    from engine.vae.tiled import tiled_decode, tiled_encode

    vae = small_vae("sdxl")
    z = synthetic_latent(4, side // 8, side // 8, seed=1)
    img = synthetic_photo(side, side, seed=1)
    with torch.no_grad():
        ref, eref = vae.decode(z).sample, vae.encode(img).latent_dist.mean
    rows = []
    for storage in ("float32", "float16", "bfloat16"):
        dec = tiled_decode(vae, z, tile=tile, storage=storage)
        enc = tiled_encode(vae, img, tile=tile, storage=storage).mean
        rows.append(dict(run=f"float32 compute, {storage} storage", decode_max_abs=float((dec - ref).abs().max()),
                         encode_max_abs=float((enc - eref).abs().max())))
    for dtype in (torch.float16, torch.bfloat16):
        half = small_vae("sdxl", dtype=dtype)
        with torch.no_grad():
            dec = half.decode(z.to(dtype)).sample.float()
            enc = half.encode(img.to(dtype)).latent_dist.mean.float()
        rows.append(dict(run=f"whole model in {str(dtype)[6:]} (full frame)",
                         decode_max_abs=float((dec - ref).abs().max()), encode_max_abs=float((enc - eref).abs().max())))
    return rows


ATTENTION_GEOMETRY = ((512, 512), (5472, 3648), (15000, 10000))  # output px: 0.26, 20 and 150 MP


def attention_geometry(samples: int = 4096, seed: int = 0) -> list[dict]:
    """The mid-block attention's approximation (window + far-field cells, default policy) at real
    latent geometries, on the small SD layout's decoder (32 channels at the mid block): the
    attention operation's output against exact whole-image attention, evaluated for `samples`
    random query pixels (exact attention for all 2.3 M latent pixels of 150 MP would be 5·10¹²
    scores; for a sample of queries it is cheap and exact). At 0.26 MP the attention is exact."""
    from engine.layerwise.attention import attend, finish, project_kv, tokens
    from engine.layerwise.plan import AttnOp, decoder_plan
    from engine.layerwise.runner import Runner, Stored
    from engine.layerwise.stats import NormAffine
    from engine.layerwise.store import ActivationStore, RamActivation

    vae = small_vae("sd")
    plan = decoder_plan(vae)
    k = next(i for i, op in enumerate(plan.ops) if isinstance(op, AttnOp))
    rows = []
    for w, h in ATTENTION_GEOMETRY:
        lh, lw = h // 8, w // 8
        z = synthetic_latent(4, lh, lw, seed=seed)[0].permute(1, 2, 0).numpy().copy()
        runner = Runner(torch.device("cpu"), torch.float32, ActivationStore(1 << 40), 512)
        t = time.perf_counter()
        with torch.inference_mode():
            values = {"in": Stored(RamActivation(*z.shape, z.dtype, out=z))}
            for op in plan.ops[:k]:  # conv_in and the first mid-block resnet: the attention's input
                srcs = [values[op.src]]
                res = [values[op.res]] if op.res else []
                values[op.dst] = runner.conv(op, srcs, res, None)
            src = values[plan.ops[k].src]
            approx = runner.attn(plan.ops[k], src).act.array
            seconds = time.perf_counter() - t
            attn = plan.ops[k].attn
            x = runner.to_torch(src.act.array)
            hid = NormAffine.from_moments(attn.group_norm, src.moments).apply(x)
            key, value = project_kv(attn, tokens(hid))
            g = torch.Generator().manual_seed(seed)
            idx = torch.randint(0, lh * lw, (min(samples, lh * lw),), generator=g)
            q = tokens(hid)[:, idx]
            res = tokens(x)[:, idx].transpose(1, 2).reshape(1, -1, 1, len(idx))
            exact = finish(attn, attend(attn, q, key, value, None), res)[0, :, 0].t()
            got = torch.from_numpy(approx.reshape(-1, approx.shape[-1]))[idx]
            err = (got - exact).abs()
            delta = (exact - tokens(x)[0, idx]).abs()  # what the attention adds to its residual
        rows.append(dict(megapixels=round(w * h / 1e6, 2), latent=f"{lw}x{lh}", tokens=lh * lw,
                         regime="exact" if lh * lw <= runner.attention.max_tokens else "window + cells",
                         samples=len(idx), max_abs=float(err.max()), mean_abs=float(err.mean()),
                         attention_mean_abs=float(delta.mean()), seconds=seconds))
    return rows


def _disk_in_use() -> int:
    """Bytes of disk allocated to this process's activation files (unlinked, so only visible
    through its open descriptors): measured, not computed."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "seamwise-act" in os.readlink(f"/proc/self/fd/{fd}"):
                total += os.fstat(int(fd)).st_blocks * 512
        except OSError:
            pass
    return total


def _memory_child(side_h: int, side_w: int, tile: int, ram_budget: int, disk_budget: int) -> None:
    """One decode into a float32 array; ram_budget < 0: the output's size; disk_budget < 0: free disk."""
    import resource
    import threading

    import psutil

    from engine.vae.tiled import scratch_schedule, tiled_decode_into

    vae = small_vae("mem")
    lat = synthetic_latent(4, side_h // 8, side_w // 8)
    out = np.zeros((side_h, side_w, 3), np.float32)
    out[:] = 0  # the output image, once, resident
    budgets = dict(ram_budget=out.nbytes if ram_budget < 0 else ram_budget,
                   disk_budget=None if disk_budget < 0 else disk_budget)
    schedule = scratch_schedule(vae, side_h // 8, side_w // 8, tile=tile, **budgets)
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak, disk = [before], [0]
    done = threading.Event()

    def sample():  # ru_maxrss would also count transients of import time; sample the decode itself
        while not done.wait(0.005):
            peak[0] = max(peak[0], proc.memory_info().rss)
            disk[0] = max(disk[0], _disk_in_use())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    tiled_decode_into(vae, lat, out, tile=tile, **budgets)
    secs = time.perf_counter() - t
    done.set()
    sampler.join()
    print(json.dumps(dict(before=before, peak=peak[0], seconds=secs, output_bytes=out.nbytes, disk_peak=disk[0],
                          plan=schedule.describe(), planned_scratch=schedule.scratch, conv_work=schedule.work,
                          lifetime_max=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                          finite=bool(np.isfinite(out[::97, ::97]).all()))))


def memory(sizes: list[int], tile: int, ram_budget: int = -1, disk_budget: int = -1) -> list[dict]:
    rows = []
    vae = small_vae("mem")
    widest = max(vae.config.block_out_channels[:1])
    for mp in sizes:
        w = int(math.sqrt(mp * 1e6 * 3 / 2)) // 8 * 8
        h = int(mp * 1e6 / w) // 8 * 8
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.vae", "--child", str(h), str(w), str(tile), str(ram_budget),
             str(disk_budget)],
            capture_output=True, text=True, env=env, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"memory run at {mp} MP failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        act = h * w * widest * 4  # one full-resolution float32 activation
        rows.append(dict(
            megapixels=round(h * w / 1e6, 1), size=f"{w}x{h}", seconds=r["seconds"],
            output_gib=r["output_bytes"] / 2**30, peak_rss_gib=r["peak"] / 2**30,
            rss_before_gib=r["before"] / 2**30, decode_rss_gib=(r["peak"] - r["before"]) / 2**30,
            decode_extra_over_output=(r["peak"] - r["before"]) / r["output_bytes"],
            full_res_activation_gib=act / 2**30, finite=r["finite"], disk_peak_gib=r["disk_peak"] / 2**30,
            plan=r["plan"], planned_scratch_gib=r["planned_scratch"] / 2**30, conv_work=r["conv_work"],
        ))
    return rows


# Published configurations (built on the meta device: no weights, no download) and the bytes
# per stored value exact mode uses for each by default (the model's dtype).
PUBLISHED = dict(_BASE, block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32)
PUBLISHED_VAES = (
    ("SD 1.x/2.x (fp16)", "AutoencoderKL", dict(latent_channels=4), 2),
    ("SDXL (float32, force_upcast)", "AutoencoderKL", dict(latent_channels=4), 4),
    ("FLUX.1 / SD3 (bf16)", "AutoencoderKL",
     dict(latent_channels=16, use_quant_conv=False, use_post_quant_conv=False), 2),
    ("FLUX.2 (bf16)", "AutoencoderKLFlux2", dict(latent_channels=32), 2),
)
PEAK_SIZES = ((5472, 3648), (7952, 5304), (15000, 10000))


def plan_peaks(budget: int, tile: int = 512) -> list[dict]:
    """Per published VAE and size: what storing every activation holds at its peak, and the
    schedule exact mode chooses within `budget` bytes of RAM + temporary disk."""
    import diffusers

    from engine.layerwise.plan import decoder_plan, encoder_plan
    from engine.layerwise.schedule import choose

    rows = []
    for name, cls, cfg, itemsize in PUBLISHED_VAES:
        with torch.device("meta"):
            vae = getattr(diffusers, cls)(**dict(PUBLISHED, **cfg))
        dec, enc = decoder_plan(vae), encoder_plan(vae)
        for w, h in PEAK_SIZES:
            lh, lw = -(-h // 8), -(-w // 8)
            d = choose(dec, lh, lw, itemsize, tile, budget)
            e = choose(enc, h, w, itemsize, tile, budget)
            rows.append(dict(model=name, size=f"{w}x{h}", megapixels=round(w * h / 1e6, 1),
                             decode_gib=dec.peak_bytes(lh, lw, itemsize) / 2**30,
                             encode_gib=enc.peak_bytes(h, w, itemsize) / 2**30,
                             budget_gib=budget / 2**30, conv_work=d.work, decode_scratch_gib=d.scratch / 2**30,
                             decode_plan="store" if d.stores_everything else "recompute",
                             encode_conv_work=e.work, encode_scratch_gib=e.scratch / 2**30,
                             encode_plan="store" if e.stores_everything else "recompute"))
    return rows


def _print_memory(mem: list[dict]) -> None:
    print("(RSS before = after imports, model and output allocation; peak RSS and temporary disk (blocks of the")
    print("activation files) sampled every 5 ms during the decode)")
    print(f"{'MP':>6} {'size':>12} {'seconds':>8} {'output GiB':>10} {'RSS before':>10} {'peak RSS GiB':>12} "
          f"{'extra/output':>12} {'disk GiB':>8} {'1 full-res act. GiB':>19}  plan")
    for r in mem:
        print(f"{r['megapixels']:6.1f} {r['size']:>12} {r['seconds']:8.1f} {r['output_gib']:10.2f} "
              f"{r['rss_before_gib']:10.2f} {r['peak_rss_gib']:12.2f} {r['decode_extra_over_output']:12.2f} "
              f"{r['disk_peak_gib']:8.2f} {r['full_res_activation_gib']:19.2f}  {r['plan']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.26 MP exactness, 4 and 16 MP memory runs")
    ap.add_argument("--huge", action="store_true", help="add a 150 MP decode to the memory runs")
    ap.add_argument("--no-memory", action="store_true", help="exactness and work only")
    ap.add_argument("--peak", action="store_true", help="only the published VAEs' peak activations and schedules")
    ap.add_argument("--budget", type=float, default=16.0, help="--peak: GiB of RAM + temporary disk (default 16)")
    ap.add_argument("--precision", action="store_true", help="only SDXL's storage precision rows")
    ap.add_argument("--attention", action="store_true", help="only the mid-block attention at 0.26/20/150 MP")
    ap.add_argument("--family", action="store_true", help="only the VAE family's exactness rows")
    ap.add_argument("--scratch", nargs=3, type=float, metavar=("MP", "RAM_GIB", "DISK_GIB"),
                    help="one memory run at MP megapixels within RAM_GIB of RAM and DISK_GIB of temporary disk")
    ap.add_argument("--child", nargs=5, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.child:
        _memory_child(*args.child)
        return
    if args.peak:
        rows = plan_peaks(int(args.budget * 2**30))
        print("Exact mode: stored activations at the peak (RAM budget + temporary disk), from the plan:")
        print(f"storing everything, and the schedule chosen within {args.budget:g} GiB (tile 512; work = "
              "convolution MACs / one full-frame run)")
        print(f"{'VAE':36} {'size':>12} {'MP':>6} {'dec GiB':>8} {'enc GiB':>8} | {'dec plan':>9} {'GiB':>6} "
              f"{'work':>6} | {'enc plan':>9} {'GiB':>6} {'work':>6}")
        for r in rows:
            print(f"{r['model']:36} {r['size']:>12} {r['megapixels']:6.1f} {r['decode_gib']:8.1f} "
                  f"{r['encode_gib']:8.1f} | {r['decode_plan']:>9} {r['decode_scratch_gib']:6.1f} "
                  f"{r['conv_work']:5.2f}x | {r['encode_plan']:>9} {r['encode_scratch_gib']:6.1f} "
                  f"{r['encode_conv_work']:5.2f}x")
        print(json.dumps(dict(peak=rows)))
        return

    if args.precision:
        rows = precision()
        print("SDXL layout (small, random weights), 256x256: max abs error against the float32 full frame")
        print(f"{'run':42} {'decode':>9} {'encode':>9}")
        for r in rows:
            print(f"{r['run']:42} {r['decode_max_abs']:9.1e} {r['encode_max_abs']:9.1e}")
        print(json.dumps(dict(precision=rows)))
        return
    if args.attention:
        rows = attention_geometry()
        print("Mid-block attention, approximate beyond 65 536 latent px: its output vs exact whole-image")
        print("attention at sampled query pixels (small SD layout, 32 channels at the mid block, float32)")
        print(f"{'MP':>6} {'latent':>10} {'regime':>15} {'samples':>8} {'max abs':>9} {'mean abs':>9} "
              f"{'attn mean':>9} {'s':>7}")
        for r in rows:
            print(f"{r['megapixels']:6.2f} {r['latent']:>10} {r['regime']:>15} {r['samples']:8d} {r['max_abs']:9.2e} "
                  f"{r['mean_abs']:9.2e} {r['attention_mean_abs']:9.2e} {r['seconds']:7.1f}")
        print(json.dumps(dict(attention=rows)))
        return
    if args.scratch:
        mp, ram, disk = args.scratch
        mem = memory([mp], tile=512, ram_budget=int(ram * 2**30), disk_budget=int(disk * 2**30))
        print(f"Exact tiled decode into a float32 HxWx3 array within {ram:g} GiB RAM + {disk:g} GiB temporary disk")
        _print_memory(mem)
        print(json.dumps(dict(memory=mem, machine="2-core CPU" if not torch.cuda.is_available() else "cuda")))
        return
    fam = family()
    print("VAE family: exact mode vs full frame on small random-weight configs (float32, 0.066 MP, tile 64;")
    print("recompute = within a third of the store-everything scratch)")
    print(f"{'family':24} {'op':7} {'plan':10} {'max abs':>10} {'scratch MiB':>12} {'conv work':>10}")
    for r in fam:
        if "error" in r:
            print(f"{r['family']:24} {r['op']:7} not supported: {r['error']}")
        else:
            print(f"{r['family']:24} {r['op']:7} {r['plan']:10} {r['max_abs']:10.2e} {r['scratch_mib']:12.2f} "
                  f"{r['conv_work']:9.2f}x")
    if args.family:
        print(json.dumps(dict(family=fam)))
        return
    print()
    ex = exactness(args.quick)
    print("Exactness vs full-frame (random-weight AutoencoderKL, float32, tile 256 px)")
    print(f"{'op':7} {'method':26} {'MP':>5} {'max abs':>10} {'mean abs':>10} {'conv FLOPs':>10} {'s':>7} {'full s':>7}")
    for r in ex:
        print(f"{r['op']:7} {r['method']:26} {r['megapixels']:5.2f} {r['max_abs']:10.2e} {r['mean_abs']:10.2e} "
              f"{r['conv_flop_ratio']:9.3f}x {r['seconds']:7.2f} {r['full_frame_seconds']:7.2f}")

    sizes = [] if args.no_memory else [4, 16] if args.quick else [16, 64] + ([150] if args.huge else [])
    mem = memory(sizes, tile=512)
    print("\nExact tiled decode into a float32 HxWx3 array; activation RAM budget = output size")
    _print_memory(mem)
    print(json.dumps(dict(family=fam, exactness=ex, memory=mem, machine="2-core CPU" if not torch.cuda.is_available() else "cuda")))


if __name__ == "__main__":
    main()
