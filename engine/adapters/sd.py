"""Stable Diffusion 1.x/2.x and SDXL UNets as canvas-window denoisers.

The adapter owns everything that makes SD different from the bundled pixel model: latents and the
VAE, the text encoders and classifier-free guidance, epsilon/v → x0, and SDXL's micro-conditioning.
SDXL is told where each tile sits (mechanism 6, position awareness) the way it was trained on
crops: `original_size` is the whole canvas, `crops_coords_top_left` is the window's origin and
`target_size` the window itself, all in output pixels — so a tile of the sky knows it is the top of
a large frame rather than a small picture of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from engine.adapters.base import Conditioning, Window, x0_from_prediction
from engine.adapters.prompts import PromptEmbeds, encode_sd, encode_sdxl, zeros_like
from engine.types import RenderParams
from engine.vae import tiled as vae_tiled
from engine.vae.family import latent_space

DEFAULT_GUIDANCE = 4.0  # with a prompt; an empty prompt runs unguided (half the model work)


@dataclass
class StableDiffusionAdapter:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoders: Sequence[torch.nn.Module]
    tokenizers: Sequence
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype
    source: str = ""                     # where the weights came from, for stats and errors
    # The tiled VAE's whole-image activations: this many bytes in RAM, the rest on disk in
    # `vae_store` (None: the system's temporary directory).
    vae_ram_budget: int = vae_tiled.DEFAULT_RAM_BUDGET
    vae_store: str | None = None
    # The colour space of the training images (engine.colour): sRGB for the SD family, unless
    # the model folder's model_index.json says otherwise in "colour_space".
    colour_space: str = "sRGB IEC61966-2.1"
    space: str = field(default="latent", init=False)
    # Measured on a random-weight SD-layout UNet (BENCHMARKS.md, Engine): layerwise evaluation
    # gives the untiled result (152 dB vs the halo's 53) at the untiled work, where it fits.
    default_mechanisms: dict = field(default_factory=lambda: {"layerwise": "auto"}, init=False)

    def __post_init__(self) -> None:
        cfg = self.unet.config
        if cfg.in_channels != cfg.out_channels:
            raise ValueError(f"UNet with {cfg.in_channels} input and {cfg.out_channels} output "
                             "channels (inpainting/upscaler variants are not supported)")
        self.is_xl = cfg.addition_embed_type == "text_time"
        if len(self.text_encoders) != (2 if self.is_xl else 1) or \
                len(self.tokenizers) != len(self.text_encoders):
            raise ValueError("SDXL needs two text encoders and tokenizers, SD 1.x/2.x one")
        self.canvas_channels = cfg.in_channels
        self.vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.downsample_factor = 2 ** (len(cfg.block_out_channels) - 1)
        self.native_size = int(cfg.sample_size)
        self.default_tile = self.native_size
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.denoiser = self.unet
        # SDXL's VAE overflows in fp16 (its config says so with `force_upcast`).
        upcast = bool(getattr(self.vae.config, "force_upcast", False))
        self.vae_dtype = torch.float32 if upcast else self.dtype

    # -- conditioning -------------------------------------------------------------------------

    def _encode(self, prompts: list[str]) -> PromptEmbeds:
        if self.is_xl:
            return encode_sdxl(self.tokenizers, self.text_encoders, prompts)
        return encode_sd(self.tokenizers[0], self.text_encoders[0], prompts)

    def conditioning(self, params: RenderParams, source: torch.Tensor) -> Conditioning:
        """Text embeddings once per render; [negative, positive] when guidance is on."""
        prompt = params.prompt or ""
        negative = params.negative_prompt or ""
        guidance = params.guidance
        if guidance is None:
            guidance = DEFAULT_GUIDANCE if prompt or negative else 1.0
        positive = self._encode([prompt])
        extra: dict = {"guidance": float(guidance)}
        if guidance > 1.0:
            uncond = zeros_like(positive) if self.is_xl and not negative else self._encode([negative])
            extra["embeds"] = torch.cat([uncond.embeds, positive.embeds]).to(self.dtype)
            if self.is_xl:
                extra["pooled"] = torch.cat([uncond.pooled, positive.pooled]).to(self.dtype)
        else:
            extra["embeds"] = positive.embeds.to(self.dtype)
            if self.is_xl:
                extra["pooled"] = positive.pooled.to(self.dtype)
        position = bool(params.mechanisms.get("position", True))
        return Conditioning(source=source, extra=extra, position=position,
                            evaluations=2 if guidance > 1.0 else 1)

    def time_ids(self, windows: Sequence[Window], position: bool) -> torch.Tensor:
        """SDXL `add_time_ids` per window: (orig_h, orig_w, crop_top, crop_left, target_h, target_w).

        Crop coordinates are in the pixels the model sees (for a strided thumbnail window, the
        subsampled frame's), as in SDXL's training on resized-then-cropped images; the original
        size is always the full canvas. Without position awareness every window claims to be a
        whole picture of its own size.
        """
        s = self.vae_scale
        rows = []
        for w in windows:
            target = (w.h * s, w.w * s)
            if position:
                rows.append((w.canvas_h * w.stride * s, w.canvas_w * w.stride * s,
                             w.y * s, w.x * s, *target))
            else:
                rows.append((*target, 0, 0, *target))
        return torch.tensor(rows, dtype=self.dtype, device=self.device)

    # -- denoising ----------------------------------------------------------------------------

    @torch.no_grad()
    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: float,
                   windows: list[Window], cond: Conditioning) -> torch.Tensor:
        """Guided runs make one UNet call per branch (unconditional, then conditional), each over
        exactly the engine's batch: device memory stays what the engine planned for, and memory
        mechanisms that follow the batch window by window (pooled GroupNorm statistics) see the
        windows they expect."""
        n = x_t.shape[0]
        if n != len(windows):
            raise ValueError(f"{n} window samples but {len(windows)} windows")
        embeds = cond.extra["embeds"].to(self.device)
        pooled = cond.extra.get("pooled")
        timestep = t.to(self.device, torch.float32).reshape(-1)[:1].expand(n)
        ids = self.time_ids(windows, cond.position) if self.is_xl else None

        def branch(i: int) -> torch.Tensor:
            kwargs = {}
            if self.is_xl:
                kwargs["added_cond_kwargs"] = {
                    "text_embeds": pooled[i:i + 1].to(self.device).expand(n, -1),
                    "time_ids": ids}
            context = embeds[i:i + 1].expand(n, -1, -1)
            return self.unet(x_t, timestep, encoder_hidden_states=context, **kwargs).sample.float()

        if embeds.shape[0] == 2:
            uncond = branch(0)
            out = uncond + cond.extra["guidance"] * (branch(1) - uncond)
        else:
            out = branch(0)
        x0 = x0_from_prediction(out, x_t.float(), alpha_bar, self.prediction_type)
        return x0.to(x_t.dtype)

    def layerwise_unet(self) -> torch.nn.Module:
        return self.unet

    @torch.no_grad()
    def predict_x0_layerwise(self, x_t: torch.Tensor, t: torch.Tensor, alpha_bar: float,
                             window: Window, cond: Conditioning,
                             run: Callable[..., np.ndarray]) -> torch.Tensor:
        """x0 of one (large) window through `run`, a layerwise evaluation of the UNet: one call
        per guidance branch, as `predict_x0` makes them."""
        embeds = cond.extra["embeds"].to(self.device)
        pooled = cond.extra.get("pooled")
        ids = self.time_ids([window], cond.position) if self.is_xl else None
        sample = np.ascontiguousarray(x_t[0].permute(1, 2, 0).numpy())
        timestep = t.to(self.device, torch.float32).reshape(-1)[:1]

        def branch(i: int) -> torch.Tensor:
            added = {"text_embeds": pooled[i:i + 1].to(self.device), "time_ids": ids} if self.is_xl else None
            out = run(sample, timestep, embeds[i:i + 1], added)
            return torch.from_numpy(out).permute(2, 0, 1)[None].float()

        if embeds.shape[0] == 2:
            uncond = branch(0)
            out = uncond + cond.extra["guidance"] * (branch(1) - uncond)
        else:
            out = branch(0)
        return x0_from_prediction(out, x_t.float(), alpha_bar, self.prediction_type).to(x_t.dtype)

    # -- latents ------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """[-1, 1] image → scaled latent canvas (distribution mean: deterministic img2img)."""
        pixels = image.to(self.device, self.vae_dtype)
        latents = vae_tiled.tiled_encode(self.vae, pixels, store=self.vae_store,
                                         ram_budget=self.vae_ram_budget).mean
        return latent_space(self.vae).from_vae(latents.float())

    @torch.no_grad()
    def decode(self, canvas: torch.Tensor) -> torch.Tensor:
        latents = latent_space(self.vae).to_vae(canvas.to(self.device, torch.float32)).to(self.vae_dtype)
        image = vae_tiled.tiled_decode(self.vae, latents, store=self.vae_store, ram_budget=self.vae_ram_budget)
        return image.float().clamp(-1.0, 1.0)

    def check_room(self, height: int, width: int) -> None:
        """The tiled VAE's activations for a height × width output: RAM budget, then free disk."""
        vae_tiled.check_room(self.vae, height, width, store=self.vae_store, ram_budget=self.vae_ram_budget)
