"""Prompt encoding through a Stable Diffusion model's own tokenizers and text encoders.

Follows what diffusers' pipelines feed the UNet, so that a prompt means the same thing here as in
any SD/SDXL tool: SD 1.x/2.x take the encoder's last hidden state (SD 2's config already drops the
final layer); SDXL concatenates the penultimate hidden states of both encoders and takes the pooled,
projected output of the second one for its added conditioning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch


@dataclass
class PromptEmbeds:
    embeds: torch.Tensor                   # [n, tokens, width]
    pooled: Optional[torch.Tensor] = None  # [n, width2] (SDXL only)


def _token_ids(tokenizer, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids.to(device)


@torch.no_grad()
def encode_sd(tokenizer, text_encoder, prompts: Sequence[str]) -> PromptEmbeds:
    device = text_encoder.device
    out = text_encoder(_token_ids(tokenizer, prompts, device))
    return PromptEmbeds(embeds=out[0])


@torch.no_grad()
def encode_sdxl(tokenizers: Sequence, text_encoders: Sequence, prompts: Sequence[str]) -> PromptEmbeds:
    hidden, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, text_encoders):
        out = encoder(_token_ids(tokenizer, prompts, encoder.device), output_hidden_states=True)
        # Both CLIPTextModel and CLIPTextModelWithProjection put the pooled vector first; only the
        # last encoder's (the projected bigG one) conditions the UNet.
        pooled = out[0]
        hidden.append(out.hidden_states[-2])
    return PromptEmbeds(embeds=torch.cat(hidden, dim=-1), pooled=pooled)


def zeros_like(p: PromptEmbeds) -> PromptEmbeds:
    """SDXL's unconditional branch for an empty negative prompt (`force_zeros_for_empty_prompt`)."""
    return PromptEmbeds(embeds=torch.zeros_like(p.embeds),
                        pooled=None if p.pooled is None else torch.zeros_like(p.pooled))
