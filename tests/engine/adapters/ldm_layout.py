"""Write diffusers components back into the original (LDM / A1111) single-file layout.

Test fixture only: the inverse of diffusers' single-file converters, written independently from
the original repositories' module names, so that a checkpoint written here and read by the engine
round-trips only if both directions agree with the original layout.
"""
from __future__ import annotations

import re

import torch

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"),
           ("conv_shortcut", "skip_connection")]
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _resnet(rest: str) -> str:
    for new, old in _RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    raise KeyError(rest)


def unet_to_ldm(state: dict, config) -> dict:
    per = config["layers_per_block"] + 1
    out = {}
    for key, value in state.items():
        head, _, param = key.rpartition(".")
        if head in _UNET_FIXED:
            out[f"{_UNET_FIXED[head]}.{param}"] = value
            continue
        m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key)
        if m:
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            if kind == "downsamplers":
                out[f"input_blocks.{(i + 1) * per}.0.op.{rest.removeprefix('conv.')}"] = value
            elif kind == "resnets":
                out[f"input_blocks.{1 + i * per + j}.0.{_resnet(rest)}"] = value
            else:
                out[f"input_blocks.{1 + i * per + j}.1.{rest}"] = value
            continue
        m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
        if m:
            kind, j, rest = m[1], int(m[2]), m[3]
            if kind == "resnets":
                out[f"middle_block.{2 * j}.{_resnet(rest)}"] = value
            else:
                out[f"middle_block.1.{rest}"] = value
            continue
        m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key)
        if m:
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            if kind == "upsamplers":
                has_attn = config["up_block_types"][i].startswith("CrossAttn")
                out[f"output_blocks.{i * per + per - 1}.{2 if has_attn else 1}.{rest}"] = value
            elif kind == "resnets":
                out[f"output_blocks.{i * per + j}.0.{_resnet(rest)}"] = value
            else:
                out[f"output_blocks.{i * per + j}.1.{rest}"] = value
            continue
        raise KeyError(f"unmapped UNet key {key}")
    return {f"model.diffusion_model.{k}": v for k, v in out.items()}


_VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"),
             ("to_out.0", "proj_out")]


def vae_to_ldm(state: dict, config) -> dict:
    n = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        k = key.replace("conv_norm_out", "norm_out")
        m = re.match(r"(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)"
                     r"\.(\d+)\.(.*)", k)
        if m:
            part, direction, i, kind, j, rest = m[1], m[2], int(m[3]), m[4], m[5], m[6]
            level = i if direction == "down" else n - 1 - i
            if kind == "resnets":
                rest = rest.replace("conv_shortcut", "nin_shortcut")
                k = f"{part}.{direction}.{level}.block.{j}.{rest}"
            else:
                k = f"{part}.{direction}.{level}.{'downsample' if direction == 'down' else 'upsample'}.{rest}"
        m = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", k)
        if m:
            part, kind, j, rest = m[1], m[2], int(m[3]), m[4]
            if kind == "resnets":
                k = f"{part}.mid.block_{int(j) + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                for new, old in _VAE_ATTN:
                    if rest.startswith(new + "."):
                        rest = old + rest[len(new):]
                        break
                k = f"{part}.mid.attn_1.{rest}"
                if value.ndim == 2:  # the original stores these 1×1 convolutions
                    value = value[:, :, None, None]
        out[f"first_stage_model.{k}"] = value
    return out


def clip_to_ldm(state: dict, prefix: str) -> dict:
    """transformers CLIP text model → the original HF-CLIP layout under `prefix`."""
    return {prefix + (k if k.startswith("text_model.") or k.startswith("text_projection")
                      else "text_model." + k): v for k, v in state.items()}


def clip_to_open_clip(state: dict, prefix: str) -> dict:
    """transformers CLIP text model → OpenCLIP's layout (fused q/k/v, transposed projection)."""
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    out = {prefix + "positional_embedding": state.pop("embeddings.position_embedding.weight"),
           prefix + "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
           prefix + "ln_final.weight": state.pop("final_layer_norm.weight"),
           prefix + "ln_final.bias": state.pop("final_layer_norm.bias")}
    if "text_projection.weight" in state:
        out[prefix + "text_projection"] = state.pop("text_projection.weight").T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")})
    for n in layers:
        src, dst = f"encoder.layers.{n}.", f"{prefix}transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [state.pop(src + f"self_attn.{p}_proj.{kind}") for p in "qkv"])
            out[dst + f"attn.out_proj.{kind}"] = state.pop(src + f"self_attn.out_proj.{kind}")
            out[dst + f"ln_1.{kind}"] = state.pop(src + f"layer_norm1.{kind}")
            out[dst + f"ln_2.{kind}"] = state.pop(src + f"layer_norm2.{kind}")
            out[dst + f"mlp.c_fc.{kind}"] = state.pop(src + f"mlp.fc1.{kind}")
            out[dst + f"mlp.c_proj.{kind}"] = state.pop(src + f"mlp.fc2.{kind}")
    if state:
        raise KeyError(f"unmapped text encoder keys {sorted(state)[:3]}")
    return out
