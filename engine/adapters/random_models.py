"""SD / SDXL models with random weights, built from configs: tests and throughput benchmarks.

Nothing is downloaded. The tokenizer is a real CLIP BPE tokenizer over a small vocabulary written
here (byte-level symbols, a few merges, CLIP's special tokens), so prompts go through the same
code path as with a released model.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                          CLIPTokenizer)

from engine.adapters.architectures import SD_SCHEDULER
from engine.adapters.clip_vocab import byte_symbols

_MERGES = ["t h", "th e</w>", "s k", "sk y</w>", "o f</w>"]


def write_tokenizer(folder: Path) -> CLIPTokenizer:
    folder.mkdir(parents=True, exist_ok=True)
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + \
        ["".join(m.split()) for m in _MERGES] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                         model_max_length=77)


def _text_config(tok: CLIPTokenizer, hidden: int, projection: int, layers: int = 3,
                 intermediate: int = 37) -> CLIPTextConfig:
    return CLIPTextConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=intermediate,
                          num_attention_heads=4, num_hidden_layers=layers, max_position_embeddings=77,
                          projection_dim=projection, hidden_act="gelu",
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)


def tiny_vae() -> AutoencoderKL:
    # Four levels, like SD's: 8 output pixels per latent pixel.
    return AutoencoderKL(block_out_channels=[8, 8, 16, 16], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 4,
                         up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4,
                         layers_per_block=1, norm_num_groups=4, sample_size=64)


def tiny_sd(tmp: Path, prediction_type: str = "epsilon", seed: int = 0) -> StableDiffusionPipeline:
    torch.manual_seed(seed)
    tok = write_tokenizer(tmp / "_tok")
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16,
                                in_channels=4, out_channels=4, cross_attention_dim=32,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                norm_num_groups=8, attention_head_dim=8)
    scheduler = EulerDiscreteScheduler.from_config(dict(SD_SCHEDULER,
                                                        prediction_type=prediction_type))
    return StableDiffusionPipeline(unet=unet, vae=tiny_vae(), tokenizer=tok,
                                   text_encoder=CLIPTextModel(_text_config(tok, 32, 32)),
                                   scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def tiny_sdxl(tmp: Path, seed: int = 0) -> StableDiffusionXLPipeline:
    """Encoder widths differ (32 vs 48), as in SDXL (768 vs 1280): diffusers' single-file loader
    tells the two encoders apart by that width."""
    torch.manual_seed(seed)
    tok = write_tokenizer(tmp / "_tok")
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=16,
                                in_channels=4, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                attention_head_dim=(2, 4), use_linear_projection=True,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                transformer_layers_per_block=(1, 2),
                                projection_class_embeddings_input_dim=6 * 8 + 40,
                                cross_attention_dim=32 + 48, norm_num_groups=8)
    vae = tiny_vae()
    vae.register_to_config(force_upcast=True)
    return StableDiffusionXLPipeline(
        unet=unet, vae=vae, scheduler=EulerDiscreteScheduler.from_config(SD_SCHEDULER),
        text_encoder=CLIPTextModel(_text_config(tok, 32, 32)), tokenizer=tok,
        text_encoder_2=CLIPTextModelWithProjection(_text_config(tok, 48, 40)), tokenizer_2=tok)


def sdxl_random_adapter(tmp: Path, device: torch.device | str, dtype: torch.dtype,
                        full: bool = True, seed: int = 0):
    """An SDXL adapter whose UNet has the full SDXL architecture (`full`) or the tiny one, with
    random weights built directly on `device`. Text encoders have SDXL's widths (768, 1280) but one
    layer each and the VAE is tiny: throughput benchmarks measure the UNet."""
    from engine.adapters.architectures import family
    from engine.adapters.sd import StableDiffusionAdapter

    torch.manual_seed(seed)
    device = torch.device(device)
    tok = write_tokenizer(Path(tmp) / "_tok")
    if full:
        cfg = family("sdxl")
        with device:
            unet = UNet2DConditionModel(**cfg["unet"])
            encoders = [CLIPTextModel(_text_config(tok, 768, 768, 1, 64)),
                        CLIPTextModelWithProjection(_text_config(tok, 1280, 1280, 1, 64))]
            vae = tiny_vae()
        scheduler = cfg["scheduler"]
    else:
        pipe = tiny_sdxl(Path(tmp), seed=seed)
        unet, vae = pipe.unet, pipe.vae
        encoders = [pipe.text_encoder, pipe.text_encoder_2]
        scheduler = dict(SD_SCHEDULER)
    for m in (unet, *encoders):
        m.to(device=device, dtype=dtype).eval().requires_grad_(False)
    upcast = bool(getattr(vae.config, "force_upcast", False))
    vae.to(device=device, dtype=torch.float32 if upcast else dtype).eval().requires_grad_(False)
    return StableDiffusionAdapter(unet=unet, vae=vae, text_encoders=encoders, tokenizers=[tok, tok],
                                  scheduler_config=scheduler, device=device, dtype=dtype,
                                  source="random SDXL" + ("" if full else " (tiny)"))
