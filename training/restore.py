"""Untiled sampling with seamwise-tiny: the reference the tiled engine is measured against.

`restore` runs the model on a whole picture in one pass, with the engine's own scheduler set-up
(engine.sampling.sampler): the condition (the input photo, already bicubic-upscaled for ×2) is
noised to the timestep the strength names, then a deterministic DDIM sampler walks down, and the
last step returns its x0 prediction. Strength s starts at t ≈ s·T with "trailing" spacing, so even one step really starts from noise at that level and its output is
the model's x0 prediction (what recovers the most signal; more steps add invented detail).
"""
from __future__ import annotations

import torch

from engine.models.tiny import TinyModel
from engine.sampling.sampler import make_scheduler, schedule


@torch.no_grad()
def restore(model: TinyModel, cond: torch.Tensor, strength: float, steps: int,
            seed: int) -> torch.Tensor:
    """Restore `cond` (NCHW in [-1, 1], H and W multiples of model.downsample_factor).

    Returns NCHW in [-1, 1]. The same (cond, strength, steps, seed) always gives the same result
    on the same device: the start noise comes from a CPU generator seeded with `seed`.
    """
    f = model.downsample_factor
    if cond.ndim != 4 or cond.shape[1] != 3:
        raise ValueError(f"cond must be Nx3xHxW, got {tuple(cond.shape)}")
    if cond.shape[2] % f or cond.shape[3] % f:
        raise ValueError(f"height and width must be multiples of {f}, got {tuple(cond.shape[2:])}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    unet = model.unet
    device, dtype = unet.device, unet.dtype
    if model.scheduler_config.get("prediction_type", "sample") != "sample":
        raise ValueError("the bundled model format predicts samples (x0)")
    # The engine's own scheduler set-up (DDIM, "trailing" spacing), here stepped untiled.
    sched = make_scheduler("ddim", model.scheduler_config)
    ts = torch.stack(schedule(sched, steps, strength)[0])
    cond = cond.to(device=device, dtype=dtype)
    g = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(cond.shape, generator=g, dtype=torch.float32).to(device=device, dtype=dtype)
    x = sched.add_noise(cond, noise, ts[:1])
    for i, t in enumerate(ts):
        out = unet(torch.cat([x, cond], dim=1), t.to(device)).sample
        step = sched.step(out, t, x, eta=0.0)
        # The last step must land on the clean image. DDIM steps to t - T//N, which is 0 rather
        # than "before 0" when N does not divide T (strength 0.3, 2 steps: 142 -> 0), and would
        # leave sqrt(1 - alphas_cumprod[0]) of noise in the result.
        x = step.pred_original_sample if i == len(ts) - 1 else step.prev_sample
    return x.clamp(-1.0, 1.0)
