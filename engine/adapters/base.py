"""The one interface the canvas denoiser calls: a model seen as "windows of a canvas → x0".

The sampler never sees tiles and the adapter never sees strategies: the canvas denoiser hands the
adapter a batch of windows cut from the current canvas, the adapter runs its model on them and
returns clean-sample (x0) predictions. Everything model-specific (text encoders, concat
conditioning, SDXL size/crop ids, epsilon/v → x0 conversion, the VAE) stays behind this line.

Units: a *canvas* is the tensor the sampler steps (latent for SD, pixels for pixel models).
Window coordinates are canvas pixels. Output pixels = canvas pixels × `vae_scale`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from engine.tiling.windows import Window
from engine.types import RenderParams

__all__ = ["Conditioning", "ModelAdapter", "Window", "x0_from_prediction"]


@dataclass
class Conditioning:
    """Whatever the adapter needs besides x_t; opaque to the engine.

    `source` is the caller's image in [-1, 1], NCHW float32 at OUTPUT size, on the host.
    `extra` holds adapter-specific tensors (text embeddings, pooled embeddings, ...).
    `position` is the position-awareness switch (mechanism 6): adapters that can tell a tile where
    it sits (SDXL time ids) do so only when it is True.
    `evaluations` is how many network evaluations one window costs (2 with classifier-free
    guidance), so that the engine's work counts are the model's real work.
    """
    source: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)
    position: bool = True
    evaluations: int = 1


@runtime_checkable
class ModelAdapter(Protocol):
    space: str                 # "pixel" | "latent"
    canvas_channels: int       # 3 for pixel models, 4 for SD latents
    vae_scale: int             # output px per canvas px: 1 for pixel models, 8 for SD
    downsample_factor: int     # window origins and sizes must be multiples of this (canvas px)
    native_size: int           # canvas px of the training resolution (thumbnail pass size)
    default_tile: int          # canvas px
    scheduler_config: dict     # diffusers scheduler config the model was trained with
    denoiser: torch.nn.Module  # the module memory mechanisms hook (GroupNorms, attention processors)
    device: torch.device
    dtype: torch.dtype
    # Optional: `default_mechanisms: dict` — memory switches measured to pay for this model
    # (engine.mechanisms.switches.Mechanisms names); the caller's RenderParams.mechanisms override them.

    def conditioning(self, params: RenderParams, source: torch.Tensor) -> Conditioning:
        """Build conditioning once per render. `source`: [-1, 1] NCHW at output size, on the host."""

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: float,
                   windows: list[Window], cond: Conditioning) -> torch.Tensor:
        """x0 predictions for a batch of windows.

        x_t: [len(windows), C, h, w] (all windows of one call share h, w), variance-preserving
        noisy sample (the scheduler's scaled model input), on the adapter's device and dtype.
        t: scalar timestep tensor of the training schedule (may be fractional).
        alpha_bar: ᾱ at this step, for converting epsilon / v predictions to x0.
        Returns [len(windows), C, h, w] x0 in canvas units, same device/dtype as x_t.
        """

    def layerwise_unet(self) -> torch.nn.Module:
        """The diffusers UNet that layerwise evaluation (mechanisms.layerwise) unrolls."""

    def predict_x0_layerwise(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: float,
                             window: Window, cond: Conditioning,
                             run: Callable[..., np.ndarray]) -> torch.Tensor:
        """x0 of one window of any size, [1, C, h, w] on the host, through `run`: an
        `engine.layerwise.unet.LayerwiseUNet` over `layerwise_unet()`, called as
        run(sample HWC array, timestep, context=None, added_cond_kwargs=None) → HWC array."""

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[-1, 1] NCHW image at output size → canvas (identity for pixel models)."""

    def decode(self, canvas: torch.Tensor) -> torch.Tensor:
        """Canvas → [-1, 1] NCHW image at output size (identity for pixel models)."""

    def check_room(self, height: int, width: int) -> None:
        """Raises OSError when encoding and decoding a height × width output cannot fit the
        memory and disk they are given; called before any work."""


def x0_from_prediction(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: float,
                       prediction_type: str) -> torch.Tensor:
    """Convert a model's native prediction to x0 (variance-preserving x_t = √ᾱ·x0 + √(1-ᾱ)·ε)."""
    if prediction_type in ("sample", "original_sample"):
        return output
    a = alpha_bar ** 0.5
    s = (1.0 - alpha_bar) ** 0.5
    if prediction_type == "epsilon":
        return (x_t - s * output) / a
    if prediction_type == "v_prediction":
        return a * x_t - s * output
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")
