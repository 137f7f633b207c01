"""The lockstep loop: one diffusers scheduler stepping the whole canvas.

The sampler never sees tiles. It hands the canvas denoiser the scheduler's scaled model input
(a variance-preserving x_t) and gets the fused x0 back; the scheduler is configured with
prediction_type="sample" so it takes that x0 as is (schedulers that cannot, Euler ancestral,
get the equivalent ε). Ancestral/SDE noise comes from the canvas noise field's generator.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler)

from engine.sampling.noise import NoiseField

SCHEDULERS = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {"prediction_type": "epsilon"}),
    "dpm++2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": (DDIMScheduler, {"set_alpha_to_one": True, "clip_sample": False}),
}
DEFAULT_SCHEDULER = "ddim"

CanvasFn = Callable[[torch.Tensor, torch.Tensor, float, int], torch.Tensor]


def make_scheduler(name: str | None, model_config: dict):
    name = name or DEFAULT_SCHEDULER
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    keys = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "trained_betas",
            "timestep_spacing", "steps_offset")
    config = {k: v for k, v in model_config.items() if k in keys}
    # "trailing" makes the strength the first timestep for any step count ("leading" with
    # steps_offset 0 would end a short img2img schedule at t = 0).
    config.update(timestep_spacing="trailing", steps_offset=0)
    return cls(**{"prediction_type": "sample", **config, **extra})


def alpha_bar_at(scheduler, t: torch.Tensor) -> float:
    """ᾱ at a (possibly fractional) timestep, interpolated in σ like Euler's own schedule."""
    ac = scheduler.alphas_cumprod.double().numpy()
    sig = np.sqrt((1 - ac) / ac)
    s = float(np.interp(float(t), np.arange(len(sig)), sig))
    return 1.0 / (1.0 + s * s)


def schedule(scheduler, steps: int, strength: float) -> tuple[list[torch.Tensor], int]:
    """Timesteps actually run: the last `steps` of a schedule long enough to start at `strength`."""
    cap = scheduler.config.num_train_timesteps
    total = steps if strength >= 1 else min(cap, max(steps, int(round(steps / strength))))
    scheduler.set_timesteps(total)
    start = total - steps
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    return list(scheduler.timesteps[start * scheduler.order:]), start


def noised(scheduler, sample: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """scheduler.add_noise(sample, noise, t), computed in `noise`'s own memory.

    add_noise is a·sample + b·noise for every scheduler here; a and b come from one-element
    calls, so starting a 150 MP canvas needs no canvas-sized temporaries (diffusers' own makes two).
    """
    one, zero, t = torch.ones(1), torch.zeros(1), t.reshape(1)
    a = float(scheduler.add_noise(one, zero, t))
    b = float(scheduler.add_noise(zero, one, t))
    return noise.mul_(b).add_(sample, alpha=a)


def sample(denoise: CanvasFn, scheduler, reference: torch.Tensor, noise: NoiseField, steps: int,
           strength: float) -> torch.Tensor:
    """Run the scheduler on the canvas from `reference` noised to `strength`; returns the canvas."""
    timesteps, _ = schedule(scheduler, steps, strength)
    eps = noise.initial(tuple(reference.shape))
    x = eps.mul_(scheduler.init_noise_sigma) if strength >= 1 else \
        noised(scheduler, reference, eps, timesteps[0])
    del eps
    gen = noise.step_generator()
    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t)
        ab = alpha_bar_at(scheduler, t)
        x0 = denoise(x_in, t, ab, i)
        if i == len(timesteps) - 1:
            # A short img2img schedule can end one stride above t = 0 (DDIM with step counts
            # that do not divide T); stepping there would leave noise in the result.
            return x0
        out = x0 if scheduler.config.prediction_type == "sample" else \
            (x_in - ab ** 0.5 * x0) / (1 - ab) ** 0.5   # schedulers without x0 input take ε
        x = scheduler.step(out, t, x, generator=gen).prev_sample
    return x  # only reached with zero steps
