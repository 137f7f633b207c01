"""Train seamwise-tiny, the bundled restoration diffusion model, from packaged photographs only.

Two steps, both reproducible:

    python -m training.train_tiny --prepare-data DATA      # apt-get download + unpack + crop lists
    python -m training.train_tiny --data DATA --out RUN    # train, checkpoint, export weights

Data: scikit-image's sample photographs and the photographs among Debian's wallpaper packages
(see docs/MODEL.md for names and licences). The held-out photographs below never enter training;
the quality benchmark and the model tests use them.

Recipe (why): the product starts sampling from the *condition* noised to the strength's timestep
and often takes a single step, so the network is trained to predict x0 (prediction_type
"sample") from x_t built either from the clean photo (ordinary diffusion training, which is what
later steps of a multi-step run see) or from the degraded condition (what the first step sees),
with timesteps weighted toward the low/moderate range that refine and ×2 use.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.degrade import DegradationRanges, random_degradation
from engine.models.tiny import (DEFAULT_SCHEDULER_CONFIG, DEFAULT_UNET_CONFIG, OUTPUTS, build_unet,
                               with_output)

# --- data -------------------------------------------------------------------------------------

WALLPAPER_PACKAGES = ["plasma-workspace-wallpapers", "ukui-wallpapers", "gnome-backgrounds",
                      "lomiri-wallpapers"]
# Photographs in those packages (everything else there is an illustration or an abstract render;
# ukui-wallpapers, gnome-backgrounds and lomiri-wallpapers ship no photographs at all).
WALLPAPER_DIR = "usr/share/wallpapers/{name}/contents/images/2560x1600.jpg"
TRAIN_WALLPAPERS = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "FallenLeaf",
                    "Grey", "OneStandsOut", "summer_1am"]
HELDOUT_WALLPAPERS = ["EveningGlow", "Path", "Kite"]
# scikit-image photographs available offline (no pooch); illustrations and synthetic images
# (checkerboard, text, page, logo, horse, colorwheel, binary_blobs, ...) are left out.
TRAIN_SKIMAGE = ["astronaut", "camera", "coffee", "rocket", "coins", "moon", "hubble_deep_field",
                 "immunohistochemistry", "retina", "brick", "grass", "gravel", "cell", "clock"]
HELDOUT_SKIMAGE = ["chelsea"]          # skimage's "cat" is the same photograph: used nowhere
# Wallpapers are 2560x1600 JPEGs: shrinking them removes the compression blocks so the model
# learns clean targets; two scales give it two detail densities.
WALLPAPER_TRAIN_SCALES = (2, 3)
WALLPAPER_HELDOUT_SCALE = 2
# Where benchmarks and tests look for the prepared photographs.
DEFAULT_DATA = Path(os.environ.get("SEAMWISE_TINY_DATA", Path.home() / ".cache" / "seamwise-tiny-data"))
# The finishing (engine.restoration.consistency) written into a new model's JSON: what was chosen
# for the shipped weights on the validation photographs. After retraining, choose it again with
# `python -m benchmarks.tiny_quality --split validation --sweep` and edit the JSON.
FINISH = {"refine": {"texture_keep": 1.5},
          "x2": {"projection_iters": 3, "model_weight": 0.5},
          "x4": {"projection_iters": 3, "model_weight": 0.25}}


def _rgb(a: np.ndarray) -> np.ndarray:
    if a.dtype == bool:
        raise ValueError("binary image is not a photograph")
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3].astype(np.uint8))


def _shrink(img: np.ndarray, factor: int) -> np.ndarray:
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w // factor, h // factor), Image.LANCZOS))


def prepare_data(root: Path) -> dict:
    """Download the wallpaper packages, unpack them, write train/ and heldout/ PNGs + manifest."""
    import skimage.data

    root.mkdir(parents=True, exist_ok=True)
    for sub in ("train", "heldout"):
        (root / sub).mkdir(exist_ok=True)
    manifest: dict = {"packages": {}, "train": [], "heldout": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            subprocess.run(["apt-get", "download", *WALLPAPER_PACKAGES], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SystemExit(f"cannot fetch the wallpaper packages with apt-get download ({e}); "
                             "the training and benchmark photographs come from Debian packages")
        unpacked = tmp / "root"
        for deb in sorted(tmp.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
            manifest["packages"][deb.name] = hashlib.sha256(deb.read_bytes()).hexdigest()
        for names, split in ((TRAIN_WALLPAPERS, "train"), (HELDOUT_WALLPAPERS, "heldout")):
            for name in names:
                src = unpacked / WALLPAPER_DIR.format(name=name)
                img = _rgb(np.asarray(Image.open(src).convert("RGB")))
                scales = WALLPAPER_TRAIN_SCALES if split == "train" else (WALLPAPER_HELDOUT_SCALE,)
                for s in scales:
                    out = f"wallpaper-{name}-s{s}.png"
                    Image.fromarray(_shrink(img, s)).save(root / split / out)
                    manifest[split].append(out)
        for copyright_file in ("plasma-workspace-wallpapers",):
            src = unpacked / "usr/share/doc" / copyright_file / "copyright"
            if src.is_file():
                shutil.copy(src, root / f"{copyright_file}.copyright")
    for names, split in ((TRAIN_SKIMAGE, "train"), (HELDOUT_SKIMAGE, "heldout")):
        for name in names:
            out = f"skimage-{name}.png"
            Image.fromarray(_rgb(getattr(skimage.data, name)())).save(root / split / out)
            manifest[split].append(out)
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def load_split(root: Path, split: str) -> list[tuple[str, np.ndarray]]:
    manifest = json.loads((root / "manifest.json").read_text())
    return [(n, np.asarray(Image.open(root / split / n).convert("RGB"))) for n in manifest[split]]


class CropSampler:
    """Random crops (area-weighted image choice), flips and transposes, then a random degradation.

    Every batch is a pure function of (seed, step), so a resumed run sees exactly the data an
    uninterrupted one would have.
    """

    def __init__(self, images: list[np.ndarray], crop: int, seed: int,
                 ranges: DegradationRanges = DegradationRanges()):
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.weights = area / area.sum()
        self.crop, self.seed, self.ranges = crop, seed, ranges

    def batch(self, step: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        rng = np.random.default_rng([self.seed, step])
        clean, cond, kinds = [], [], []
        for _ in range(size):
            im = self.images[rng.choice(len(self.images), p=self.weights)]
            y = int(rng.integers(0, im.shape[0] - self.crop + 1))
            x = int(rng.integers(0, im.shape[1] - self.crop + 1))
            c = im[y:y + self.crop, x:x + self.crop]
            if rng.random() < 0.5:
                c = c[:, ::-1]
            if rng.random() < 0.5:
                c = c[::-1]
            if rng.random() < 0.5:
                c = c.transpose(1, 0, 2)
            c = np.ascontiguousarray(c)
            d, kind = random_degradation(c, rng, self.ranges)
            clean.append(c)
            cond.append(d)
            kinds.append(kind)

        def t(a):
            return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return t(clean), t(cond), kinds


# --- training ---------------------------------------------------------------------------------

def sample_timesteps(g: torch.Generator, n: int, num_train: int, low_max: int,
                     p_low: float) -> torch.Tensor:
    """Mostly t < low_max (refine and ×2 use strength <= ~0.5), sometimes anywhere."""
    low = torch.randint(0, low_max, (n,), generator=g)
    full = torch.randint(0, num_train, (n,), generator=g)
    pick = torch.rand(n, generator=g) < p_low
    return torch.where(pick, low, full)


def make_xt(clean: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor,
            g: torch.Generator, p_from_cond: float, p_mix: float) -> torch.Tensor:
    """Noised start: from the clean photo, from the condition, or from a blend of the two."""
    n = clean.shape[0]
    u = torch.rand(n, generator=g)
    lam = torch.where(u < p_from_cond, torch.ones(n),
                      torch.where(u < p_from_cond + p_mix, torch.rand(n, generator=g), torch.zeros(n)))
    base = clean + lam.view(-1, 1, 1, 1) * (cond - clean)
    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    noise = torch.randn(clean.shape, generator=g)
    return a.sqrt() * base + (1 - a).sqrt() * noise


class TrainingBatches(torch.utils.data.Dataset):
    """Batch number `step` -> (clean, cond, t, x_t), a pure function of (seed, step).

    Building a batch (crops, JPEG, blur, noise) costs more CPU than the tiny network's step on a
    GPU, so batches are made by DataLoader workers in parallel; being pure functions of the step,
    any number of workers, and a resumed run, see exactly the data one uninterrupted process would.
    """

    def __init__(self, sampler: CropSampler, batch: int, steps: int, first: int,
                 alphas_cumprod: torch.Tensor, args: argparse.Namespace):
        self.sampler, self.size, self.first, self.steps = sampler, batch, first, steps
        self.acp = alphas_cumprod
        self.low_max, self.p_low = args.low_max, args.p_low
        self.p_from_cond, self.p_mix = args.p_from_cond, args.p_mix

    def __len__(self) -> int:
        return max(0, self.steps - self.first)

    def __getitem__(self, i: int):
        step = self.first + i
        clean, cond, _ = self.sampler.batch(step, self.size)
        g = torch.Generator().manual_seed(self.sampler.seed * 1_000_003 + step)
        t = sample_timesteps(g, self.size, len(self.acp), self.low_max, self.p_low)
        x_t = make_xt(clean, cond, t, self.acp, g, self.p_from_cond, self.p_mix)
        return clean, cond, t, x_t


def export_weights(unet, spec: dict, path: Path, half: bool) -> None:
    """Write safetensors + the JSON spec next to it (the JSON is what load_tiny reads)."""
    from safetensors.torch import save_file

    sd = {k: (v.half() if half else v).contiguous() for k, v in unet.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(sd, str(tmp))
    tmp.chmod(0o644)
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(spec, indent=1) + "\n")


def train(args: argparse.Namespace) -> None:
    """Train (or resume), checkpoint every --ckpt-minutes, export the EMA weights with their spec."""
    if not args.steps and not args.max_minutes:
        raise SystemExit("--steps 0 (train for a time) needs --max-minutes")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = _training_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    manifest = json.loads((data / "manifest.json").read_text())
    train_imgs = load_split(data, "train")
    assert not set(manifest["heldout"]) & {n for n, _ in train_imgs}, \
        "held-out photo in the training split"
    sampler = CropSampler([im for _, im in train_imgs], args.crop, args.seed)
    run = _Run(args, manifest, device)
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.is_file():
        run.resume(ckpt)
    batches = torch.utils.data.DataLoader(
        TrainingBatches(sampler, args.batch, args.steps or 10 ** 9, run.step, run.acp, args),
        batch_size=None, num_workers=args.workers, prefetch_factor=4 if args.workers else None,
        persistent_workers=False, pin_memory=device.type == "cuda")
    print(f"params {run.n_params}  images {len(sampler.images)}  crop {args.crop}  "
          f"batch {args.batch}  output {args.output}  device {run.device_name}", flush=True)
    run.loop(batches, ckpt, out / "seamwise-tiny.safetensors")
    print(f"done: {run.step} steps in {run.elapsed:.0f}s", flush=True)


def _training_device(name: str | None) -> torch.device:
    device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _unet_config(args: argparse.Namespace) -> dict:
    """The bundled architecture at the crop size, narrowed or deepened by --channels/--layers."""
    cfg = dict(DEFAULT_UNET_CONFIG, sample_size=args.crop)
    if args.channels:
        cfg["block_out_channels"] = tuple(args.channels)
        n = len(args.channels)
        cfg["down_block_types"] = tuple(["DownBlock2D"] * (n - 1) + ["AttnDownBlock2D"])
        cfg["up_block_types"] = tuple(["AttnUpBlock2D"] + ["UpBlock2D"] * (n - 1))
    if args.layers:
        cfg["layers_per_block"] = args.layers
    return cfg


class _Run:
    """One training run's state: the model and its EMA, the optimiser, step, time and loss log."""

    def __init__(self, args: argparse.Namespace, manifest: dict, device: torch.device):
        from diffusers import DDPMScheduler

        self.args, self.manifest, self.device = args, manifest, device
        self.unet_cfg = _unet_config(args)
        self.sched_cfg = dict(DEFAULT_SCHEDULER_CONFIG)
        self.unet = build_unet(self.unet_cfg)
        if args.output == "residual":
            # Start at "change nothing": the correction is zero until training makes it otherwise.
            torch.nn.init.zeros_(self.unet.conv_out.weight)
            torch.nn.init.zeros_(self.unet.conv_out.bias)
        self.ema = build_unet(self.unet_cfg)
        self.ema.load_state_dict(self.unet.state_dict())
        self.ema.requires_grad_(False)
        self.unet.to(device)
        self.ema.to(device)
        self.net = with_output(self.unet, args.output)
        self.n_params = sum(p.numel() for p in self.unet.parameters())
        self.acp = DDPMScheduler.from_config(self.sched_cfg).alphas_cumprod.float()
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=args.lr, weight_decay=0.0,
                                     betas=(0.9, 0.99))
        self.step, self.elapsed, self.history = 0, 0.0, []
        self.device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        self.t0 = 0.0

    def resume(self, ckpt: Path) -> None:
        st = torch.load(ckpt, weights_only=False, map_location=self.device)
        self.unet.load_state_dict(st["unet"])
        self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.elapsed, self.history = st["step"], st["elapsed"], st["history"]
        print(f"resumed at step {self.step}", flush=True)

    def lr_at(self, s: int) -> float:
        """Warm-up, then a cosine over the steps, or over the time allowed when --steps is 0
        (a GPU run of a fixed length; the steps it reached go into the JSON)."""
        a = self.args
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        if a.steps:
            p = (s - a.warmup) / max(1, a.steps - a.warmup)
        else:
            p = (time.time() - self.t0) / (a.max_minutes * 60)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * min(1.0, p)))

    def loop(self, batches, ckpt: Path, weights: Path) -> None:
        """Train until --steps or --max-minutes, checkpointing on the way and at the end."""
        a = self.args
        last_step = a.steps or 10 ** 9
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.device.type == "cuda")
        self.unet.train()
        t_last_ckpt = time.time()
        window: list[torch.Tensor] = []
        self.t0 = time.time() - self.elapsed
        for batch in batches:
            window.append(self._train_step(batch, autocast))
            if self.step % a.log_every == 0:
                mean = float(torch.stack(window).mean())
                window.clear()
                self.history.append([self.step, round(self.elapsed, 1), mean])
                print(f"step {self.step:6d}  {self.elapsed:7.1f}s  "
                      f"{self.step / self.elapsed:.3f} it/s  loss {mean:.5f}  "
                      f"lr {self.lr_at(self.step):.2e}", flush=True)
            done = self.step >= last_step or (a.max_minutes and self.elapsed > a.max_minutes * 60)
            if done or time.time() - t_last_ckpt > a.ckpt_minutes * 60:
                self._checkpoint(ckpt, weights)
                t_last_ckpt = time.time()
            if done:
                break
        self._export(weights)

    def _train_step(self, batch, autocast) -> torch.Tensor:
        """One optimiser step on (clean, cond, t, x_t): L1 on x0, clipped, then the EMA."""
        clean, cond, t, x_t = (v.to(self.device, non_blocking=True) for v in batch)
        for pg in self.opt.param_groups:
            pg["lr"] = self.lr_at(self.step)
        with autocast:
            pred = self.net(torch.cat([x_t, cond], 1), t).sample
        loss = (pred.float() - clean).abs().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        decay = min(self.args.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.unet.parameters()),
                                 1 - decay)
        self.step += 1
        self.elapsed = time.time() - self.t0
        return loss.detach()

    def _checkpoint(self, ckpt: Path, weights: Path) -> None:
        torch.save({"unet": self.unet.state_dict(), "ema": self.ema.state_dict(),
                    "opt": self.opt.state_dict(), "step": self.step, "elapsed": self.elapsed,
                    "history": self.history}, ckpt.with_suffix(".tmp"))
        ckpt.with_suffix(".tmp").replace(ckpt)
        self._export(weights)
        print(f"checkpoint at step {self.step}", flush=True)

    def _export(self, weights: Path) -> None:
        s = self.spec(self.history[-1][2] if self.history else None)
        s["meta"]["loss_history"] = self.history
        export_weights(self.ema, s, weights, self.args.half)

    def spec(self, final_loss: float | None) -> dict:
        """The JSON that ships next to the weights: architecture, schedule, provenance."""
        a, manifest = self.args, self.manifest
        return {
            "unet": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.unet_cfg.items()},
            "scheduler": dict(self.sched_cfg, _class_name="DDIMScheduler"),
            "output": a.output,
            "meta": {
                "name": "seamwise-tiny",
                "parameters": self.n_params,
                "data": {"train": manifest["train"], "heldout": manifest["heldout"],
                         "packages": manifest["packages"],
                         "sources": "scikit-image sample photographs; Debian "
                                    "plasma-workspace-wallpapers photographs (see docs/MODEL.md)"},
                "steps": self.step, "batch": a.batch, "crop": a.crop, "seed": a.seed,
                "seconds": round(self.elapsed, 1), "device": self.device_name,
                "final_loss": final_loss, "loss": "L1 on x0", "ema_decay": a.ema,
                "timesteps": {"low_max": a.low_max, "p_low": a.p_low},
                "x_t_start": {"from_condition": a.p_from_cond, "blend": a.p_mix},
                "recommended": {
                    "refine": {"strength": a.recommend[0], "steps": int(a.recommend[1]),
                               "finish": FINISH["refine"]},
                    "x2": {"strength": a.recommend[2], "steps": int(a.recommend[3]),
                           "finish": FINISH["x2"]},
                    "x4": {"strength": a.recommend[2], "steps": int(a.recommend[3]),
                           "finish": FINISH["x4"]}},
                "command": "python -m training.train_tiny " + " ".join(sys.argv[1:]),
            },
        }


def pick_settings(data: Path, weights: Path | None, seed: int = 7, crop: int = 192, n: int = 8) -> dict:
    """Sweep strength/steps on crops of *training* photographs (never the held-out ones).

    The recommended settings in the model's JSON come from this sweep, so the held-out benchmark
    stays an honest test.
    """
    from engine.models.tiny import load_tiny
    from training.degrade import bicubic_up_uint8, damage_refine, damage_x2, psnr, to_tensor, to_uint8
    from training.restore import restore

    model = load_tiny(weights=weights, device="cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(seed)
    imgs = [im for _, im in load_split(data, "train") if min(im.shape[:2]) >= crop]
    crops = []
    for i in range(n):
        im = imgs[int(rng.integers(len(imgs)))]
        y, x = int(rng.integers(im.shape[0] - crop + 1)), int(rng.integers(im.shape[1] - crop + 1))
        crops.append(np.ascontiguousarray(im[y:y + crop, x:x + crop]))
    damaged = [damage_refine(c, rng) for c in crops]
    bicubic = [bicubic_up_uint8(damage_x2(c), 2) for c in crops]
    base_r = np.mean([psnr(d, c) for d, c in zip(damaged, crops)])
    base_x = np.mean([psnr(b, c) for b, c in zip(bicubic, crops)])
    out = {}
    for strength, steps in [(0.05, 1), (0.1, 1), (0.2, 1), (0.3, 1), (0.4, 1), (0.5, 1),
                            (0.3, 2), (0.5, 4)]:
        r = np.mean([psnr(to_uint8(restore(model, to_tensor(d), strength, steps, 0)), c)
                     for d, c in zip(damaged, crops)]) - base_r
        x = np.mean([psnr(to_uint8(restore(model, to_tensor(b), strength, steps, 0)), c)
                     for b, c in zip(bicubic, crops)]) - base_x
        out[f"s{strength:g}_n{steps}"] = (round(float(r), 3), round(float(x), 3))
        print(f"strength {strength:4g} steps {steps}: refine gain {r:+.2f} dB  x2 vs bicubic {x:+.2f} dB",
              flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare-data", metavar="DIR", help="download and prepare the photographs, then exit")
    p.add_argument("--data", help="prepared data folder")
    p.add_argument("--out", default="runs/tiny", help="checkpoints and exported weights go here")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=3000, help="0: as many as --max-minutes allow")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--channels", type=int, nargs="*")
    p.add_argument("--layers", type=int)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--min-lr", type=float, default=2e-5)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--low-max", type=int, default=500)
    p.add_argument("--p-low", type=float, default=0.85)
    p.add_argument("--p-from-cond", type=float, default=0.45)
    p.add_argument("--p-mix", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader processes building batches (a GPU run needs several)")
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--output", choices=OUTPUTS, default="residual",
                   help="what the network predicts: x0 itself, or x0 minus the condition")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop early (still exports)")
    p.add_argument("--half", action=argparse.BooleanOptionalAction, default=True,
                   help="store weights as float16 (half the file size)")
    p.add_argument("--recommend", type=float, nargs=4, default=[0.2, 1, 0.2, 1],
                   metavar=("REFINE_STRENGTH", "REFINE_STEPS", "X2_STRENGTH", "X2_STEPS"),
                   help="sampling settings written into the model's JSON for the product")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--pick-settings", metavar="WEIGHTS", nargs="?", const="",
                   help="sweep sampling settings on training crops (needs --data), then exit")
    args = p.parse_args(argv)
    if args.prepare_data:
        m = prepare_data(Path(args.prepare_data))
        print(f"train {len(m['train'])} images, held out {len(m['heldout'])}: {args.prepare_data}")
        return
    if not args.data:
        p.error("--data is required (run --prepare-data first)")
    if args.pick_settings is not None:
        torch.set_num_threads(args.threads)
        pick_settings(Path(args.data), Path(args.pick_settings) if args.pick_settings else None)
        return
    train(args)


if __name__ == "__main__":
    main()
