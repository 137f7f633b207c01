"""seamwise-tiny: the bundled pixel-space restoration diffusion model.

A small diffusers `UNet2DModel` conditioned on the degraded image by channel concatenation:
input = concat(x_t, cond) (6 channels, both in [-1, 1]), output = the prediction named by
`scheduler["prediction_type"]`, or, for a model whose JSON says `"output": "residual"`, the
network's output added to `cond` (see `ResidualToCondition`). `cond` is the input photo,
bicubic-upscaled to the output size for --scale 2/4 and as-is for refine. GroupNorm and a
self-attention level give the engine's memory mechanisms something to act on.

The weights and the config they were trained with ship in `engine/models/weights/`; loading never
touches the network.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import UNet2DModel
from diffusers.models.unets.unet_2d import UNet2DOutput
from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = WEIGHTS_DIR / "seamwise-tiny.safetensors"
CONFIG_FILE = WEIGHTS_DIR / "seamwise-tiny.json"

# Default architecture; the shipped JSON (written by train_tiny.py) is authoritative.
DEFAULT_UNET_CONFIG = dict(
    sample_size=96,
    in_channels=6,
    out_channels=3,
    block_out_channels=(32, 64, 128, 128),
    down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    norm_num_groups=8,
    attention_head_dim=32,
)
# DDIM-style sampling config; "trailing" spacing makes strength s start at t = s*T even for one step.
DEFAULT_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    prediction_type="sample",
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
    timestep_spacing="trailing",
)


class ResidualToCondition(nn.Module):
    """x0 = cond + UNet(concat(x_t, cond), t): the network learns only the correction.

    A restoration model's answer is mostly its condition. Predicting x0 outright, a small network
    spends capacity reproducing flat sky and still misses it by a grey level or two; as a
    correction, "change nothing" is the zero output, and training starts there (zeroed last conv).
    Callers see a UNet2DModel: same call, same `.sample`, same GroupNorm and attention modules.
    """

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        self.unet = unet

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(self, sample: torch.Tensor, timestep) -> UNet2DOutput:
        cond = sample[:, -self.unet.config.out_channels:]
        return UNet2DOutput(sample=cond + self.unet(sample, timestep).sample)


OUTPUTS = ("prediction", "residual")


def with_output(unet: UNet2DModel, output: str) -> nn.Module:
    """The network as the sampler calls it, for the JSON's `output` kind."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown model output kind {output!r} (known: {', '.join(OUTPUTS)})")
    return ResidualToCondition(unet) if output == "residual" else unet


class ModelMissing(FileNotFoundError):
    """The bundled weights are not where the package expects them."""


@dataclass
class TinyModel:
    unet: nn.Module           # UNet2DModel, or a ResidualToCondition around one
    scheduler_config: dict
    native_size: int          # training crop size: the thumbnail pass runs at this size
    downsample_factor: int    # window origins must sit on multiples of this
    meta: dict                # training provenance (data, steps, loss) from the JSON


def build_unet(unet_config: dict | None = None) -> UNet2DModel:
    return UNet2DModel(**(unet_config or DEFAULT_UNET_CONFIG))


def load_tiny(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
              weights: Path | None = None) -> TinyModel:
    """Load the bundled model (or a compatible safetensors file) for inference."""
    from safetensors.torch import load_file

    weights = Path(weights) if weights else WEIGHTS_FILE
    config_file = weights.with_suffix(".json")
    if not weights.is_file() or not config_file.is_file():
        raise ModelMissing(f"model weights not found: {weights} (and {config_file.name})")
    spec = json.loads(config_file.read_text())
    unet = build_unet(spec["unet"])
    unet.load_state_dict(load_file(str(weights)))   # float16 files are widened on copy
    unet = unet.to(device) if dtype == torch.float32 else unet.to(device=device, dtype=dtype)
    unet.eval().requires_grad_(False)
    unet = with_output(unet, spec.get("output", "prediction"))
    factor = 2 ** (len(spec["unet"]["block_out_channels"]) - 1)
    return TinyModel(unet=unet, scheduler_config=spec["scheduler"],
                     native_size=int(spec["unet"].get("sample_size", 128)),
                     downsample_factor=factor, meta=spec.get("meta", {}))
