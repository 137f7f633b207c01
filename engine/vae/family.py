"""The VAE family exact mode runs, and how each maps a pipeline's latents to what `vae.decode`
takes.

- `AutoencoderKL`: SD 1.x/2.x and SDXL (4 channels), FLUX.1, SD3 and other 16-channel 2D VAEs.
  pipeline latents = (z - latents_mean - shift_factor) / latents_std * scaling_factor, each term
  present only where the config has it (SD: scaling only; FLUX.1/SD3: shift and scaling;
  SDXL-derived models such as Playground v2.5: per-channel mean and std).
- `AutoencoderKLFlux2` (FLUX.2, 32 channels): the same 2D encoder/decoder; the pipeline patches
  2×2 latent pixels into 128 channels and normalises them with the VAE's BatchNorm running
  statistics (fixed numbers, not batch statistics), with no scaling factor.

Both maps are per-pixel and exact, so the tiled encoder/decoder never sees them. The causal-3D
VAEs (`AutoencoderKLQwenImage`, `AutoencoderKLWan` incl. Wan 2.2's 48-channel one,
`AutoencoderKLQwenImage21`) are refused by the plan with the first layer it cannot reproduce
(their causal Conv3d); docs/VAE.md describes what supporting them would take.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engine.layerwise.plan import UnsupportedModel

SUPPORTED = ("AutoencoderKL", "AutoencoderKLFlux2")


@dataclass(frozen=True)
class LatentSpace:
    """pipeline = (patch(z) - mean) / std * scale; `patch` = 2 patches 2×2 pixels into channels."""

    mean: Tensor | float = 0.0  # (C,) per channel, or a scalar
    std: Tensor | float = 1.0
    scale: float = 1.0
    patch: int = 1

    def _stats(self, like: Tensor) -> tuple[Tensor | float, Tensor | float]:
        def shaped(v):
            return v.to(like.device, like.dtype).view(1, -1, 1, 1) if isinstance(v, Tensor) else v
        return shaped(self.mean), shaped(self.std)

    def from_vae(self, z: Tensor) -> Tensor:
        """What `vae.encode(...).latent_dist` gives → the pipeline's latents."""
        if self.patch > 1:
            b, c, h, w = z.shape
            p = self.patch
            z = z.view(b, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4).reshape(b, c * p * p, h // p, w // p)
        mean, std = self._stats(z)
        return (z - mean) / std * self.scale

    def to_vae(self, latents: Tensor) -> Tensor:
        """The pipeline's latents → what `vae.decode` takes."""
        mean, std = self._stats(latents)
        z = latents / self.scale * std + mean
        if self.patch > 1:
            b, c, h, w = z.shape
            p = self.patch
            z = z.reshape(b, c // (p * p), p, p, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c // (p * p), h * p, w * p)
        return z


def latent_space(vae) -> LatentSpace:
    kind = type(vae).__name__
    cfg = vae.config
    if kind == "AutoencoderKLFlux2":
        bn = vae.bn
        return LatentSpace(bn.running_mean.detach().float().cpu(),
                           (bn.running_var.detach().float().cpu() + cfg.batch_norm_eps).sqrt(),
                           1.0, int(cfg.patch_size[0]))
    if kind != "AutoencoderKL":
        raise UnsupportedModel(f"{kind}: exact tiling supports {', '.join(SUPPORTED)}")
    mean = getattr(cfg, "latents_mean", None)
    std = getattr(cfg, "latents_std", None)
    shift = getattr(cfg, "shift_factor", None) or 0.0
    mean = torch.tensor(mean, dtype=torch.float32) + shift if mean is not None else shift
    std = torch.tensor(std, dtype=torch.float32) if std is not None else 1.0
    return LatentSpace(mean, std, float(cfg.scaling_factor))
