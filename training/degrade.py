"""Image degradations for seamwise-tiny: training pairs and the quality benchmark use the same code.

The model is conditioned on a damaged photo and learns to restore it, so the damage it sees in
training must look like what the product feeds it: for refine, sensor-like noise plus JPEG
blocking; for ×2, a downscaled photo brought back to size with *the engine's* bicubic
(`bicubic_up`, torch's a=-0.75 kernel). Everything works on HxWx3 uint8 arrays, because real
inputs are quantised and JPEG is defined on 8-bit samples.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float32 in [-1, 1] (the model's range)."""
    t = torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float()
    return t / 127.5 - 1.0


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW (or 3xHxW) in [-1, 1] -> HxWx3 uint8, rounded and clipped."""
    if t.ndim == 4:
        t = t[0]
    a = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round()
    return a.permute(1, 2, 0).to(torch.uint8).cpu().numpy()


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The upscaler that builds the ×2/×4 condition (NCHW, [-1, 1]); clipped like a saved image."""
    y = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    return y.clamp(-1.0, 1.0)


def bicubic_up_uint8(img: np.ndarray, scale: int) -> np.ndarray:
    return to_uint8(bicubic_up(to_tensor(img), scale))


def downscale(img: np.ndarray, factor: int, method: str = "lanczos") -> np.ndarray:
    """Shrink by an integer factor with an antialiasing filter (Pillow)."""
    h, w = img.shape[:2]
    resample = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC,
                "box": Image.BOX, "bilinear": Image.BILINEAR}[method]
    return np.asarray(Image.fromarray(img).resize((w // factor, h // factor), resample))


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma)))


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise; sigma in units of the full 0..1 range (8/255 = 8 levels)."""
    if sigma <= 0:
        return img
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma * 255.0, img.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Round trip through baseline JPEG with 4:2:0 chroma (Pillow's default, what cameras ship)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# The two benchmark degradations, fixed by the product's quality targets.
BENCH_NOISE_SIGMA = 8 / 255
BENCH_JPEG_QUALITY = 60


def damage_refine(img: np.ndarray, rng: np.random.Generator,
                  sigma: float = BENCH_NOISE_SIGMA, quality: int = BENCH_JPEG_QUALITY) -> np.ndarray:
    """Benchmark (a): Gaussian noise then JPEG, same size."""
    return jpeg(add_noise(img, sigma, rng), quality)


def damage_x2(img: np.ndarray) -> np.ndarray:
    """Benchmark (b): the Lanczos-downscaled photo (the engine's input for ×2)."""
    return downscale(img, 2, "lanczos")


@dataclass(frozen=True)
class DegradationRanges:
    """Random training degradations; they bracket the benchmark's fixed ones on purpose."""
    p_x2: float = 0.5                   # share of ×2 pairs (rest: refine pairs)
    blur_sigma: tuple = (0.0, 1.0)      # optical softness before the rest
    p_blur: float = 0.3
    noise_sigma: tuple = (0.0, 14 / 255)
    p_noise_refine: float = 0.85
    p_noise_x2: float = 0.2
    jpeg_quality: tuple = (35, 95)
    p_jpeg_refine: float = 0.8
    p_jpeg_x2: float = 0.25
    down_methods: tuple = ("lanczos", "lanczos", "bicubic", "box", "bilinear")


def random_degradation(img: np.ndarray, rng: np.random.Generator,
                       ranges: DegradationRanges = DegradationRanges()) -> tuple[np.ndarray, str]:
    """One random training condition for a clean crop (H and W even): (cond uint8, kind).

    kind is "x2" (downscaled, damaged, bicubic back to size) or "refine" (damaged in place).
    The condition always has the crop's size, as it does in the product.
    """
    r = ranges
    x = img
    if rng.random() < r.p_blur:
        x = gaussian_blur(x, float(rng.uniform(*r.blur_sigma)))
    if rng.random() < r.p_x2:
        x = downscale(x, 2, str(rng.choice(r.down_methods)))
        if rng.random() < r.p_noise_x2:
            x = add_noise(x, float(rng.uniform(0.0, r.noise_sigma[1] / 2)), rng)
        if rng.random() < r.p_jpeg_x2:
            x = jpeg(x, int(rng.integers(60, r.jpeg_quality[1] + 1)))
        return bicubic_up_uint8(x, 2), "x2"
    if rng.random() < r.p_noise_refine:
        x = add_noise(x, float(rng.uniform(*r.noise_sigma)), rng)
    if rng.random() < r.p_jpeg_refine:
        x = jpeg(x, int(rng.integers(r.jpeg_quality[0], r.jpeg_quality[1] + 1)))
    return x, "refine"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of the same shape."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def high_freq_energy(img: np.ndarray) -> float:
    """Mean spectral energy above half Nyquist (luma, per pixel): how much fine detail there is.

    A Hann window keeps the picture's borders (a jump when the FFT wraps around) from posing as detail.
    """
    y = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    y = y - y.mean()
    y = y * np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    spec = np.abs(np.fft.fft2(y)) ** 2
    fy = np.abs(np.fft.fftfreq(y.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(y.shape[1]))[None, :]
    high = np.maximum(fy, fx) > 0.25          # 0.5 cycles/px is Nyquist
    return float(spec[high].sum() / y.size ** 2)
