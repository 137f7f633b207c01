"""Diffusers configs of the public Stable Diffusion families, so that loading never downloads one.

A single-file checkpoint holds weights but no architecture. diffusers would fetch the matching
config repository from the hub; offline that fails, so the configs of the families we support are
written down here (they are the published `config.json` files of the reference repositories) and
the family is recognised from the checkpoint's keys and shapes, the way diffusers does it.
All families share CLIP's vocabulary (`clip_vocab.py`) and differ only in the padding token.
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch

SD_SCHEDULER = dict(
    _class_name="EulerDiscreteScheduler",
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
    steps_offset=1,
    timestep_spacing="leading",
    clip_sample=False,
    set_alpha_to_one=False,
)

_SD_VAE = dict(
    act_fn="silu",
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)

_CLIP_L = dict(  # openai/clip-vit-large-patch14 text tower (SD 1.x; SDXL's first encoder)
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=768, bos_token_id=0, eos_token_id=2, pad_token_id=1, layer_norm_eps=1e-5,
)

_OPEN_CLIP_H = dict(  # SD 2.x: OpenCLIP ViT-H/14 text tower, last layer dropped (penultimate output)
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
    num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
    projection_dim=512, bos_token_id=0, eos_token_id=2, pad_token_id=1, layer_norm_eps=1e-5,
)

_OPEN_CLIP_BIGG = dict(  # SDXL's second encoder: OpenCLIP ViT-bigG/14 text tower with projection
    vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
    num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu",
    projection_dim=1280, bos_token_id=0, eos_token_id=2, pad_token_id=1, layer_norm_eps=1e-5,
)

FAMILIES: dict[str, dict] = {
    "sd1": dict(
        unet=dict(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=[320, 640, 1280, 1280],
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                              "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                            "CrossAttnUpBlock2D"],
            cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
        ),
        vae=_SD_VAE,
        text_encoder=_CLIP_L,
        scheduler=SD_SCHEDULER,
        pad_tokens=dict(tokenizer="<|endoftext|>"),
    ),
    "sd2": dict(  # 2.0/2.1 at 768 px, v-prediction (the 512 px base models are epsilon)
        unet=dict(
            sample_size=96, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=[320, 640, 1280, 1280],
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                              "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                            "CrossAttnUpBlock2D"],
            cross_attention_dim=1024, attention_head_dim=[5, 10, 20, 20],
            use_linear_projection=True, upcast_attention=True, norm_num_groups=32,
        ),
        vae=dict(_SD_VAE, sample_size=768),
        text_encoder=_OPEN_CLIP_H,
        scheduler=dict(SD_SCHEDULER, prediction_type="v_prediction"),
        pad_tokens=dict(tokenizer="!"),
    ),
    "sdxl": dict(
        unet=dict(
            sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=[320, 640, 1280],
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            transformer_layers_per_block=[1, 2, 10], attention_head_dim=[5, 10, 20],
            cross_attention_dim=2048, use_linear_projection=True, norm_num_groups=32,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        ),
        vae=dict(_SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
        text_encoder=_CLIP_L,
        text_encoder_2=_OPEN_CLIP_BIGG,
        scheduler=SD_SCHEDULER,
        pad_tokens=dict(tokenizer="<|endoftext|>", tokenizer_2="!"),
    ),
}

# Keys whose presence (and shape) tells the families apart in an original-layout checkpoint.
_ADD_EMBED_KEY = "model.diffusion_model.label_emb.0.0.weight"  # SDXL's size/crop/pooled input
_CROSS_ATTN_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_UNET_IN_KEY = "model.diffusion_model.input_blocks.0.0.weight"


def family(name: str) -> dict:
    """A deep copy of one family's configs (callers may edit them)."""
    return copy.deepcopy(FAMILIES[name])


def detect_family(checkpoint: Mapping[str, torch.Tensor]) -> str:
    """Recognise SD 1.x / 2.x / SDXL from an original-layout checkpoint, or explain why not."""
    if _UNET_IN_KEY not in checkpoint:
        raise ValueError("not an original-layout Stable Diffusion checkpoint "
                         f"(no '{_UNET_IN_KEY}')")
    in_channels = checkpoint[_UNET_IN_KEY].shape[1]
    if in_channels != 4:
        raise ValueError(f"UNet takes {in_channels} input channels (inpainting or upscaler "
                         "checkpoints are not supported; expected 4)")
    if _ADD_EMBED_KEY in checkpoint:
        width = checkpoint[_ADD_EMBED_KEY].shape[1]
        if width == 2816:
            return "sdxl"
        raise ValueError(f"unsupported added-conditioning width {width} (SDXL base has 2816; "
                         "refiner checkpoints are not supported)")
    if _CROSS_ATTN_KEY in checkpoint:
        context = checkpoint[_CROSS_ATTN_KEY].shape[-1]
        if context == 768:
            return "sd1"
        if context == 1024:
            return "sd2"
        raise ValueError(f"unknown cross-attention width {context} (expected 768 or 1024)")
    raise ValueError("unrecognised UNet layout (neither SD 1.x/2.x nor SDXL)")
